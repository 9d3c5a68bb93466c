"""Reads documents from JSON lines (.jsonl, .jsonl.gz, .jsonl.zst) and plain text files.

Bad input is never skipped silently: a malformed JSON line, a missing or
non-string text field, invalid UTF-8 or an empty document raises
`BadInputError` naming the file and line.
"""

import glob
import gzip
import io
import json
from collections.abc import Iterator


class BadInputError(ValueError):
    pass


def _open_binary(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        try:
            import zstandard
        except ImportError as e:
            raise BadInputError(f"{path}: reading .zst needs `pip install zstandard`.") from e
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
    return open(path, "rb")


def _lines(path: str) -> Iterator[tuple[int, str]]:
    with _open_binary(path) as f:
        for number, raw in enumerate(io.BufferedReader(f) if path.endswith(".zst") else f, 1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BadInputError(f"{path}:{number}: invalid UTF-8 ({e.reason} at byte {e.start}).") from e


def _jsonl_documents(path: str, text_field: str) -> Iterator[tuple[int, str]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInputError(f"{path}:{number}: malformed JSON ({e.msg}).") from e
        if not isinstance(record, dict) or text_field not in record:
            raise BadInputError(f"{path}:{number}: no {text_field!r} field (set --text_field).")
        text = record[text_field]
        if not isinstance(text, str) or not text.strip():
            raise BadInputError(f"{path}:{number}: field {text_field!r} is empty or not a string.")
        yield number, text


def _text_documents(path: str) -> Iterator[tuple[int, str]]:
    """Plain text: documents are separated by one or more blank lines."""
    block, start = [], 0
    for number, line in _lines(path):
        if line.strip():
            start = start or number
            block.append(line)
        elif block:
            yield start, "".join(block).rstrip("\n")
            block, start = [], 0
    if block:
        yield start, "".join(block).rstrip("\n")


def iter_documents(path: str, text_field: str = "text") -> Iterator[tuple[int, str]]:
    """Yields (line number, text) for every document in `path`."""
    stem = path[: -len(".gz")] if path.endswith(".gz") else path
    stem = stem[: -len(".zst")] if stem.endswith(".zst") else stem
    if stem.endswith((".jsonl", ".json")):
        return _jsonl_documents(path, text_field)
    if stem.endswith(".txt"):
        return _text_documents(path)
    raise BadInputError(f"{path}: unknown format; expected .jsonl[.gz|.zst] or .txt.")


def expand_inputs(patterns: list[str]) -> list[str]:
    """Files matching each glob, sorted; a pattern that matches nothing is an error."""
    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if not found:
            raise BadInputError(f"--input {pattern!r} matches no file.")
        paths += found
    return paths
