"""Reading a Megatron indexed dataset (llmjp_jax.data.megatron) vs the same documents as ArrayRecord shards.

  python benchmarks/megatron_read.py [--docs=50000] [--random_reads=200000] [--dtype=int32] [--batches=300]

Writes a synthetic dataset with megatron-core's IndexedDatasetBuilder (random ids below 99,574, or
65,500 for uint16; document lengths 50..2000), converts it with `to_shards` (snappy shards of 10,000
documents, as llmjp-tokenize writes), then times, on warm page caches: a sequential pass over every
document (MegatronDataset.documents in blocks vs ArrayRecordReader.read_all per shard), random
single-document reads (MegatronDataset[i] vs the loader's Grain ArrayRecord source + decode), and
the training loader (train_dataset, concat packing, 8 x 4097-token batches) on a one-subset mixture
of each. Prints one JSON line per measurement: documents/s, tokens/s.
"""

import json
import os
import tempfile
import time
import types

import numpy as np
from absl import app, flags

from llmjp_jax.data.loader import NamedShardSource, train_dataset
from llmjp_jax.data.manifest import load_manifest, shard_paths
from llmjp_jax.data.megatron import MegatronDataset, to_shards
from llmjp_jax.data.mixture import Subset
from llmjp_jax.data.shards import decode_record, read_records

_DOCS = flags.DEFINE_integer("docs", 50_000, "Documents in the dataset.")
_RANDOM = flags.DEFINE_integer("random_reads", 200_000, "Random single-document reads per reader.")
_DTYPE = flags.DEFINE_enum("dtype", "int32", ["int32", "uint16"], "Token dtype of the Megatron dataset.")
_BATCHES = flags.DEFINE_integer("batches", 300, "Loader batches (8 x 4097 tokens) per subset kind.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Loader measurements of each kind, alternated.")
_BLOCK = flags.DEFINE_integer("block", 4096, "Documents per MegatronDataset.documents call (sequential).")
VOCAB = 99_574


def _vocab(dtype: str) -> int:
    """LLM-jp v3's vocabulary, or for uint16 the largest one Megatron stores as uint16."""
    return VOCAB if dtype == "int32" else 65_500


def _write_megatron(prefix: str, docs: int, dtype: str) -> float:
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    rng = np.random.default_rng(0)
    vocab = _vocab(dtype)
    start = time.perf_counter()
    builder = IndexedDatasetBuilder(prefix + ".bin", dtype=np.dtype(dtype).type)
    for _ in range(docs):
        doc = rng.integers(3, vocab, int(rng.integers(50, 2000)))
        builder.add_document(doc, [doc.size])
    builder.finalize(prefix + ".idx")
    return time.perf_counter() - start


def _report(what: str, reader: str, docs: int, tokens: int, checksum: int, seconds: float):
    print(json.dumps({"what": what, "reader": reader, "documents": docs, "tokens": tokens,
                      "id_sum": checksum, "seconds": round(seconds, 3), "docs_per_s": round(docs / seconds),
                      "tokens_per_s": round(tokens / seconds)}), flush=True)


def _timed(what: str, reader: str, documents):
    """Drains `documents` (an iterator of token arrays), summing every id so each token is read."""
    start, docs, tokens, checksum = time.perf_counter(), 0, 0, 0
    for doc in documents:
        docs, tokens, checksum = docs + 1, tokens + doc.size, checksum + int(doc.sum(dtype=np.int64))
    _report(what, reader, docs, tokens, checksum, time.perf_counter() - start)


def _megatron_blocks(ds: MegatronDataset):
    for lo in range(0, len(ds), _BLOCK.value):
        yield from ds.documents(lo, min(lo + _BLOCK.value, len(ds)))


def _shard_records(paths: list[str]):
    for path in paths:
        yield from read_records(path)


def _measure(ds: MegatronDataset, paths: list[str], source: NamedShardSource):
    _timed("sequential", "megatron", _megatron_blocks(ds))
    _timed("sequential", "array_record", _shard_records(paths))
    order = [int(i) for i in np.random.default_rng(1).integers(0, len(ds), _RANDOM.value)]
    _timed("random", "megatron", (ds[i] for i in order))
    _timed("random", "array_record", (decode_record(source[i]) for i in order))


def _loader(name: str, subset: Subset):
    """Training batches from a one-subset mixture; the first batch (start-up) is not timed."""
    batches = iter(train_dataset([subset], seq_len=4096, global_batch=8, seed=0))
    next(batches)
    start, checksum = time.perf_counter(), 0
    for _ in range(_BATCHES.value):
        checksum += int(next(batches)["tokens"].sum(dtype=np.int64))
    seconds, tokens = time.perf_counter() - start, _BATCHES.value * 8 * 4097
    print(json.dumps({"what": "loader", "reader": name, "batches": _BATCHES.value, "tokens": tokens,
                      "id_sum": checksum, "seconds": round(seconds, 3),
                      "batches_per_s": round(_BATCHES.value / seconds, 1),
                      "tokens_per_s": round(tokens / seconds)}), flush=True)


def _main(argv):
    del argv
    with tempfile.TemporaryDirectory() as root:
        prefix = os.path.join(root, "bench_text_document")
        written = _write_megatron(prefix, _DOCS.value, _DTYPE.value)
        vocab = _vocab(_DTYPE.value)
        tokenizer = types.SimpleNamespace(path=prefix, sha256="x", vocab_size=vocab, bos_id=1, eos_id=2)
        start = time.perf_counter()
        manifest = to_shards([prefix], os.path.join(root, "shards"), tokenizer, docs_per_shard=10_000)
        converted = time.perf_counter() - start
        shards = os.path.join(root, "shards")
        paths = shard_paths(shards, load_manifest(shards))
        start = time.perf_counter()
        ds = MegatronDataset(prefix)
        opened = time.perf_counter() - start
        print(json.dumps({"dtype": _DTYPE.value, "documents": len(ds), "tokens": ds.num_tokens,
                          "bin_mb": round(os.path.getsize(prefix + ".bin") / 1e6, 1),
                          "shards_mb": round(sum(s["bytes"] for s in manifest["shards"]) / 1e6, 1),
                          "megatron_write_s": round(written, 2), "to_shards_s": round(converted, 2),
                          "open_s": round(opened, 4)}), flush=True)
        _measure(ds, paths, NamedShardSource(paths, [s["documents"] for s in manifest["shards"]]))
        summary = {"documents": len(ds), "tokens": ds.num_tokens, "release_level": "L1"}
        for _ in range(_ROUNDS.value):  # alternated: other work on the machine affects both alike
            _loader("megatron", Subset("m", prefix, 1.0, summary, (ds,)))
            _loader("array_record", Subset("a", shards, 1.0, manifest))


if __name__ == "__main__":
    app.run(_main)
