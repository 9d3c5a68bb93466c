"""Grain input pipeline: shuffled documents -> Megatron-style packed sequences -> batches.

Documents (already `<s> ... </s>`) are concatenated and cut into rows of
seq_len + 1 tokens (inputs and next-token targets), as Megatron and LLM-jp do.
Each JAX process reads a disjoint slice of the documents of a mixture pass. The iterator's state
is small JSON and goes into every checkpoint, so a resumed run sees exactly the
batches an uninterrupted run would.
"""

import itertools

import grain
import numpy as np

from llmjp_jax.data.mixture import Subset, check_level, one_pass
from llmjp_jax.data.shards import decode_record, load_manifest, shard_paths


def _documents(shard_dir: str, vocab_rows: int | None, training: bool = False) -> grain.MapDataset:
    manifest = load_manifest(shard_dir, vocab_rows)
    check_level(shard_dir, manifest.get("release_level", ""), training)
    return _source(shard_dir, manifest)


def _source(shard_dir: str, manifest: dict) -> grain.MapDataset:
    source = grain.sources.ArrayRecordDataSource(shard_paths(shard_dir, manifest))
    return grain.MapDataset.source(source).map(_decode)


def _decode(record: bytes) -> dict[str, np.ndarray]:
    tokens = decode_record(record)
    return {"tokens": tokens, "real": np.ones_like(tokens)}


def _full_row(row: dict[str, np.ndarray]) -> bool:
    return bool(row["real"].all())


PACKINGS = ("concat", "first_fit")


def _pack(docs: grain.IterDataset, seq_len: int, batch: int, packing: str = "concat") -> grain.IterDataset:
    """Batches of rows of seq_len + 1 tokens, packed as `packing` says."""
    if packing == "first_fit":
        return _first_fit(docs, seq_len).batch(batch, drop_remainder=True)
    if packing != "concat":
        raise ValueError(f"data.packing={packing!r}: choose one of {PACKINGS}.")
    # At the end of a finite set the packer pads the last row; `real` marks its
    # padding, and such a row is dropped, not trained on.
    packed = grain.experimental.ConcatThenSplitIterDataset(
        docs, length_struct={"tokens": seq_len + 1, "real": seq_len + 1})
    rows = packed.filter(_full_row).map(lambda row: {"tokens": row["tokens"]})
    return rows.batch(batch, drop_remainder=True)


class _SplitLong(grain.experimental.FlatMapTransform):
    """Cuts a document longer than a row into row-sized pieces (the packer refuses longer ones)."""

    max_fan_out = 1 << 20

    def __init__(self, row: int):
        self.row = row

    def flat_map(self, element):
        tokens = element["tokens"]
        return [{"tokens": tokens[i:i + self.row]} for i in range(0, len(tokens), self.row)]


def _first_fit(docs: grain.IterDataset, seq_len: int) -> grain.IterDataset:
    """Whole documents placed into rows first-fit, padded; segment ids (0 = padding) and
    positions let the model keep attention and loss inside each document."""
    pieces = grain.experimental.FlatMapIterDataset(docs, _SplitLong(seq_len + 1))
    packed = grain.experimental.FirstFitPackIterDataset(
        pieces, length_struct={"tokens": seq_len + 1}, num_packing_bins=16, shuffle_bins=False)
    return packed.map(lambda r: {"tokens": r["tokens"], "segment_ids": r["tokens_segment_ids"],
                                 "positions": r["tokens_positions"]})


def train_dataset(subsets: list[Subset], seq_len: int, local_batch: int, seed: int,
                  process_index: int = 0, process_count: int = 1, packing: str = "concat"
                  ) -> grain.IterDataset:
    """Endless batches {"tokens": int32[local_batch, seq_len + 1]} for one process.

    Each pass of the mixture is shuffled globally (reseeded every pass); process
    p then takes documents p, p + P, p + 2P, ... of that order.
    """
    mixture = one_pass(subsets, lambda s: _source(s.directory, s.manifest), seed)
    docs = mixture.shuffle(seed=seed)[process_index::process_count].repeat(None)
    return _pack(docs.to_iter_dataset(), seq_len, local_batch, packing)


def eval_batches(shard_dir: str, seq_len: int, local_batch: int, num_batches: int,
                 process_index: int = 0, process_count: int = 1, vocab_rows: int | None = None,
                 packing: str = "concat") -> list[dict[str, np.ndarray]]:
    """Up to `num_batches` held-out batches in file order (the same at every evaluation)."""
    docs = _documents(shard_dir, vocab_rows)[process_index::process_count]
    rows = _pack(docs.to_iter_dataset(), seq_len, local_batch, packing)
    batches = list(itertools.islice(rows, num_batches))
    if not batches:
        raise ValueError(f"The held-out set {shard_dir} is too small for one batch of "
                         f"{local_batch} x {seq_len + 1} tokens; lower train.global_batch or add data.")
    return batches
