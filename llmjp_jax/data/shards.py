"""Tokenized corpus on disk: ArrayRecord shards of per-document int32 tokens + manifest.json.

Each record is one document's tokens (`<s> ... </s>`) as little-endian int32
bytes. The manifest says what the shards hold and where they came from, so a
training run can refuse shards that are missing, empty or inconsistent.
"""

import json
import os
import time

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

import llmjp_jax
from llmjp_jax.data.readers import BAD_KINDS, BadInputError, iter_documents
from llmjp_jax.data.tokenizer import Tokenizer, file_sha256

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
                   language: str = "", release_level: str = "L1", on_bad_input: str = "error") -> dict:
    """Tokenizes `inputs` into shards under `output_dir` and writes the manifest.

    A bad input line raises BadInputError (`on_bad_input="error"`), or with "skip" is left out and
    written to `rejects.jsonl`, counted in the manifest's "rejected", so nothing is lost silently.
    """
    if on_bad_input not in ("error", "skip"):
        raise ValueError(f"on_bad_input must be 'error' or 'skip', not {on_bad_input!r}.")
    os.makedirs(output_dir, exist_ok=True)
    start, writer, sources, text_bytes = time.time(), ShardWriter(output_dir, docs_per_shard), [], 0
    with _RejectLog(output_dir, on_bad_input == "skip") as rejects:
        for path in inputs:
            batch: list[str] = []
            for _, text in iter_documents(path, text_field, rejects.add if rejects.enabled else None):
                batch.append(text)
                text_bytes += len(text.encode("utf-8"))
                if len(batch) == batch_docs:
                    _write_batch(writer, tokenizer, batch, num_threads)
                    batch = []
            _write_batch(writer, tokenizer, batch, num_threads)
            sources.append({"path": os.path.abspath(path), "bytes": os.path.getsize(path),
                            "sha256": file_sha256(path)})
    writer.close()
    manifest = {
        "documents": sum(s["documents"] for s in writer.shards),
        "tokens": sum(s["tokens"] for s in writer.shards),
        "text_bytes": text_bytes, "shards": writer.shards, "sources": sources,
        "rejected": rejects.summary(),
        "tokenizer": {"path": os.path.abspath(tokenizer.path), "sha256": tokenizer.sha256,
                      "vocab_size": tokenizer.vocab_size},
        "language": language, "release_level": release_level,
        "tool": f"llmjp-jax {llmjp_jax.__version__}", "seconds": round(time.time() - start, 3),
    }
    with open(os.path.join(output_dir, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    return manifest


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


def _write_batch(writer: ShardWriter, tokenizer: Tokenizer, texts: list[str], num_threads: int):
    if texts:
        for tokens in tokenizer.encode_documents(texts, num_threads):
            writer.write(tokens)


def load_manifest(shard_dir: str, vocab_rows: int | None = None) -> dict:
    """Reads the manifest and checks that every shard it lists is present and complete."""
    path = os.path.join(shard_dir, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {shard_dir} a directory made by llmjp-tokenize?")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if not manifest["shards"] or manifest["documents"] == 0:
        raise ValueError(f"{shard_dir}: the manifest lists no documents.")
    for shard in manifest["shards"]:
        shard_path = os.path.join(shard_dir, shard["file"])
        if not os.path.isfile(shard_path) or os.path.getsize(shard_path) == 0:
            raise FileNotFoundError(f"Shard {shard_path} listed in {path} is missing or empty.")
        reader = ArrayRecordReader(shard_path)
        count = reader.num_records()
        reader.close()
        if count != shard["documents"]:
            raise ValueError(f"Shard {shard_path} holds {count} documents, its manifest says "
                             f"{shard['documents']}: re-run llmjp-tokenize.")
    tok_vocab = manifest["tokenizer"]["vocab_size"]
    if vocab_rows is not None and tok_vocab > vocab_rows:
        raise ValueError(f"The tokenizer of {shard_dir} has {tok_vocab} pieces but the model has "
                         f"{vocab_rows} embedding rows: raise model.vocab_size to >= {tok_vocab}.")
    return manifest


def shard_paths(shard_dir: str, manifest: dict) -> list[str]:
    return [os.path.join(shard_dir, s["file"]) for s in manifest["shards"]]
