"""Reads documents from JSON lines (.jsonl, .jsonl.gz, .jsonl.zst) and plain text files.

Bad input is never skipped silently: by default a malformed JSON line, a
missing or non-string text field, invalid UTF-8 or an empty document raises
`BadInputError` naming the file and line. A caller that wants to go on past
such lines passes `on_bad`, which receives each one (to record it) instead.
"""

import glob
import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator

# The kinds of bad line `on_bad` may receive (`BadInputError.kind`); fixed, so counts can be keyed by them.
BAD_KINDS = ("malformed JSON", "missing text field", "empty or non-string text", "invalid UTF-8")


class BadInputError(ValueError):
    """Bad input. For a bad line, `kind` is one of BAD_KINDS, `detail` the message without its
    `path:line: ` prefix and `raw` the line's bytes; file-level errors leave them unset."""

    def __init__(self, message: str, *, path: str = "", line: int = 0, kind: str = "", detail: str = "",
                 raw: bytes = b""):
        super().__init__(message)
        self.path, self.line, self.kind, self.detail, self.raw = path, line, kind, detail, raw


def _bad_line(path: str, number: int, kind: str, detail: str, raw: bytes) -> BadInputError:
    return BadInputError(f"{path}:{number}: {detail}", path=path, line=number, kind=kind, detail=detail,
                         raw=raw)


OnBad = Callable[[BadInputError], None]


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


def _decompression_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (EOFError, gzip.BadGzipFile, zlib.error)
    try:
        import zstandard
        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors


def _raw_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of every line; a truncated or damaged compressed file raises
    BadInputError naming it and the last good line (its lines after that are unreadable)."""
    number = 0
    try:
        with _open_binary(path) as f:
            for number, raw in enumerate(io.BufferedReader(f) if path.endswith(".zst") else f, 1):
                yield number, raw
    except _decompression_errors() as e:
        raise BadInputError(
            f"{path}: the compressed data is truncated or damaged after line {number} "
            f"({type(e).__name__}: {e}); re-create the file (its later lines cannot be read).",
            path=path, line=number) from e


def _decode(path: str, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad_line(path, number, "invalid UTF-8", f"invalid UTF-8 ({e.reason} at byte {e.start}).",
                        raw) from e


def _parse_json_line(path: str, number: int, raw: bytes, text_field: str) -> str | None:
    """The line's text, None for a blank line; raises BadInputError for a bad one."""
    line = _decode(path, number, raw)
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise _bad_line(path, number, "malformed JSON", f"malformed JSON ({e.msg}).", raw) from e
    if not isinstance(record, dict) or text_field not in record:
        raise _bad_line(path, number, "missing text field", f"no {text_field!r} field (set --text_field).",
                        raw)
    text = record[text_field]
    if not isinstance(text, str) or not text.strip():
        raise _bad_line(path, number, "empty or non-string text",
                        f"field {text_field!r} is empty or not a string.", raw)
    return text


def _parsed(path: str, parse: Callable[[int, bytes], str | None], on_bad: OnBad | None
            ) -> Iterator[tuple[int, str | None]]:
    """(line number, parse(number, raw)) per line; a bad line raises, or goes to `on_bad` and is left out."""
    for number, raw in _raw_lines(path):
        try:
            value = parse(number, raw)
        except BadInputError as e:
            if on_bad is None:
                raise
            on_bad(e)
            continue
        yield number, value


def _jsonl_documents(path: str, text_field: str, on_bad: OnBad | None) -> Iterator[tuple[int, str]]:
    for number, text in _parsed(path, lambda n, raw: _parse_json_line(path, n, raw, text_field), on_bad):
        if text is not None:
            yield number, text


def _text_documents(path: str, on_bad: OnBad | None) -> Iterator[tuple[int, str]]:
    """Plain text: documents are separated by one or more blank lines."""
    block, start = [], 0
    for number, line in _parsed(path, lambda n, raw: _decode(path, n, raw), on_bad):
        if line.strip():
            start = start or number
            block.append(line)
        elif block:
            yield start, "".join(block).rstrip("\n")
            block, start = [], 0
    if block:
        yield start, "".join(block).rstrip("\n")


def iter_documents(path: str, text_field: str = "text", on_bad: OnBad | None = None
                   ) -> Iterator[tuple[int, str]]:
    """Yields (line number, text) for every document in `path`.

    A bad line raises BadInputError unless `on_bad` is given: then it gets the error and the
    line is left out, so the caller decides how skipped lines are recorded.
    """
    stem = path[: -len(".gz")] if path.endswith(".gz") else path
    stem = stem[: -len(".zst")] if stem.endswith(".zst") else stem
    if stem.endswith((".jsonl", ".json")):
        return _jsonl_documents(path, text_field, on_bad)
    if stem.endswith(".txt"):
        return _text_documents(path, on_bad)
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
