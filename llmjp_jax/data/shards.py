"""Tokenized corpus on disk: ArrayRecord shards of per-document int32 tokens + manifest.json.

Each record is one document's tokens (`<s> ... </s>`) as little-endian int32
bytes. The manifest says what the shards hold and where they came from, so a
training run can refuse shards that are missing, empty or inconsistent.
"""

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

import llmjp_jax
from llmjp_jax.data.readers import BAD_KINDS, BadInputError
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.log import get_logger

log = get_logger()

MANIFEST = "manifest.json"
TOKEN_DTYPE = np.dtype("<i4")


def decode_record(record: bytes) -> np.ndarray:
    return np.frombuffer(record, dtype=TOKEN_DTYPE)


class ShardWriter:
    """Writes documents to `shard-NNNNN.array_record` files of at most `docs_per_shard` each."""

    def __init__(self, output_dir: str, docs_per_shard: int):
        self.output_dir, self.docs_per_shard = output_dir, docs_per_shard
        self.shards: list[dict] = []
        self._writer = None

    def write(self, tokens: np.ndarray):
        if self._writer is None or self.shards[-1]["documents"] == self.docs_per_shard:
            self._roll()
        self._writer.write(tokens.astype(TOKEN_DTYPE).tobytes())
        self.shards[-1]["documents"] += 1
        self.shards[-1]["tokens"] += int(tokens.size)

    def _roll(self):
        self.close()
        name = f"shard-{len(self.shards):05d}.array_record"
        self._writer = ArrayRecordWriter(os.path.join(self.output_dir, name), "group_size:1")
        self.shards.append({"file": name, "documents": 0, "tokens": 0})

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tokenize_files(inputs: list[str], output_dir: str, tokenizer: Tokenizer, text_field: str = "text",
                   docs_per_shard: int = 100_000, batch_docs: int = 1024, num_threads: int = -1,
                   language: str = "", release_level: str = "L1", on_bad_input: str = "error",
                   num_workers: int = 0, chunk_bytes: int = 64 << 20, compression: str = "snappy",
                   log_every: float = 5.0) -> dict:
    """Tokenizes `inputs` into shards under `output_dir` and writes the manifest, last and atomically.

    The inputs are cut into units of at most `chunk_bytes`, tokenized by `num_workers` processes
    (1: this one; 0: one per CPU, fewer for a small input) with `num_threads` SentencePiece threads
    each (<= 0: CPUs / workers). A run killed at any moment resumes where it stopped and makes the
    same shards as one that was not (see `tokenize_jobs`); progress is logged every `log_every` s.

    A bad input line raises BadInputError (`on_bad_input="error"`), or with "skip" is left out and
    written to `rejects.jsonl`, counted in the manifest's "rejected", so nothing is lost silently.
    """
    from llmjp_jax.data import tokenize_jobs

    if on_bad_input not in ("error", "skip"):
        raise ValueError(f"on_bad_input must be 'error' or 'skip', not {on_bad_input!r}.")
    start = time.time()
    settings = tokenize_jobs.Settings(text_field, docs_per_shard, chunk_bytes, on_bad_input, compression)
    os.makedirs(output_dir, exist_ok=True)
    plan = tokenize_jobs.make_plan(inputs, tokenizer, settings)
    with tokenize_jobs.State(output_dir, plan) as state:
        resumed = {"resumed": len(state.records),  # units done by an earlier, killed run
                   "resumed_text_bytes": sum(r["text_bytes"] for r in state.records.values())}
        try:
            used = tokenize_jobs.run_units(state, tokenizer, num_workers, num_threads, batch_docs, log_every)
        except BadInputError:
            # Fixing the input changes it, and a changed input cannot resume this run: its state
            # would only be in the way.
            state.remove()
            raise
        empty = _empty_inputs(plan, state.records)
        gathered = tokenize_jobs.gather(state)
        shards = gathered["shards"]
        manifest = {
            "documents": sum(s["documents"] for s in shards), "tokens": sum(s["tokens"] for s in shards),
            "text_bytes": gathered["text_bytes"], "shards": shards, "sources": plan["sources"],
            "rejected": gathered["rejected"],
            "tokenizer": {"path": os.path.abspath(tokenizer.path), "sha256": tokenizer.sha256,
                          "vocab_size": tokenizer.vocab_size},
            "language": language, "release_level": release_level,
            "tool": f"llmjp-jax {llmjp_jax.__version__}", "seconds": round(time.time() - start, 3),
            "units": {"count": len(plan["units"]), "bytes": plan["unit_bytes"], **resumed, **used},
            "empty_inputs": empty,
        }
        if not manifest["documents"]:
            state.remove()
            rejected = " or rejected (see rejects.jsonl)" if gathered["rejected"]["count"] else ""
            raise BadInputError(f"No documents in {', '.join(inputs)}: every input is empty or "
                                f"blank{rejected}.")
        _seal(manifest, output_dir)
        tokenize_jobs.write_json(os.path.join(output_dir, MANIFEST), manifest, indent=1)
        state.remove()
    return manifest


def _empty_inputs(plan: dict, records: dict) -> list[str]:
    """Inputs that gave no document and no rejected line (empty or blank files), with a warning each."""
    found: dict[str, int] = {}
    for unit in plan["units"]:
        record = records[unit["index"]]
        found[unit["path"]] = found.get(unit["path"], 0) + sum(s["documents"] for s in record["shards"]) \
            + sum(record["rejected"].values())
    empty = [path for path, count in found.items() if count == 0]
    for path in empty:
        log.warning("Input %s holds no document (empty or blank); listed in the manifest's "
                    "empty_inputs.", path)
    return empty


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _seal(manifest: dict, shard_dir: str):
    """Adds each shard's size and sha256, then the manifest's own checksum: a training run can
    then tell a truncated, overwritten or swapped shard, or an edited manifest, before it reads."""
    paths = shard_paths(shard_dir, manifest)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(_file_sha256, paths))
    for shard, path, digest in zip(manifest["shards"], paths, digests):
        shard.update(bytes=os.path.getsize(path), sha256=digest)
    manifest["checksum"] = manifest_checksum(manifest)


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's content (all but this field), in a canonical JSON form."""
    content = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


class _RejectLog:
    """Writes each skipped line to `<output_dir>/rejects.jsonl` and counts them by kind.

    Disabled (on_bad_input="error"), it writes nothing and removes a stale rejects file left
    by an earlier run, so the directory never shows rejects that this run did not make.
    """

    FILE, RAW_CHARS = "rejects.jsonl", 1000

    def __init__(self, output_dir: str, enabled: bool):
        self.path, self.enabled = os.path.join(output_dir, self.FILE), enabled
        self.by_reason = dict.fromkeys(BAD_KINDS, 0)
        self._file = None

    def __enter__(self):
        if self.enabled:
            self._file = open(self.path, "w", encoding="utf-8")
        elif os.path.exists(self.path):
            os.remove(self.path)
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()

    def add(self, error: BadInputError):
        raw = error.raw.rstrip(b"\r\n").decode("utf-8", errors="replace")[: self.RAW_CHARS]
        record = {"file": os.path.abspath(error.path), "line": error.line, "reason": error.detail,
                  "kind": error.kind, "raw": raw}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.by_reason[error.kind] += 1

    def summary(self) -> dict:
        return {"count": sum(self.by_reason.values()), "by_reason": self.by_reason,
                "file": self.FILE if self.enabled else None}


VERIFY = ("auto", "size", "sha256")  # data.verify_shards
AUTO_SHA256_BYTES = 2 << 30  # "auto" hashes the shards at start-up up to this much data


class ShardError(ValueError):
    """A shard or manifest that does not match what llmjp-tokenize wrote; the message names it."""


def load_manifest(shard_dir: str, vocab_rows: int | None = None, verify: str = "size") -> dict:
    """Reads the manifest and checks it and every shard it lists before anything is trained on.

    Always: the manifest's checksum (an edited manifest), its totals, each shard's presence,
    size and record count. `verify="sha256"` also hashes every shard (overwritten bytes);
    "auto" does so when all shards together hold at most AUTO_SHA256_BYTES. Manifests
    written before shards had sizes and checksums get the record-count check only.
    """
    path = os.path.join(shard_dir, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {shard_dir} a directory made by llmjp-tokenize?")
    with open(path, encoding="utf-8") as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise ShardError(f"{path} is not valid JSON ({e}): re-run llmjp-tokenize.") from e
    if not manifest["shards"] or manifest["documents"] == 0:
        raise ValueError(f"{shard_dir}: the manifest lists no documents.")
    _check_manifest(path, manifest)
    paths = shard_paths(shard_dir, manifest)
    for shard, shard_path in zip(manifest["shards"], paths):
        _check_shard(path, shard, shard_path)
    sealed = all("sha256" in s for s in manifest["shards"])
    total = sum(s.get("bytes", 0) for s in manifest["shards"])
    if sealed and (verify == "sha256" or (verify == "auto" and total <= AUTO_SHA256_BYTES)):
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            digests = list(pool.map(_file_sha256, paths))
        for shard, shard_path, digest in zip(manifest["shards"], paths, digests):
            if digest != shard["sha256"]:
                raise ShardError(f"Shard {shard_path} was changed after llmjp-tokenize wrote it (sha256 "
                                 f"{digest[:12]}..., the manifest says {shard['sha256'][:12]}...): "
                                 f"re-run llmjp-tokenize for {shard_dir}.")
    tok_vocab = manifest["tokenizer"]["vocab_size"]
    if vocab_rows is not None and tok_vocab > vocab_rows:
        raise ValueError(f"The tokenizer of {shard_dir} has {tok_vocab} pieces but the model has "
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
        raise FileNotFoundError(f"Shard {shard_path} listed in {manifest_path} is missing or empty.")
    size = os.path.getsize(shard_path)
    if "bytes" in shard and size != shard["bytes"]:
        raise ShardError(f"Shard {shard_path} holds {size} bytes, its manifest says {shard['bytes']}: "
                         f"it is truncated or was replaced; re-run llmjp-tokenize.")
    try:
        reader = ArrayRecordReader(shard_path)
        count = reader.num_records()
        reader.close()
    except RuntimeError as e:  # Riegeli's own check of the file's structure
        raise ShardError(f"Shard {shard_path} is damaged ({e}); re-run llmjp-tokenize.") from e
    if count != shard["documents"]:
        raise ShardError(f"Shard {shard_path} holds {count} documents, its manifest says "
                         f"{shard['documents']}: re-run llmjp-tokenize.")


def shard_paths(shard_dir: str, manifest: dict) -> list[str]:
    return [os.path.join(shard_dir, s["file"]) for s in manifest["shards"]]
