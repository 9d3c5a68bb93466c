"""Grain input pipeline: shuffled documents -> Megatron-style packed sequences -> batches.

Documents (already `<s> ... </s>`) are concatenated and cut into rows of
seq_len + 1 tokens (inputs and next-token targets), as Megatron and LLM-jp do.
The data is split into a fixed number V of loader shards (data.loader_shards):
shard s reads documents s, s + V, s + 2V, ... of each globally shuffled mixture
pass, packs them on its own, and gives global_batch / V rows per step. JAX process
p of P owns the contiguous shards [p V/P, (p+1) V/P) and reads only their documents;
its local batch is their rows in shard order. So the global batch (rows and order)
is the same for every P dividing V, and each host loads only its part.

Each shard's iterator state is small JSON; a checkpoint holds the states of all V
shards, so a resumed run, with any such P, sees exactly the batches an
uninterrupted run would.
"""

import itertools
import math

import grain
import numpy as np

from llmjp_jax.data.manifest import ShardError, load_manifest, shard_paths
from llmjp_jax.data.megatron_subset import megatron_documents
from llmjp_jax.data.mixture import Subset, check_level, one_pass
from llmjp_jax.data.settings import LOADER_SHARDS, PACKINGS
from llmjp_jax.data.shards import decode_record
from llmjp_jax.errors import UserError


def _documents(shard_dir: str, vocab_rows: int | None, training: bool = False,
               verify: str = "size", setting: str = "") -> grain.MapDataset:
    manifest = load_manifest(shard_dir, vocab_rows, verify, setting)
    check_level(shard_dir, manifest.get("release_level", ""), training)
    return _source(shard_dir, manifest)


def _source(shard_dir: str, manifest: dict) -> grain.MapDataset:
    source = NamedShardSource(shard_paths(shard_dir, manifest), [s["documents"] for s in manifest["shards"]])
    return grain.MapDataset.source(source).map(_decode)


class NamedShardSource:
    """Grain's ArrayRecord source, whose read errors name the shard and the record.

    Riegeli finds damaged bytes only when it reads them (a block checksum), which may be long
    into a run; its own error names neither. Grain offers no hook for this, hence the wrapper.
    """

    def __init__(self, paths: list[str], counts: list[int]):
        self._source = grain.sources.ArrayRecordDataSource(paths)
        self._paths, self._starts = paths, list(itertools.accumulate([0] + counts[:-1]))

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> bytes:
        try:
            return self._source[index]
        except RuntimeError as e:
            raise self._error(index, e) from e

    def __getitems__(self, indices):
        try:
            return self._source.__getitems__(indices)
        except RuntimeError:
            return [self[i] for i in indices]  # finds and names the record that fails

    def _error(self, index: int, error: Exception) -> ShardError:
        shard = max(i for i, start in enumerate(self._starts) if start <= index)
        return ShardError(f"Shard {self._paths[shard]}: record {index - self._starts[shard]} cannot be "
                          f"read ({error}). The shard was damaged after llmjp-tokenize wrote it: re-run "
                          f"llmjp-tokenize for it, or set data.verify_shards='sha256' to check every shard "
                          f"before training.")

    def __repr__(self) -> str:
        return f"NamedShardSource({len(self._paths)} shards)"


def _decode(record: bytes) -> dict[str, np.ndarray]:
    tokens = decode_record(record)
    return {"tokens": tokens, "real": np.ones_like(tokens)}


def _full_row(row: dict[str, np.ndarray]) -> bool:
    return bool(row["real"].all())




def _pack(docs: grain.IterDataset, seq_len: int, batch: int, packing: str = "concat") -> grain.IterDataset:
    """Batches of rows of seq_len + 1 tokens, packed as `packing` says."""
    if packing == "first_fit":
        return _first_fit(docs, seq_len).batch(batch, drop_remainder=True)
    if packing != "concat":
        raise UserError(f"data.packing={packing!r}: choose one of {PACKINGS}.")
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


def owned_shards(shards: int, process_index: int, process_count: int) -> range:
    """The contiguous block of loader shards that process `process_index` reads."""
    if shards % process_count:
        raise UserError(f"data.loader_shards={shards} is not divisible by the {process_count} processes.")
    per = shards // process_count
    return range(process_index * per, (process_index + 1) * per)


def _rows_per_shard(global_batch: int, shards: int | None) -> tuple[int, int]:
    """(shards, rows each shard gives per batch); None picks the default that divides the batch."""
    shards = shards or math.gcd(global_batch, LOADER_SHARDS)
    if global_batch % shards:
        raise UserError(f"data.loader_shards={shards} does not divide train.global_batch={global_batch}.")
    return shards, global_batch // shards


def _read_options(local_shards: int) -> grain.ReadOptions:
    """Grain's default threads and prefetch, shared among this process's shards."""
    default = grain.ReadOptions()
    return grain.ReadOptions(num_threads=max(1, default.num_threads // local_shards),
                             prefetch_buffer_size=max(1, default.prefetch_buffer_size // local_shards))


class ShardedIterator:
    """Next batch = the next batch of each owned shard, concatenated in shard order.

    get_state() -> {str(shard): grain state} for the owned shards; set_state takes such
    a dict for all `shards` shards (e.g. merged from every process) and keeps its own.
    """

    def __init__(self, iterators: dict[int, grain.DatasetIterator], shards: int):
        self._iters, self.shards = iterators, shards

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        parts = [next(it) for it in self._iters.values()]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def get_state(self) -> dict[str, dict]:
        return {str(s): it.get_state() for s, it in self._iters.items()}

    def set_state(self, state: dict[str, dict]):
        if len(state) != self.shards or any(str(s) not in state for s in self._iters):
            raise UserError(f"The data state holds loader shards {sorted(state, key=int)}, but this run "
                             f"has data.loader_shards={self.shards}; set it as the saving run did.")
        for s, it in self._iters.items():
            it.set_state(_grain_tuples(state[str(s)]))


def _grain_tuples(state):
    """Undoes what JSON did to Grain's state: its concat packer compares remainder slices
    with the tuple (-1, -1), which a list never equals (it would resume with a wrong row)."""
    if isinstance(state, dict):
        return {k: ({n: tuple(v) for n, v in value.items()} if k == "remainder_slices"
                    else _grain_tuples(value)) for k, value in state.items()}
    if isinstance(state, list):
        return [_grain_tuples(value) for value in state]
    return state


class ShardedDataset:
    """The owned shards' datasets; iter() gives a fresh ShardedIterator."""

    def __init__(self, datasets: dict[int, grain.IterDataset], shards: int):
        self.datasets, self.shards = datasets, shards

    def __iter__(self) -> ShardedIterator:
        return ShardedIterator({s: iter(ds) for s, ds in self.datasets.items()}, self.shards)


def _sharded(docs: grain.MapDataset, seq_len: int, global_batch: int, shards: int | None,
             process_index: int, process_count: int, packing: str, repeat: bool) -> ShardedDataset:
    """Shard s packs docs[s::V] on its own; this process keeps its block of shards."""
    shards, rows = _rows_per_shard(global_batch, shards)
    owned = owned_shards(shards, process_index, process_count)
    options = _read_options(len(owned))
    datasets = {}
    for s in owned:
        part = docs[s::shards].repeat(None) if repeat else docs[s::shards]
        datasets[s] = _pack(part.to_iter_dataset(options), seq_len, rows, packing)
    return ShardedDataset(datasets, shards)


def train_dataset(subsets: list[Subset], seq_len: int, global_batch: int, seed: int,
                  process_index: int = 0, process_count: int = 1, packing: str = "concat",
                  shards: int | None = None) -> ShardedDataset:
    """Endless batches {"tokens": int32[global_batch / P, seq_len + 1]} for process p of P.

    Each pass of the mixture is shuffled globally (reseeded every pass); loader shard
    s of V takes documents s, s + V, ... of that order (see the module docstring).
    """
    mixture = one_pass(subsets, _subset_documents, seed)
    return _sharded(mixture.shuffle(seed=seed), seq_len, global_batch, shards, process_index,
                    process_count, packing, repeat=True)


def _subset_documents(subset: Subset) -> grain.MapDataset:
    """A subset's documents: its Megatron datasets, or its folder of shards."""
    if subset.megatron:
        return megatron_documents(subset.megatron)
    return _source(subset.directory, subset.manifest)


def eval_batches(shard_dir: str, seq_len: int, global_batch: int, num_batches: int,
                 process_index: int = 0, process_count: int = 1, vocab_rows: int | None = None,
                 packing: str = "concat", shards: int | None = None, verify: str = "size",
                 setting: str = "data.eval_dir", manifest: dict | None = None
                 ) -> list[dict[str, np.ndarray]]:
    """Up to `num_batches` held-out batches (this process's rows), the same at every evaluation.

    Sharded like training data (documents in file order), so the evaluated global batches
    do not depend on the number of processes. `manifest`: the folder's, already read and checked
    by the caller (load_manifest with these vocab_rows and verify), so it is not read again.
    """
    if manifest is None:
        docs = _documents(shard_dir, vocab_rows, verify=verify, setting=setting)
    else:
        docs = _source(shard_dir, manifest)
    rows = _sharded(docs, seq_len, global_batch, shards, process_index, process_count, packing,
                    repeat=False)
    batches = list(itertools.islice(rows, num_batches))
    if not batches:
        raise ShardError(f"The held-out set {shard_dir} ({setting}) is too small for one batch of "
                         f"{global_batch} x {seq_len + 1} tokens; lower train.global_batch or add data.")
    return batches
