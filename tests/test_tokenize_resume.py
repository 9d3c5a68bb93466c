"""llmjp-tokenize in parallel and resumed: the same shards as one uninterrupted process makes."""

import glob
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from llmjp_jax.data import tokenize
from llmjp_jax.data.manifest import read_documents
from llmjp_jax.data.readers import BadInputError, iter_documents
from llmjp_jax.data.tokenize import ResumeMismatch, tokenize_files
from llmjp_jax.data.tokenize import state as tokenize_state
from llmjp_jax.data.tokenize import unit as tokenize_unit
from llmjp_jax.data.tokenizer import Tokenizer, train_tokenizer
from llmjp_jax.log import get_logger

from .conftest import ROOT, SAMPLE

TOTALS = ("documents", "tokens", "text_bytes", "shards", "sources", "rejected")


@pytest.fixture(scope="module")
def tok(corpus):
    return Tokenizer(corpus["tokenizer"])


def _sample_texts() -> list[str]:
    return [t for path in sorted(glob.glob(os.path.join(SAMPLE, "train", "*.jsonl")))
            for _, t in iter_documents(path)]


def _write_jsonl(path, texts: list[str], bad: dict[int, bytes] | None = None) -> str:
    """`texts` as JSON lines; `bad` puts raw lines at 0-based line positions."""
    lines = [json.dumps({"text": t}, ensure_ascii=False).encode() for t in texts]
    for position, raw in sorted((bad or {}).items()):
        lines.insert(position, raw)
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return str(path)


def _inputs(tmp_path) -> list[str]:
    """JSON lines, plain text and gzip: several units each for the first two with small chunks."""
    texts = _sample_texts()
    jsonl = _write_jsonl(tmp_path / "a.jsonl", texts[:900])
    txt = tmp_path / "b.txt"
    txt.write_text("\n\n".join(t.replace("\n\n", "\n") for t in texts[900:1500]) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts[1500:])
    return [jsonl, str(txt), str(tmp_path / "c.jsonl.gz")]


def _shard_files(out) -> dict[str, bytes]:
    return {name: open(os.path.join(out, name), "rb").read()
            for name in sorted(os.listdir(out)) if name.startswith("shard-")}


def _decoded(out, manifest: dict, tok: Tokenizer) -> list[str]:
    return [tok.decode(ids[1:-1]) for ids in read_documents(str(out))]


def test_two_workers_make_the_shards_of_one(tok, tmp_path, caplog):
    inputs = _inputs(tmp_path)
    kwargs = dict(docs_per_shard=97, chunk_bytes=150_000)
    one = tokenize_files(inputs, str(tmp_path / "one"), tok, num_workers=1, **kwargs)
    get_logger().addHandler(caplog.handler)
    try:
        two = tokenize_files(inputs, str(tmp_path / "two"), tok, num_workers=2, log_every=1e-6, **kwargs)
    finally:
        get_logger().removeHandler(caplog.handler)
    progress = r"tokenize: [\d.]+/[\d.]+ MB \(\d+%\), \d+/\d+ units, [\d.]+ MB/s of text, \d+ tokens/s, ETA "
    assert re.search(progress, caplog.text)
    assert one["units"]["count"] >= 8 and (one["units"]["workers"], two["units"]["workers"]) == (1, 2)
    assert _shard_files(tmp_path / "one") == _shard_files(tmp_path / "two")
    assert all(one[k] == two[k] for k in TOTALS)
    expected = [t for path in inputs for _, t in iter_documents(path)]
    assert _decoded(tmp_path / "two", two, tok) == expected and two["documents"] == len(expected)
    assert not os.path.exists(tmp_path / "two" / tokenize.STATE_DIR)


def test_rejects_of_many_units_are_those_of_one(tok, tmp_path):
    texts = _sample_texts()[:600]
    bad = {3: b'{"text": 1}', 250: b"{broken", 251: b'{"body": "x"}', 590: b'{"text": "\xff"}'}
    path = _write_jsonl(tmp_path / "in.jsonl", texts, bad)
    whole = tokenize_files([path], str(tmp_path / "whole"), tok, on_bad_input="skip")
    split = tokenize_files([path], str(tmp_path / "split"), tok, on_bad_input="skip", num_workers=2,
                           chunk_bytes=50_000)
    assert whole["units"]["count"] == 1 and split["units"]["count"] >= 8
    assert split["rejected"] == whole["rejected"] and split["rejected"]["count"] == 4
    with open(tmp_path / "split" / "rejects.jsonl", encoding="utf-8") as f:
        rejects = f.read()
    assert rejects == (tmp_path / "whole" / "rejects.jsonl").read_text(encoding="utf-8")
    assert [json.loads(r)["line"] for r in rejects.splitlines()] == [p + 1 for p in sorted(bad)]
    assert _decoded(tmp_path / "split", split, tok) == texts


def test_error_names_the_first_bad_line_in_input_order(tok, tmp_path):
    texts = _sample_texts()[:600]
    path = _write_jsonl(tmp_path / "in.jsonl", texts, {550: b"{late", 40: b'{"text": 2}'})
    with pytest.raises(BadInputError, match=r"in\.jsonl:41: field 'text'"):
        tokenize_files([path], str(tmp_path / "out"), tok, num_workers=2, chunk_bytes=30_000)
    assert not os.path.exists(tmp_path / "out" / "manifest.json")
    assert not os.path.exists(tmp_path / "out" / tokenize.STATE_DIR)


class _Killed(Exception):
    pass


def _interrupted_run(monkeypatch, inputs, out, tok, after_units: int, **kwargs):
    """A run stopped after `after_units` units, as a kill would stop it (the state stays)."""
    run, done = tokenize_unit.Job.run, []

    def run_then_stop(job, unit):
        if len(done) == after_units:
            raise _Killed
        done.append(run(job, unit))
        return done[-1]

    with monkeypatch.context() as patch:
        patch.setattr(tokenize_unit.Job, "run", run_then_stop)
        with pytest.raises(_Killed):
            tokenize_files(inputs, out, tok, **kwargs)
    assert len(glob.glob(os.path.join(out, tokenize.STATE_DIR, "unit-*.json"))) == after_units


def test_changed_input_tokenizer_or_settings_are_refused(tok, tmp_path, monkeypatch):
    inputs = _inputs(tmp_path)
    out, kwargs = str(tmp_path / "out"), dict(docs_per_shard=97, chunk_bytes=150_000)
    _interrupted_run(monkeypatch, inputs, out, tok, 3, **kwargs)
    original = open(inputs[1], "rb").read()
    same_size = original.replace("。".encode(), "、".encode(), 1)
    assert len(same_size) == len(original) and same_size != original
    for changed in (original + b"\nmore text\n", same_size):
        with open(inputs[1], "wb") as f:
            f.write(changed)
        with pytest.raises(ResumeMismatch, match=rf"Input {inputs[1]} changed"):
            tokenize_files(inputs, out, tok, **kwargs)
    with open(inputs[1], "wb") as f:
        f.write(original)
    other = Tokenizer(train_tokenizer([inputs[0]], str(tmp_path / "other"), vocab_size=1000))
    with pytest.raises(ResumeMismatch, match=r"Tokenizer .*other\.model"):
        tokenize_files(inputs, out, other, **kwargs)
    with pytest.raises(ResumeMismatch, match=r"docs_per_shard=97 \(now 98\)"):
        tokenize_files(inputs, out, tok, docs_per_shard=98, chunk_bytes=150_000)

    resumed = tokenize_files(inputs, out, tok, num_workers=2, **kwargs)
    whole = tokenize_files(inputs, str(tmp_path / "whole"), tok, **kwargs)
    assert resumed["units"]["resumed"] == 3
    assert _shard_files(out) == _shard_files(tmp_path / "whole")
    assert all(resumed[k] == whole[k] for k in TOTALS)


def test_a_run_killed_while_moving_shards_into_place_finishes_them(tok, tmp_path, monkeypatch):
    inputs, kwargs = _inputs(tmp_path), dict(docs_per_shard=97, chunk_bytes=150_000)
    out, replace, moved = str(tmp_path / "out"), os.replace, []

    def replace_then_stop(source, target):
        if os.path.basename(target).startswith("shard-"):
            if len(moved) == 5:
                raise _Killed
            moved.append(target)
        replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(tokenize_state.os, "replace", replace_then_stop)
        with pytest.raises(_Killed):
            tokenize_files(inputs, out, tok, **kwargs)
    assert len(moved) == 5 and not os.path.exists(os.path.join(out, "manifest.json"))
    resumed = tokenize_files(inputs, out, tok, **kwargs)
    whole = tokenize_files(inputs, str(tmp_path / "whole"), tok, **kwargs)
    assert resumed["units"]["resumed"] == resumed["units"]["count"]
    assert _shard_files(out) == _shard_files(tmp_path / "whole")
    assert all(resumed[k] == whole[k] for k in TOTALS)


def _cli(tok_path, path, out, *flags, wait=True):
    cmd = [sys.executable, "-m", "llmjp_jax.cli.tokenize", f"--input={path}", f"--output_dir={out}",
           f"--tokenizer={tok_path}", "--chunk_bytes=250000", "--docs_per_shard=300", "--num_workers=2",
           *flags]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _kill_after(process, out, units: int) -> int:
    """SIGKILLs the CLI (its workers die with it) once `units` more units are complete."""
    state = os.path.join(out, tokenize.STATE_DIR)
    before = len(glob.glob(os.path.join(state, "unit-*.json")))
    deadline = time.monotonic() + 60
    while len(glob.glob(os.path.join(state, "unit-*.json"))) < before + units:
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    with open(os.path.join(state, tokenize.PLAN), encoding="utf-8") as f:
        total = len(json.load(f)["units"])
    done = len(glob.glob(os.path.join(state, "unit-*.json")))
    assert done < total and not os.path.exists(os.path.join(out, "manifest.json"))
    return done


def test_sigkilled_run_restarts_into_identical_shards(corpus, tok, tmp_path):
    path = _write_jsonl(tmp_path / "big.jsonl", _sample_texts() * 4)
    out = str(tmp_path / "out")
    _kill_after(_cli(corpus["tokenizer"], path, out, wait=False), out, 3)
    _kill_after(_cli(corpus["tokenizer"], path, out, wait=False), out, 3)

    original = open(path, "rb").read()
    with open(path, "ab") as f:
        f.write(b'{"text": "appended"}\n')
    refused = _cli(corpus["tokenizer"], path, out)
    assert refused.returncode == 2 and f"Input {path} changed" in refused.stdout + refused.stderr
    with open(path, "wb") as f:
        f.write(original)

    done = _cli(corpus["tokenizer"], path, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"; resumed: \d+ of \d+ units \([\d.]+ MB of text\) done earlier", done.stdout)
    whole = tokenize_files([path], str(tmp_path / "whole"), tok, docs_per_shard=300, chunk_bytes=250_000)
    assert whole["units"]["count"] >= 30
    assert _shard_files(out) == _shard_files(tmp_path / "whole")
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    assert all(manifest[k] == whole[k] for k in TOTALS)
    assert not os.path.exists(os.path.join(out, tokenize.STATE_DIR))
