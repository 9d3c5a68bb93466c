"""Named held-out sets (data.eval) and multiple-choice tasks during training (train.eval_tasks):
per-set losses and their token-weighted mean, the same on 1 and 8 devices and after a resume;
LZ sets and sets made with another tokenizer are refused; llmjp-eval agrees with training."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from llmjp_jax.data.loader import eval_batches
from llmjp_jax.data.tokenize import tokenize_files
from llmjp_jax.data.tokenizer import Tokenizer, train_tokenizer
from llmjp_jax.errors import UserError
from llmjp_jax.train.evaluation import HeldOut, held_out_sets, loss_metrics
from llmjp_jax.train.loop import Run, train

from .conftest import ROOT, SAMPLE, read_metrics, small_config, train_until

TASK = os.path.join(ROOT, "tests", "data", "mc_sample.jsonl")
LEVELS = {"ja": "L1", "en": "L2", "code": "LX"}  # LX: evaluated, never trained on


@pytest.fixture(scope="module")
def sets(corpus, tmp_path_factory):
    """The sample's held-out files as one set per language, with the training tokenizer."""
    root, tok = tmp_path_factory.mktemp("heldout"), Tokenizer(corpus["tokenizer"])
    for name, level in LEVELS.items():
        tokenize_files([os.path.join(SAMPLE, "heldout", f"{name}.jsonl")], str(root / name), tok,
                       release_level=level, language=name)
    return {name: str(root / name) for name in LEVELS}


def _config(corpus, sets, **train):
    # eval_batches=100: every set runs out first, each after its own number of batches, so the
    # sets' target counts differ and the token-weighted mean is not the plain mean.
    cfg = small_config(corpus, steps=2, eval_every=2, eval_batches=100, checkpoint_every=1, **train)
    cfg.data.eval = dict(sets)
    cfg.train.eval_tasks = {"sample": TASK}
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    return cfg


@pytest.fixture(scope="module")
def one_device(corpus, sets, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("one_device")
    train(_config(corpus, sets), str(workdir), devices=jax.devices()[:1])
    return str(workdir), read_metrics(workdir)


def _eval_rows(rows):
    return [{k: v for k, v in r.items() if k == "step" or k.startswith(("eval_loss", "mc_acc"))}
            for r in rows]


def test_each_set_is_logged_with_the_token_weighted_mean(one_device, sets, corpus):
    workdir, rows = one_device
    names = sorted(sets)
    assert [r["step"] for r in rows if "eval_loss" in r] == [2]  # train.eval_every=2
    last = rows[-1]
    assert {f"eval_loss/{n}" for n in names} | {"eval_loss"} <= set(last), last
    assert 0 <= last["mc_acc/sample"] <= 1 and 0 <= last["mc_acc_raw/sample"] <= 1
    cfg = _config(corpus, sets)
    tokens = {n: len(eval_batches(sets[n], cfg.train.seq_len, cfg.train.global_batch, 100)) *
              cfg.train.global_batch * cfg.train.seq_len for n in names}  # concat: every target counts
    assert len(set(tokens.values())) == len(names), tokens  # else weighted == plain mean
    weighted = sum(last[f"eval_loss/{n}"] * tokens[n] for n in names) / sum(tokens.values())
    assert last["eval_loss"] == pytest.approx(weighted, rel=1e-9)
    assert abs(last["eval_loss"] - np.mean([last[f"eval_loss/{n}"] for n in names])) > 1e-4
    tensorboard = os.listdir(os.path.join(workdir, "tensorboard"))
    assert tensorboard and any("eval_loss/ja" in _tb_tags(workdir, f) for f in tensorboard)


def _tb_tags(workdir, name) -> str:
    with open(os.path.join(workdir, "tensorboard", name), "rb") as f:
        return f.read().decode("latin-1")


def test_per_set_losses_are_the_same_on_8_devices(one_device, corpus, sets, tmp_path):
    cfg = _config(corpus, sets)
    cfg.mesh.update(data=2, fsdp=4, tensor=1)
    train(cfg, str(tmp_path), devices=jax.devices()[:8])
    _same(_eval_rows(read_metrics(tmp_path)), _eval_rows(one_device[1]))


def test_per_set_losses_are_the_same_after_a_resume(one_device, corpus, sets, tmp_path):
    cfg = _config(corpus, sets)
    train_until(cfg, str(tmp_path), jax.devices()[:1], stop_after=1)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1]
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    _same(_eval_rows(read_metrics(tmp_path)), _eval_rows(one_device[1]))


def _same(rows, expected):
    assert [sorted(r) for r in rows] == [sorted(r) for r in expected]
    for row, want in zip(rows, expected):
        for key in want:
            assert row[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key


def test_llmjp_eval_gives_the_accuracy_logged_in_training(one_device):
    workdir, rows = one_device
    out = subprocess.run([sys.executable, "-m", "llmjp_jax.cli.eval", f"--workdir={workdir}",
                          f"--task={TASK}", "--step=2", "--rows=5"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["step"] == 2 and result["questions"] == 8
    assert result["acc_norm"] == rows[-1]["mc_acc/sample"] and result["acc"] == rows[-1]["mc_acc_raw/sample"]


def test_llmjp_eval_names_a_bad_task_line(one_device, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "choices": ["a", "b"], "answer": 5}\n', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "llmjp_jax.cli.eval", f"--workdir={one_device[0]}",
                          f"--task={bad}"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    said = out.stdout + out.stderr
    assert out.returncode == 2 and f"{bad}:1:" in said and "Traceback" not in said, said[-3000:]


def _refused(cfg, tmp_path, monkeypatch, match):
    monkeypatch.setattr(Run, "compile_step", lambda self: pytest.fail("compiled before checking data"))
    with pytest.raises(UserError, match=match):
        train(cfg, str(tmp_path / "run"), devices=jax.devices()[:1])


def test_an_lz_set_is_refused_by_name(corpus, sets, tmp_path, monkeypatch):
    tokenize_files([os.path.join(SAMPLE, "heldout", "en.jsonl")], str(tmp_path / "lz"),
                   Tokenizer(corpus["tokenizer"]), release_level="LZ")
    cfg = _config(corpus, {**sets, "secret": str(tmp_path / "lz")})
    _refused(cfg, tmp_path, monkeypatch, r"data\.eval\.secret.*LZ")


def test_a_set_made_with_another_tokenizer_is_refused(corpus, sets, tmp_path, monkeypatch):
    other = train_tokenizer([os.path.join(SAMPLE, "train", "en.jsonl")], str(tmp_path / "other"), 500)
    tokenize_files([os.path.join(SAMPLE, "heldout", "en.jsonl")], str(tmp_path / "en"), Tokenizer(other))
    cfg = _config(corpus, {**sets, "en": str(tmp_path / "en")})
    _refused(cfg, tmp_path, monkeypatch, r"data\.eval\.en=.* was tokenized with .*other")


def test_a_bad_task_file_is_refused_before_compiling(corpus, sets, tmp_path, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "choices": "ab", "answer": 0}\n', encoding="utf-8")
    cfg = _config(corpus, sets)
    cfg.train.eval_tasks = {"bad": str(bad)}
    _refused(cfg, tmp_path, monkeypatch, rf"{bad}:1: \"choices\"")


def test_eval_dir_alone_stays_one_set_logged_as_eval_loss(corpus):
    cfg = small_config(corpus)
    assert held_out_sets(cfg.data) == [HeldOut("", corpus["eval"], "data.eval_dir")]
    assert loss_metrics({"": (6.0, 3.0)}) == {"eval_loss": 2.0}
    cfg.data.eval = {"b": "/b", "a": "/a"}
    assert [s.name for s in held_out_sets(cfg.data)] == ["a", "b"]
    assert loss_metrics({"a": (1.0, 1.0), "b": (9.0, 3.0)}) == {
        "eval_loss": 2.5, "eval_loss/a": 1.0, "eval_loss/b": 3.0}


PRESET = """
from configs.tiny import get_config as tiny


def get_config():
    cfg = tiny()
    cfg.model.update(num_layers=2, hidden=64, ffn=128, num_heads=4, num_kv_heads=2)
    cfg.train.update(steps=2, global_batch=8, seq_len=64, log_every=1, eval_every=2, eval_batches=100,
                     checkpoint_every=1, keep_last=2, eval_tasks={{"sample": {task!r}}})
    cfg.optim.warmup_steps = 2
    cfg.data.update(train_dir={train!r}, eval={sets!r})
    cfg.mesh.update(data=2, fsdp=4, tensor=1)
    cfg.mesh.dcn.data = 2
    return cfg
"""


def test_two_processes_evaluate_like_one_device(one_device, corpus, sets, tmp_path):
    """Each process's loader shards of a set run out after a different number of batches: both
    must run the same number of eval steps per set (else they hang), and log what 1 device does."""
    from .test_multiprocess import _check, _free_port, _run

    preset = tmp_path / "preset.py"
    preset.write_text(PRESET.format(task=TASK, train=corpus["train"], sets=dict(sets)), encoding="utf-8")
    join = [f"--coordinator_address=127.0.0.1:{_free_port()}", "--num_processes=2", "--cpu_devices=4"]
    command = [sys.executable, "-m", "llmjp_jax.cli.train", f"--config={preset}",
               f"--workdir={tmp_path / 'run'}", *join]
    logs = [tmp_path / "p0.log", tmp_path / "p1.log"]
    _check(_run([[*command, "--process_id=0"], [*command, "--process_id=1"]], logs), logs)
    _same(_eval_rows(read_metrics(tmp_path / "run")), _eval_rows(one_device[1]))
