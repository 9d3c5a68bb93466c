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
from llmjp_jax.data.readers import BAD_KINDS, BadInputError
from llmjp_jax.data.tokenizer import Tokenizer

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
        used = tokenize_jobs.run_units(state, tokenizer, num_workers, num_threads, batch_docs, log_every)
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
        }
        tokenize_jobs.write_json(os.path.join(output_dir, MANIFEST), manifest, indent=1)
        state.remove()
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
