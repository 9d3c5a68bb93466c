"""One work unit of a tokenization: read its byte range, parse, encode and write its shards.

Each unit is read line by line, parsed, encoded in batches by a thread (SentencePiece releases
the GIL, so parsing and writing go on meanwhile) straight into int32 arrays, and written to its
own shards; memory stays bounded by a few batches whatever the input size.
"""

import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from llmjp_jax.data import rejects
from llmjp_jax.data.readers import documents, parse_json_line, raw_lines
from llmjp_jax.data.shards import ShardWriter, encode_record
from llmjp_jax.data.tokenize.plan import Settings
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.files import fsync_dir, fsync_file, write_json

BATCH_CHARS = 1 << 18  # batches of <= 256 Ki characters


class UnitLines:
    """(line number, bytes) of a unit's lines, read from its byte range; `pos` counts bytes read."""

    def __init__(self, unit: dict):
        self.unit, self.pos = unit, 0

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        unit = self.unit
        if unit["end"] is None:  # a compressed file, read whole
            yield from raw_lines(unit["path"])
            return
        size, number = unit["end"] - unit["start"], unit["line"]
        if size == 0:
            return
        with open(unit["path"], "rb") as f:
            f.seek(unit["start"])
            for raw in f:
                self.pos += len(raw)
                yield number, raw
                number += 1
                if self.pos >= size:
                    return


def _json_text(path: str, number: int, raw: bytes, text_field: str) -> str | None:
    """The text of a JSON line: a fast path for the usual well-formed line; any other line goes to
    `readers.parse_json_line`, which returns or raises what it does when reading the whole file."""
    try:
        line = raw.decode("utf-8")
        record, end = _RAW_DECODE(line)
        text = record[text_field] if type(record) is dict and line[end:] in _LINE_ENDS else None
        if type(text) is str and text and not text.isspace():
            return text
    except (ValueError, KeyError):  # invalid UTF-8 or JSON, no text field
        pass
    return parse_json_line(path, number, raw, text_field)


_RAW_DECODE, _LINE_ENDS = json.JSONDecoder().raw_decode, ("\n", "\r\n", "")


class Job:
    """Tokenizes units into their folders under `state_dir`; one per process."""

    def __init__(self, state_dir: str, settings: dict, tokenizer: Tokenizer | str, num_threads: int,
                 batch_docs: int, report: Callable[[int, int, int, int], None]):
        self.state_dir, self.settings = state_dir, Settings(**settings)
        self.tokenizer = Tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.num_threads, self.batch_docs, self.report = num_threads, batch_docs, report
        self._encoder = ThreadPoolExecutor(1)
        self._finisher = ThreadPoolExecutor(1)  # fsync (slow on some disks) off the tokenizing path

    def run(self, unit: dict) -> Future:
        """Writes the unit's shards (and rejects) into its folder; a thread then makes them durable
        and writes the completion record, which the returned future gives."""
        index, settings = unit["index"], self.settings
        folder = os.path.join(self.state_dir, f"unit-{index:05d}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        with ShardWriter(folder, settings.docs_per_shard, settings.compression) as shards, \
                rejects.RejectLog(folder, settings.on_bad_input == "skip") as skipped:
            text_bytes = self._tokenize(unit, shards, skipped.add if skipped.enabled else None)
        files = [s["file"] for s in shards.shards] + ([rejects.FILE] if skipped.enabled else [])
        record = {"unit": index, "shards": shards.shards, "text_bytes": text_bytes,
                  "rejected": skipped.by_reason}
        return self._finisher.submit(self._finish, folder, files, record)

    def _finish(self, folder: str, files: list[str], record: dict) -> dict:
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)
        write_json(os.path.join(self.state_dir, f"unit-{record['unit']:05d}.json"), record)
        return record

    def close(self):
        """Waits for the completion records still being written."""
        self._encoder.shutdown(wait=True)
        self._finisher.shutdown(wait=True)

    def _tokenize(self, unit: dict, shards: ShardWriter, on_bad) -> int:
        """Encodes the unit's documents batch by batch; returns their text bytes. A thread encodes
        each batch (SentencePiece releases the GIL) while this one parses the next and writes."""
        text_bytes, encoding = 0, None
        for batch in self._batches(unit, on_bad):
            previous, encoding = encoding, self._encoder.submit(self._encode, *batch)
            if previous is not None:
                text_bytes += self._store(unit["index"], shards, *previous.result())
        if encoding is not None:
            text_bytes += self._store(unit["index"], shards, *encoding.result())
        return text_bytes

    def _batches(self, unit: dict, on_bad) -> Iterator[tuple[list[str], int]]:
        """(texts, input bytes they took) in batches of `batch_docs` documents or BATCH_CHARS."""
        lines = UnitLines(unit)
        batch, chars, reported = [], 0, 0
        for _, text in documents(unit["path"], lines, self.settings.text_field, on_bad, _json_text):
            batch.append(text)
            chars += len(text)
            if len(batch) == self.batch_docs or chars >= BATCH_CHARS:
                yield batch, lines.pos - reported
                batch, chars, reported = [], 0, lines.pos
        yield batch, lines.pos - reported

    def _encode(self, texts: list[str], input_bytes: int) -> tuple[list[str], int, list]:
        """`<s> ... </s>` token ids of each text as int32 arrays, without Python ints on the way."""
        encoded = self.tokenizer.sp.encode(texts, num_threads=self.num_threads, return_type="numpy",
                                           add_bos=True, add_eos=True) if texts else []
        return texts, input_bytes, encoded

    def _store(self, index: int, shards: ShardWriter, texts: list[str], input_bytes: int, encoded: list
               ) -> int:
        """Writes a batch's documents as little-endian int32 records and reports progress."""
        tokens = [len(ids) for ids in encoded]
        shards.write_records([encode_record(ids) for ids in encoded], tokens)
        text_bytes = sum(map(len, map(str.encode, texts)))  # after encode: from the cached UTF-8
        self.report(index, input_bytes, text_bytes, sum(tokens))
        return text_bytes
