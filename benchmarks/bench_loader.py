"""Loader throughput and memory: a 32-subset mixture, rows of 4096 + 1 tokens, one process.

  python benchmarks/bench_loader.py [--subsets=32] [--batches=400] [--packing=concat]

Writes synthetic subsets (random tokens, document lengths 50..8000) to a
temporary folder, then reads batches through the training pipeline and prints
one JSON line: tokens/s and the resident memory at the start and end of the run.
"""

import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags
from ml_collections import ConfigDict

from llmjp_jax.data.loader import train_dataset
from llmjp_jax.data.manifest import MANIFEST
from llmjp_jax.data.mixture import load_mixture
from llmjp_jax.data.shards import ShardWriter

_SUBSETS = flags.DEFINE_integer("subsets", 32, "Number of subsets in the mixture.")
_DOCS = flags.DEFINE_integer("docs", 400, "Documents per subset.")
_BATCHES = flags.DEFINE_integer("batches", 400, "Batches to read.")
_BATCH = flags.DEFINE_integer("batch", 8, "Rows per batch.")
_SEQ = flags.DEFINE_integer("seq_len", 4096, "Row length - 1.")
_PACKING = flags.DEFINE_enum("packing", "concat", ["concat", "first_fit"], "Packing.")


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return kib / 1024


def _write_subset(directory: str, docs: int, seed: int):
    rng = np.random.default_rng(seed)
    writer = ShardWriter(directory, docs_per_shard=100)
    for _ in range(docs):
        writer.write(rng.integers(3, 99_000, int(rng.integers(50, 8000)), dtype=np.int32))
    writer.close()
    manifest = {"documents": docs, "tokens": sum(s["tokens"] for s in writer.shards),
                "shards": writer.shards, "release_level": "L1",
                "tokenizer": {"sha256": "synthetic", "vocab_size": 99_574}}
    with open(os.path.join(directory, MANIFEST), "w") as f:
        json.dump(manifest, f)


def _main(argv):
    del argv
    with tempfile.TemporaryDirectory() as root:
        mixture = {}
        for i in range(_SUBSETS.value):
            directory = os.path.join(root, f"s{i:02d}")
            os.makedirs(directory)
            _write_subset(directory, _DOCS.value, seed=i)
            mixture[f"s{i:02d}"] = {"dir": directory, "repeats": 1.0 + (i % 4)}
        subsets = load_mixture(ConfigDict({"train_dir": "", "mixture": mixture}))
        it = iter(train_dataset(subsets, _SEQ.value, _BATCH.value, seed=0, packing=_PACKING.value))
        next(it)
        rss_start, start = _rss_mib(), time.perf_counter()
        rss = []
        for i in range(_BATCHES.value):
            next(it)
            if i % 500 == 0:
                rss.append(round(_rss_mib(), 1))
        seconds = time.perf_counter() - start
    tokens = _BATCHES.value * _BATCH.value * (_SEQ.value + 1)
    print(json.dumps({
        "subsets": _SUBSETS.value, "mixture_tokens": sum(s.tokens for s in subsets),
        "packing": _PACKING.value, "batches": _BATCHES.value, "tokens_read": tokens,
        "seconds": round(seconds, 2), "tokens_per_sec": round(tokens / seconds),
        "rss_mib_start": round(rss_start, 1), "rss_mib_every_500_batches": rss}))


if __name__ == "__main__":
    app.run(_main)
