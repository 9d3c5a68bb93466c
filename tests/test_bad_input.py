"""Bad input lines: an error naming file:line by default, or skipped and listed with on_bad_input=skip."""

import gzip
import json
import os
import subprocess
import sys

import pytest

from llmjp_jax.data.manifest import read_documents
from llmjp_jax.data.readers import BAD_KINDS, BadInputError, iter_documents
from llmjp_jax.data.tokenize import tokenize_files
from llmjp_jax.data.tokenizer import Tokenizer

from .conftest import ROOT

# (bad line, the kind it is counted under, the start of the message it carries)
BAD_LINES = [
    (b'{"text": "cut off', "malformed JSON", "malformed JSON ("),
    (b'{"body": "no text field"}', "missing text field", "no 'text' field"),
    (b'["text", "a list, not an object"]', "missing text field", "no 'text' field"),
    (b'{"text": "   "}', "empty or non-string text", "field 'text' is empty or not a string"),
    (b'{"text": 42}', "empty or non-string text", "field 'text' is empty or not a string"),
    (b'{"text": "\xff\xfe broken"}', "invalid UTF-8", "invalid UTF-8 (invalid start byte at byte 10)"),
]
IDS = [f"{kind}-{i}" for i, (_, kind, _) in enumerate(BAD_LINES)]


def _good(prefix: str, n: int) -> list[str]:
    return [f"{prefix} 文書 {i}: 日本語と English の混ざった文。" for i in range(n)]


def _json_line(text: str) -> bytes:
    return json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")


def _write(path, lines: list[bytes]) -> str:
    """Writes `lines` to `path`, compressed as its suffix (.gz, .zst) says."""
    data = b"\n".join(lines) + b"\n"
    path = str(path)
    if path.endswith(".gz"):
        data = gzip.compress(data)
    elif path.endswith(".zst"):
        data = pytest.importorskip("zstandard").ZstdCompressor().compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _decoded(out_dir, manifest: dict, tok: Tokenizer) -> list[str]:
    """Every document in the shards, decoded without its <s> and </s>, in order."""
    return [tok.decode(ids[1:-1]) for ids in read_documents(str(out_dir))]


def _rejects(out_dir) -> list[dict]:
    with open(os.path.join(out_dir, "rejects.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _counts(**by_kind) -> dict:
    return {kind: by_kind.get(kind, 0) for kind in BAD_KINDS}


@pytest.fixture(scope="module")
def tok(corpus):
    return Tokenizer(corpus["tokenizer"])


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
@pytest.mark.parametrize("bad, kind, message", BAD_LINES, ids=IDS)
def test_skip_keeps_good_documents_and_lists_bad_lines(tok, tmp_path, suffix, bad, kind, message):
    good_a, good_b = _good("a", 3), _good("b", 2)
    a = _write(tmp_path / f"a{suffix}", [_json_line(good_a[0]), bad, _json_line(good_a[1]), b"",
                                         _json_line(good_a[2]), bad])
    b = _write(tmp_path / f"b{suffix}", [bad, _json_line(good_b[0]), _json_line(good_b[1])])
    out = tmp_path / "out"
    manifest = tokenize_files([a, b], str(out), tok, docs_per_shard=2, batch_docs=2, on_bad_input="skip")

    assert _decoded(out, manifest, tok) == good_a + good_b
    assert manifest["documents"] == 5
    assert manifest["rejected"] == {"count": 3, "by_reason": _counts(**{kind: 3}), "file": "rejects.jsonl"}
    rejects = _rejects(out)
    assert [(r["file"], r["line"], r["kind"]) for r in rejects] == [
        (os.path.abspath(a), 2, kind), (os.path.abspath(a), 6, kind), (os.path.abspath(b), 1, kind)]
    assert all(r["reason"].startswith(message) for r in rejects)
    assert all(r["raw"] == bad.decode("utf-8", errors="replace") for r in rejects)


@pytest.mark.parametrize("bad, kind, message", BAD_LINES, ids=IDS)
def test_default_raises_the_reason_that_skip_records(tok, tmp_path, bad, kind, message):
    path = _write(tmp_path / "in.jsonl", [_json_line("first"), bad, _json_line("third")])
    with pytest.raises(BadInputError, match=r"in\.jsonl:2: ") as raised:
        tokenize_files([path], str(tmp_path / "out"), tok)
    assert raised.value.kind == kind and str(raised.value).startswith(f"{path}:2: {message}")
    assert not os.path.exists(tmp_path / "out" / "rejects.jsonl")
    tokenize_files([path], str(tmp_path / "skip"), tok, on_bad_input="skip")
    assert _rejects(tmp_path / "skip")[0]["reason"] == str(raised.value).removeprefix(f"{path}:2: ")


def test_every_kind_in_one_file_is_counted_by_reason(tok, tmp_path):
    good = _good("g", len(BAD_LINES) + 1)
    lines = [_json_line(good[0])]
    for text, (bad, _, _) in zip(good[1:], BAD_LINES):
        lines += [bad, _json_line(text)]
    path = _write(tmp_path / "mixed.jsonl", lines)
    manifest = tokenize_files([path], str(tmp_path / "out"), tok, on_bad_input="skip")

    assert _decoded(tmp_path / "out", manifest, tok) == good
    assert manifest["rejected"]["by_reason"] == _counts(**{
        "malformed JSON": 1, "missing text field": 2, "empty or non-string text": 2, "invalid UTF-8": 1})
    assert manifest["rejected"]["count"] == len(BAD_LINES)
    rejects = _rejects(tmp_path / "out")
    assert [(r["line"], r["kind"]) for r in rejects] == [
        (2 + 2 * i, kind) for i, (_, kind, _) in enumerate(BAD_LINES)]


def test_plain_text_skips_a_line_that_is_not_utf8(tok, tmp_path):
    lines = [b"one", b"\xff\xfe not utf-8", b"still one", b"", b"two", b"", b"\xc3 bad", b"", b"three"]
    path = _write(tmp_path / "b.txt", lines)
    with pytest.raises(BadInputError, match=r"b\.txt:2: invalid UTF-8"):
        list(iter_documents(path))
    seen = []
    assert list(iter_documents(path, on_bad=seen.append)) == [(1, "one\nstill one"), (5, "two"), (9, "three")]
    assert [(e.line, e.kind) for e in seen] == [(2, "invalid UTF-8"), (7, "invalid UTF-8")]

    manifest = tokenize_files([path], str(tmp_path / "out"), tok, on_bad_input="skip")
    assert _decoded(tmp_path / "out", manifest, tok) == ["one\nstill one", "two", "three"]
    assert manifest["rejected"] == {"count": 2, "by_reason": _counts(**{"invalid UTF-8": 2}),
                                    "file": "rejects.jsonl"}
    assert [(r["line"], r["raw"]) for r in _rejects(tmp_path / "out")] == [
        (2, "\ufffd\ufffd not utf-8"), (7, "\ufffd bad")]


def test_raw_is_truncated_to_1000_characters(tok, tmp_path):
    long_bad = b'{"text": "' + "長".encode() * 3000
    path = _write(tmp_path / "long.jsonl", [_json_line("kept"), long_bad])
    tokenize_files([path], str(tmp_path / "out"), tok, on_bad_input="skip")
    (reject,) = _rejects(tmp_path / "out")
    assert reject["raw"] == long_bad.decode()[:1000] and len(reject["raw"]) == 1000


def test_clean_input_and_error_mode_leave_no_stale_rejects(tok, tmp_path):
    bad = _write(tmp_path / "bad.jsonl", [_json_line("kept"), b"{"])
    clean = _write(tmp_path / "clean.jsonl", [_json_line("kept")])
    out = str(tmp_path / "out")
    assert tokenize_files([bad], out, tok, on_bad_input="skip")["rejected"]["count"] == 1
    manifest = tokenize_files([clean], out, tok, on_bad_input="skip")
    assert manifest["rejected"] == {"count": 0, "by_reason": _counts(), "file": "rejects.jsonl"}
    assert _rejects(out) == []
    manifest = tokenize_files([clean], out, tok)
    assert manifest["rejected"] == {"count": 0, "by_reason": _counts(), "file": None}
    assert not os.path.exists(os.path.join(out, "rejects.jsonl"))
    with pytest.raises(ValueError, match="on_bad_input"):
        tokenize_files([clean], out, tok, on_bad_input="ignore")


def _cli(tok_path, inputs, out, *flags):
    cmd = [sys.executable, "-m", "llmjp_jax.cli.tokenize", f"--input={inputs}", f"--output_dir={out}",
           f"--tokenizer={tok_path}", *flags]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_errors_by_default_and_skips_on_request(corpus, tmp_path):
    path = _write(tmp_path / "in.jsonl", [_json_line("first"), b'{"text": 1}', _json_line("third")])
    failed = _cli(corpus["tokenizer"], path, tmp_path / "out")
    assert failed.returncode != 0
    assert f"{path}:2: field 'text' is empty or not a string" in failed.stdout + failed.stderr
    assert not os.path.exists(tmp_path / "out" / "manifest.json")

    done = _cli(corpus["tokenizer"], path, tmp_path / "out", "--on_bad_input=skip")
    assert done.returncode == 0, done.stdout + done.stderr
    rejects_path = os.path.join(tmp_path / "out", "rejects.jsonl")
    last_line = done.stdout.strip().splitlines()[-1]
    assert "2 documents, " in last_line and f"rejected lines: 1, listed in {rejects_path}" in last_line
    assert [(r["line"], r["kind"]) for r in _rejects(tmp_path / "out")] == [(2, "empty or non-string text")]
    with open(tmp_path / "out" / "manifest.json", encoding="utf-8") as f:
        assert json.load(f)["rejected"]["count"] == 1
