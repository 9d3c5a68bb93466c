"""The shard format: ArrayRecord files of one record per document, `<s> ... </s>` as little-endian int32.

A folder of shards is `shard-NNNNN.array_record` files plus `manifest.json` (data/manifest.py),
which lists them in order.
"""

import os

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

TOKEN_DTYPE = np.dtype("<i4")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.array_record"


def encode_record(tokens: np.ndarray) -> bytes:
    return tokens.astype(TOKEN_DTYPE, copy=False).tobytes()


def decode_record(record: bytes) -> np.ndarray:
    return np.frombuffer(record, dtype=TOKEN_DTYPE)


class ShardWriter:
    """Writes documents to `shard-NNNNN.array_record` files in `folder`, `docs_per_shard` at most each;
    `shards` lists them as the manifest does (file, documents, tokens)."""

    def __init__(self, folder: str, docs_per_shard: int, compression: str = "snappy"):
        self.folder, self.limit = folder, docs_per_shard
        self.options = f"group_size:1,{compression}"
        self.shards: list[dict] = []
        self._writer = None

    def write(self, tokens: np.ndarray):
        self.write_records([encode_record(tokens)], [int(tokens.size)])

    def write_records(self, records: list[bytes], tokens: list[int]):
        """Appends encoded documents (with their token counts), rolling to a new shard when one is full."""
        done = 0
        while done < len(records):
            if self._writer is None or self.shards[-1]["documents"] == self.limit:
                self._roll()
            shard, write = self.shards[-1], self._writer.write
            take = min(len(records) - done, self.limit - shard["documents"])
            for record in records[done:done + take]:
                write(record)
            shard["documents"] += take
            shard["tokens"] += sum(tokens[done:done + take])
            done += take

    def _roll(self):
        self.close()
        name = shard_name(len(self.shards))
        self._writer = ArrayRecordWriter(os.path.join(self.folder, name), self.options)
        self.shards.append({"file": name, "documents": 0, "tokens": 0})

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def count_records(path: str) -> int:
    reader = ArrayRecordReader(path)
    try:
        return reader.num_records()
    finally:
        reader.close()


def read_records(path: str) -> list[np.ndarray]:
    reader = ArrayRecordReader(path)
    try:
        return [decode_record(record) for record in reader.read_all()]
    finally:
        reader.close()
