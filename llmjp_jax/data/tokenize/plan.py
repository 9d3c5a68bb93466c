"""The plan of a tokenization: the inputs (size, sha256) and their work units.

The inputs are cut into work units: a whole compressed file, or a byte range of an
uncompressed one that ends at a line boundary (after a blank line for .txt, whose
documents span lines). The cuts depend only on the inputs and `chunk_bytes`, never on
the number of workers, so every run with the same settings makes the same shards.
"""

import dataclasses
import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

from llmjp_jax.data.readers import compressed, is_plain_text
from llmjp_jax.data.tokenizer import Tokenizer

VERSION = 1
MIN_UNIT_BYTES, TARGET_UNITS = 4 << 20, 256  # enough units for all workers, each worth its set-up
READ_BLOCK = 1 << 22  # 4 MiB reads


@dataclasses.dataclass(frozen=True)
class Settings:
    """What shapes the shards; the restart of a run must use the same."""

    text_field: str = "text"
    docs_per_shard: int = 100_000
    chunk_bytes: int = 64 << 20
    on_bad_input: str = "error"
    compression: str = "snappy"


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make_plan(inputs: list[str], tokenizer: Tokenizer, settings: Settings) -> dict:
    """Sources (size, sha256) and work units of `inputs`, in input order; reads each input once,
    several at a time (hashing and reading release the GIL)."""
    sizes = [os.path.getsize(path) for path in inputs]
    unit_bytes = min(settings.chunk_bytes, max(MIN_UNIT_BYTES, sum(sizes) // TARGET_UNITS))
    with ThreadPoolExecutor(min(16, cpu_count())) as pool:
        planned = list(pool.map(functools.partial(_plan_file, unit_bytes=unit_bytes), inputs, sizes))
    units = [unit for _, file_units in planned for unit in file_units]
    for index, unit in enumerate(units):
        unit["index"] = index
    return {"version": VERSION, "sources": [source for source, _ in planned],
            "settings": dataclasses.asdict(settings),
            "tokenizer": {"path": os.path.abspath(tokenizer.path), "sha256": tokenizer.sha256},
            "unit_bytes": unit_bytes, "units": units}


def _plan_file(path: str, size: int, unit_bytes: int) -> tuple[dict, list[dict]]:
    """The file's source entry and units: its byte ranges, each with the number of its first line."""
    text, whole = is_plain_text(path), compressed(path)
    starts = [0] if whole else _unit_starts(path, size, unit_bytes, text)
    sha256, first_lines = _scan(path, starts[1:])
    ends = starts[1:] + [None if whole else size]
    return ({"path": os.path.abspath(path), "bytes": size, "sha256": sha256},
            [{"path": path, "text": text, "start": start, "end": end, "line": line}
             for start, end, line in zip(starts, ends, first_lines)])


def _unit_starts(path: str, size: int, unit_bytes: int, text: bool) -> list[int]:
    """Offsets where the units of an uncompressed file begin, about `unit_bytes` apart."""
    starts = [0]
    with open(path, "rb") as f:
        while starts[-1] + unit_bytes < size:
            cut = _boundary(f, starts[-1] + unit_bytes, text)
            if cut >= size:
                break
            starts.append(cut)
    return starts


def _boundary(f, offset: int, text: bool) -> int:
    """The first line start at or after `offset`; for text, the first one after a blank line,
    where no document continues, so a unit parses exactly as it would within the whole file."""
    f.seek(offset - 1)
    f.readline()
    while text:
        raw = f.readline()
        if not raw or _is_blank(raw):
            break
    return f.tell()


def _is_blank(raw: bytes) -> bool:
    try:
        return not raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


def _scan(path: str, cuts: list[int]) -> tuple[str, list[int]]:
    """The file's sha256 and the number of the first line of each unit, in one read."""
    digest, lines, pos, firsts = hashlib.sha256(), 0, 0, [1]
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            digest.update(block)
            counted = 0
            while len(firsts) <= len(cuts) and cuts[len(firsts) - 1] <= pos + len(block):
                cut = cuts[len(firsts) - 1] - pos
                lines += block.count(b"\n", counted, cut)
                counted = cut
                firsts.append(lines + 1)
            lines += block.count(b"\n", counted)
            pos += len(block)
    return digest.hexdigest(), firsts
