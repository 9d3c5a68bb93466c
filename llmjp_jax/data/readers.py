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
from collections.abc import Callable, Iterable, Iterator

from llmjp_jax.errors import UserError

# The kinds of bad line `on_bad` may receive (`BadInputError.kind`); fixed, so counts can be keyed by them.
BAD_KINDS = ("malformed JSON", "missing text field", "empty or non-string text", "invalid UTF-8")


class BadInputError(UserError):
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


def raw_lines(path: str) -> Iterator[tuple[int, bytes]]:
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


def decode_line(path: str, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad_line(path, number, "invalid UTF-8", f"invalid UTF-8 ({e.reason} at byte {e.start}).",
                        raw) from e


def parse_json_line(path: str, number: int, raw: bytes, text_field: str) -> str | None:
    """The line's text, None for a blank line; raises BadInputError for a bad one."""
    line = decode_line(path, number, raw)
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


def compressed(path: str) -> bool:
    return path.endswith((".gz", ".zst"))


def is_plain_text(path: str) -> bool:
    """True for plain text (.txt), False for JSON lines; any other name is a BadInputError."""
    stem = path.removesuffix(".gz").removesuffix(".zst")
    if stem.endswith((".jsonl", ".json")):
        return False
    if stem.endswith(".txt"):
        return True
    raise BadInputError(f"{path}: unknown format; expected .jsonl[.gz|.zst] or .txt.")


# A JSON line's parser: (path, line number, raw bytes, text field) -> its text, None if blank.
JsonParser = Callable[[str, int, bytes, str], str | None]


def documents(path: str, lines: Iterable[tuple[int, bytes]], text_field: str = "text",
              on_bad: OnBad | None = None, json_parser: JsonParser = parse_json_line
              ) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each document in `lines`, the numbered lines of `path`
    (all of them, or a range that starts a document). JSON lines: one document per line; plain
    text: documents separated by one or more blank lines. A bad line raises BadInputError, or
    goes to `on_bad` and is left out."""
    if is_plain_text(path):
        return _text_blocks(_parsed(lines, lambda n, raw: decode_line(path, n, raw), on_bad))
    parsed = _parsed(lines, lambda n, raw: json_parser(path, n, raw, text_field), on_bad)
    return ((number, text) for number, text in parsed if text is not None)


def _parsed(lines: Iterable[tuple[int, bytes]], parse: Callable[[int, bytes], str | None],
            on_bad: OnBad | None) -> Iterator[tuple[int, str | None]]:
    """(line number, parse(number, raw)) per line; a bad line raises, or goes to `on_bad` and is left out."""
    for number, raw in lines:
        try:
            value = parse(number, raw)
        except BadInputError as e:
            if on_bad is None:
                raise
            on_bad(e)
            continue
        yield number, value


def _text_blocks(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    block, start = [], 0
    for number, line in lines:
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
    return documents(path, raw_lines(path), text_field, on_bad)


def expand_inputs(patterns: list[str]) -> list[str]:
    """Files matching each glob, sorted; a pattern that matches nothing is an error."""
    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if not found:
            raise BadInputError(f"--input {pattern!r} matches no file.")
        paths += found
    return paths
