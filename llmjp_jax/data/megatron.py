"""Megatron-LM indexed datasets (`PREFIX.idx` + `PREFIX.bin`, made by preprocess_data.py), read with numpy.

The `.idx` layout (megatron-core 0.19 `megatron/core/datasets/indexed_dataset.py`), little-endian:

  9 bytes  magic b"MMIDIDX\\x00\\x00"
  uint64   version, always 1
  uint8    dtype code of the tokens: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64,
           7 float32, 8 uint16 (preprocess_data.py picks uint16 below 65,500 pieces, else int32)
  uint64   S, the number of sequences
  uint64   D, the number of document indices (documents + 1)
  int32[S] sequence lengths, in tokens
  int64[S] sequence pointers, byte offsets into `.bin`
  int64[D] document indices: document i is sequences [d[i], d[i+1]); d[0] = 0, d[-1] = S
  int8[S]  sequence modes, only in multimodal datasets (refused here)

`.bin` holds the sequences' tokens back to back. Every Megatron writer makes the pointers the running
sum of lengths x itemsize, which is checked, so a document is one contiguous slice of `.bin`.

Documents: a document here is all its sequences joined, which is also what a shard record holds. Most
datasets have one sequence per document; with preprocess_data.py --split-sentences a document spans
several (one a sentence), and Megatron's GPTDataset samples sequences, not documents, so its shuffle
units are sentences where ours are documents; the tokens are the same. Tokens are read as written: a
Megatron document carries no BOS unless the tokenizer added one, and ends with EOD only if
preprocess_data.py ran with --append-eod (LLM-jp's scripts do); `boundary_counts` tells which.

`to_shards` (llmjp-convert megatron-to-shards) writes datasets as the project's shards + manifest;
data/megatron_subset.py makes one a mixture subset; data/blend.py reads Megatron blend lists.
"""

import os
import struct
import time

import numpy as np

import llmjp_jax
from llmjp_jax.data.manifest import MANIFEST, ShardError, write_manifest
from llmjp_jax.data.shards import ShardWriter, encode_record
from llmjp_jax.errors import MissingFileError, UserError
from llmjp_jax.files import file_sha256

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, sequences, document indices: 34 bytes
DTYPES = {1: "u1", 2: "i1", 3: "<i2", 4: "<i4", 5: "<i8", 6: "<f8", 7: "<f4", 8: "<u2"}
FLOAT_CODES = (6, 7)
SCAN_TOKENS = 1 << 24  # tokens per chunk when scanning `.bin` for its largest id
CHECK_SEQUENCES = 1 << 22  # sequences per chunk when checking the pointers
CONVERT_DOCS = 4096  # documents per read while converting to shards


def split_prefix(path: str) -> str:
    """`PREFIX`, `PREFIX.idx` or `PREFIX.bin` -> PREFIX."""
    root, ext = os.path.splitext(path)
    return root if ext in (".idx", ".bin") else path


def find_prefixes(path: str) -> list[str]:
    """The dataset prefixes in `path`: itself if it is a prefix, else every `*.idx` in the folder, sorted."""
    if os.path.isdir(path):
        prefixes = sorted(os.path.join(path, f[:-4]) for f in os.listdir(path) if f.endswith(".idx"))
        if not prefixes:
            raise MissingFileError(f"{path} holds no Megatron dataset (no .idx file).")
        return prefixes
    return [split_prefix(path)]


def _read_header(idx_path: str, size: int) -> tuple[np.dtype, int, int]:
    with open(idx_path, "rb") as f:
        raw = f.read(HEADER.size)
    if len(raw) < HEADER.size:
        raise ShardError(f"{idx_path} is truncated: {size} bytes, less than the {HEADER.size}-byte header.")
    magic, version, code, sequences, doc_indices = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ShardError(f"{idx_path} is not a Megatron index (magic {magic!r}, expected {MAGIC!r}).")
    if version != VERSION:
        raise ShardError(f"{idx_path} has index version {version}; only version {VERSION} is supported.")
    if code not in DTYPES or code in FLOAT_CODES:
        raise ShardError(f"{idx_path} has dtype code {code}, not an integer token type "
                         f"(supported: {sorted(set(DTYPES) - set(FLOAT_CODES))}).")
    return np.dtype(DTYPES[code]), sequences, doc_indices


def _expected_idx_size(sequences: int, doc_indices: int) -> int:
    return HEADER.size + 12 * sequences + 8 * doc_indices


class MegatronDataset:
    """One Megatron indexed dataset, checked at open and memory-mapped; `ds[i]` is document i as int32.

    Raises MissingFileError for a missing `.idx`/`.bin` and ShardError for a damaged one, naming the file.
    """

    def __init__(self, prefix: str):
        self.prefix = split_prefix(prefix)
        self.idx_path, self.bin_path = self.prefix + ".idx", self.prefix + ".bin"
        for path in (self.idx_path, self.bin_path):
            if not os.path.isfile(path):
                raise MissingFileError(f"Megatron dataset file {path} does not exist (prefix {self.prefix}).")
        self._open_index()
        self._open_bin()

    def _open_index(self):
        size = os.path.getsize(self.idx_path)
        self.dtype, sequences, doc_indices = _read_header(self.idx_path, size)
        expected = _expected_idx_size(sequences, doc_indices)
        if size == expected + sequences and sequences:
            raise ShardError(f"{self.idx_path} holds sequence modes (a multimodal dataset): not supported.")
        if size != expected:
            raise ShardError(f"{self.idx_path} holds {size} bytes, but its header ({sequences} sequences, "
                             f"{doc_indices} document indices) needs {expected}: it is truncated or damaged.")
        if sequences == 0:
            raise ShardError(f"{self.idx_path} holds no sequences.")
        index = np.memmap(self.idx_path, mode="r", offset=HEADER.size)
        self.sequence_lengths = index[:4 * sequences].view("<i4")
        self.sequence_pointers = index[4 * sequences:12 * sequences].view("<i8")
        self.document_indices = index[12 * sequences:].view("<i8")
        self._check_documents()
        self._check_sequences()

    def _check_documents(self):
        docs, sequences = self.document_indices, len(self.sequence_lengths)
        if len(docs) < 2:
            raise ShardError(f"{self.idx_path} lists {len(docs)} document indices; it needs at least 2 "
                             "(0 and the sequence count): damaged.")
        if docs[0] != 0 or docs[-1] != sequences:
            raise ShardError(f"{self.idx_path}: its document indices must run from 0 to {sequences} "
                             f"(the sequence count); they run from {docs[0]} to {docs[-1]}: damaged.")
        if np.any(np.diff(docs) < 0):
            raise ShardError(f"{self.idx_path}: its document indices decrease somewhere: damaged.")

    def _check_sequences(self):
        """Lengths >= 0, pointers = running sum of lengths x itemsize; sets the token offsets."""
        lengths, pointers, item = self.sequence_lengths, self.sequence_pointers, self.dtype.itemsize
        if lengths.min() < 0:
            raise ShardError(f"{self.idx_path} has a negative sequence length: damaged.")
        starts = np.empty(len(lengths) + 1, np.int64)  # token offset of each sequence, then the total
        starts[0] = 0
        np.cumsum(lengths, dtype=np.int64, out=starts[1:])
        for lo in range(0, len(lengths), CHECK_SEQUENCES):
            hi = min(lo + CHECK_SEQUENCES, len(lengths))
            if not np.array_equal(pointers[lo:hi], starts[lo:hi] * item):
                raise ShardError(f"{self.idx_path}: its sequence pointers are not the running sum of its "
                                 f"lengths (first mismatch near sequence {lo}): damaged or not contiguous.")
        self.document_starts = starts[self.document_indices]  # token offset of each document, then total

    def _open_bin(self):
        size, item = os.path.getsize(self.bin_path), self.dtype.itemsize
        if size != self.num_tokens * item:
            raise ShardError(f"{self.bin_path} holds {size} bytes, but {self.idx_path} lists "
                             f"{self.num_tokens} {self.dtype.name} tokens ({self.num_tokens * item} bytes): "
                             "truncated or mismatched.")
        # A plain ndarray view of the map: slicing a np.memmap costs a Python-level __getitem__ each time.
        mapped = np.memmap(self.bin_path, dtype=self.dtype, mode="r") if size else np.zeros(0, self.dtype)
        self.tokens = mapped.view(np.ndarray)

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1

    @property
    def num_sequences(self) -> int:
        return len(self.sequence_lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.document_starts[-1])

    def document_lengths(self) -> np.ndarray:
        return np.diff(self.document_starts)

    def __len__(self) -> int:
        return self.num_documents

    def __getitem__(self, index: int) -> np.ndarray:
        if not -self.num_documents <= index < self.num_documents:
            raise IndexError(f"document {index} of {self.num_documents} in {self.prefix}")
        index %= self.num_documents
        start, stop = self.document_starts[index], self.document_starts[index + 1]
        return np.asarray(self.tokens[start:stop], dtype=np.int32)

    def documents(self, start: int, stop: int) -> list[np.ndarray]:
        """Documents [start, stop) as int32 arrays, read as one slice."""
        bounds = self.document_starts[start:stop + 1]
        block = np.asarray(self.tokens[bounds[0]:bounds[-1]], dtype=np.int32)
        return np.split(block, bounds[1:-1] - bounds[0])

    def token_range(self) -> tuple[int, int]:
        """The smallest and largest token id in `.bin` (a scan of every token, in chunks)."""
        low, high = None, None
        for lo in range(0, self.num_tokens, SCAN_TOKENS):
            chunk = self.tokens[lo:lo + SCAN_TOKENS]
            low = int(chunk.min()) if low is None else min(low, int(chunk.min()))
            high = int(chunk.max()) if high is None else max(high, int(chunk.max()))
        return (0, -1) if low is None else (low, high)

    def check_vocab(self, vocab_size: int, scan: bool = True, tokenizer: str = "the tokenizer"):
        """Refuses a dtype that cannot hold every id of a `vocab_size`-piece vocabulary and, with `scan`,
        any token id outside [0, vocab_size)."""
        largest = np.iinfo(self.dtype).max
        if largest < vocab_size - 1:
            raise ShardError(f"{self.idx_path} stores tokens as {self.dtype.name} (ids <= {largest}), but "
                             f"{tokenizer} has {vocab_size} pieces: it was made with another tokenizer.")
        if scan:
            low, high = self.token_range()
            if low < 0 or high >= vocab_size:
                raise ShardError(f"{self.bin_path} holds token ids {low}..{high}, outside the {vocab_size} "
                                 f"pieces of {tokenizer}: it was made with another tokenizer.")

    def boundary_counts(self, bos_id: int, eod_id: int, limit: int | None = None) -> dict:
        """How many of the documents (the first `limit`, or all) start with BOS, end with EOD, are empty."""
        bounds = self.document_starts[:None if limit is None else limit + 1]
        full = np.diff(bounds) > 0
        starts, ends = bounds[:-1][full], bounds[1:][full] - 1
        return {"documents_starting_with_bos": int(np.count_nonzero(self.tokens[starts] == bos_id)),
                "documents_ending_with_eod": int(np.count_nonzero(self.tokens[ends] == eod_id)),
                "empty_documents": int(np.count_nonzero(~full))}


def to_shards(prefixes: list[str], output_dir: str, tokenizer, docs_per_shard: int = 100_000,
              language: str = "", release_level: str = "L1", compression: str = "snappy") -> dict:
    """Writes the documents of `prefixes`, in order, as a folder of shards + manifest; returns the manifest.

    Tokens are kept as they are (no BOS or EOD added; the manifest's "megatron" entry counts the
    documents that start with BOS and end with EOD). Empty documents have no record and are counted.
    Every dataset is checked against `tokenizer`'s vocabulary (dtype and every id) before writing.
    """
    start = time.time()
    if os.path.exists(os.path.join(output_dir, MANIFEST)):
        raise UserError(f"{output_dir} already holds a {MANIFEST}: choose another --output or remove it.")
    datasets = [MegatronDataset(prefix) for prefix in prefixes]
    for ds in datasets:
        ds.check_vocab(tokenizer.vocab_size, tokenizer=tokenizer.path)
    os.makedirs(output_dir, exist_ok=True)
    with ShardWriter(output_dir, docs_per_shard, compression) as writer:
        for ds in datasets:
            _write_dataset(ds, writer)
    counts = [ds.boundary_counts(tokenizer.bos_id, tokenizer.eos_id) for ds in datasets]
    shards = writer.shards
    manifest = {
        "documents": sum(s["documents"] for s in shards), "tokens": sum(s["tokens"] for s in shards),
        "text_bytes": 0, "shards": shards, "sources": [_source(ds) for ds in datasets],
        "tokenizer": {"path": os.path.abspath(tokenizer.path), "sha256": tokenizer.sha256,
                      "vocab_size": tokenizer.vocab_size},
        "language": language, "release_level": release_level,
        "tool": f"llmjp-jax {llmjp_jax.__version__} (megatron-to-shards)",
        "seconds": round(time.time() - start, 3),
        "megatron": {"bos_id": tokenizer.bos_id, "eod_id": tokenizer.eos_id,
                     **{key: sum(c[key] for c in counts) for key in counts[0]}},
    }
    if not manifest["documents"]:
        raise ShardError(f"{', '.join(prefixes)}: every document is empty.")
    write_manifest(output_dir, manifest)
    return manifest


def _write_dataset(ds: MegatronDataset, writer: ShardWriter):
    for lo in range(0, ds.num_documents, CONVERT_DOCS):
        docs = [doc for doc in ds.documents(lo, min(lo + CONVERT_DOCS, ds.num_documents)) if doc.size]
        writer.write_records([encode_record(doc) for doc in docs], [int(doc.size) for doc in docs])


def _source(ds: MegatronDataset) -> dict:
    return {"path": os.path.abspath(ds.prefix), "format": "megatron", "dtype": ds.dtype.name,
            "documents": ds.num_documents, "sequences": ds.num_sequences, "tokens": ds.num_tokens,
            "idx_bytes": os.path.getsize(ds.idx_path), "idx_sha256": file_sha256(ds.idx_path),
            "bin_bytes": os.path.getsize(ds.bin_path)}
