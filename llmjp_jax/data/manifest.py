"""`manifest.json` of a folder of shards: what the shards hold and where they came from.

Written last and sealed (each shard's size and sha256, then the manifest's own checksum), so a
training run can refuse shards that are missing, truncated, overwritten or swapped, or an edited
manifest, before it reads a token.
"""

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from llmjp_jax.data.settings import AUTO_SHA256_BYTES
from llmjp_jax.data.shards import count_records, read_records
from llmjp_jax.errors import MissingFileError, UserError
from llmjp_jax.files import file_sha256, write_json

MANIFEST = "manifest.json"


class ShardError(UserError):
    """A shard or manifest that does not match what llmjp-tokenize wrote; the message names it."""


def shard_paths(shard_dir: str, manifest: dict) -> list[str]:
    return [os.path.join(shard_dir, s["file"]) for s in manifest["shards"]]


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's content (all but this field), in a canonical JSON form."""
    content = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _hash_all(paths: list[str]) -> list[str]:
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(file_sha256, paths))


def write_manifest(shard_dir: str, manifest: dict):
    """Seals the manifest (shard sizes and sha256, its checksum) and writes it atomically."""
    paths = shard_paths(shard_dir, manifest)
    for shard, path, digest in zip(manifest["shards"], paths, _hash_all(paths)):
        shard.update(bytes=os.path.getsize(path), sha256=digest)
    manifest["checksum"] = manifest_checksum(manifest)
    write_json(os.path.join(shard_dir, MANIFEST), manifest, indent=1)


def load_manifest(shard_dir: str, vocab_rows: int | None = None, verify: str = "size",
                  setting: str = "") -> dict:
    """Reads the manifest and checks it and every shard it lists before anything is trained on.

    Always: the manifest's checksum (an edited manifest), its totals, each shard's presence,
    size and record count. `verify="sha256"` also hashes every shard (overwritten bytes);
    "auto" does so when all shards together hold at most AUTO_SHA256_BYTES. Manifests
    written before shards had sizes and checksums get the record-count check only.
    `setting` names the config entry that points at `shard_dir`, for the error messages.
    """
    where = f" (set by {setting})" if setting else ""
    path = os.path.join(shard_dir, MANIFEST)
    if not os.path.isfile(path):
        raise MissingFileError(f"{path} not found{where}: is {shard_dir} a directory made by llmjp-tokenize?")
    with open(path, encoding="utf-8") as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise ShardError(f"{path} is not valid JSON ({e}): re-run llmjp-tokenize.") from e
    if not manifest["shards"] or manifest["documents"] == 0:
        raise ShardError(f"{shard_dir}{where}: the manifest lists no documents.")
    _check_manifest(path, manifest)
    paths = shard_paths(shard_dir, manifest)
    for shard, shard_path in zip(manifest["shards"], paths):
        _check_shard(path, shard, shard_path)
    sealed = all("sha256" in s for s in manifest["shards"])
    total = sum(s.get("bytes", 0) for s in manifest["shards"])
    if sealed and (verify == "sha256" or (verify == "auto" and total <= AUTO_SHA256_BYTES)):
        for shard, shard_path, digest in zip(manifest["shards"], paths, _hash_all(paths)):
            if digest != shard["sha256"]:
                raise ShardError(f"Shard {shard_path} was changed after llmjp-tokenize wrote it (sha256 "
                                 f"{digest[:12]}..., the manifest says {shard['sha256'][:12]}...): "
                                 f"re-run llmjp-tokenize for {shard_dir}.")
    tok_vocab = manifest["tokenizer"]["vocab_size"]
    if vocab_rows is not None and tok_vocab > vocab_rows:
        raise ShardError(f"The tokenizer of {shard_dir} has {tok_vocab} pieces but the model has "
                         f"{vocab_rows} embedding rows: raise model.vocab_size to >= {tok_vocab}.")
    return manifest


def _check_manifest(path: str, manifest: dict):
    if "checksum" in manifest and manifest["checksum"] != manifest_checksum(manifest):
        raise ShardError(f"{path} was edited after llmjp-tokenize wrote it (its checksum does not match "
                         f"its content): restore it or re-run llmjp-tokenize.")
    for total in ("documents", "tokens"):
        listed = sum(s[total] for s in manifest["shards"])
        if listed != manifest[total]:
            raise ShardError(f"{path}: {total} = {manifest[total]}, but its shards hold {listed}: the "
                             f"manifest was edited or is damaged; re-run llmjp-tokenize.")


def _check_shard(manifest_path: str, shard: dict, shard_path: str):
    if not os.path.isfile(shard_path) or os.path.getsize(shard_path) == 0:
        raise MissingFileError(f"Shard {shard_path} listed in {manifest_path} is missing or empty.")
    size = os.path.getsize(shard_path)
    if "bytes" in shard and size != shard["bytes"]:
        raise ShardError(f"Shard {shard_path} holds {size} bytes, its manifest says {shard['bytes']}: "
                         f"it is truncated or was replaced; re-run llmjp-tokenize.")
    try:
        count = count_records(shard_path)
    except RuntimeError as e:  # Riegeli's own check of the file's structure
        raise ShardError(f"Shard {shard_path} is damaged ({e}); re-run llmjp-tokenize.") from e
    if count != shard["documents"]:
        raise ShardError(f"Shard {shard_path} holds {count} documents, its manifest says "
                         f"{shard['documents']}: re-run llmjp-tokenize.")


def read_documents(shard_dir: str, verify: str = "size") -> Iterator[np.ndarray]:
    """Every document's tokens in a folder of shards, in the manifest's order (checked first)."""
    for path in shard_paths(shard_dir, load_manifest(shard_dir, verify=verify)):
        yield from read_records(path)
