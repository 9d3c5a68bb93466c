"""A run keeps what it needs: exporting or generating reads the run folder, never the data folder."""

import glob
import os
import shutil
import subprocess
import sys

import jax
import pytest

from llmjp_jax.data.tokenize import tokenize_files
from llmjp_jax.data.tokenizer import Tokenizer, train_tokenizer
from llmjp_jax.errors import UserError
from llmjp_jax.files import file_sha256
from llmjp_jax.interop.export import run_tokenizer
from llmjp_jax.train import rundir
from llmjp_jax.train.loop import train

from .conftest import ROOT, SAMPLE, small_config


def test_export_and_generation_use_the_runs_tokenizer_after_the_data_is_gone(corpus, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(corpus["tokenizer"], data / "spm.model")
    tokenize_files(sorted(glob.glob(os.path.join(SAMPLE, "train", "*.jsonl"))), str(data / "train"),
                   Tokenizer(str(data / "spm.model")))
    trained_with = file_sha256(str(data / "spm.model"))
    cfg = small_config(corpus, steps=2, checkpoint_every=2)
    cfg.data.train_dir = str(data / "train")
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    run = str(tmp_path / "run")
    train(cfg, run, devices=jax.devices()[:1])
    assert file_sha256(os.path.join(run, rundir.TOKENIZER)) == trained_with

    # The README's "own corpus" mistake: a new tokenizer written over the data folder's, then the
    # whole data folder deleted. The run's tokenizer must not change.
    other = train_tokenizer([os.path.join(SAMPLE, "train", "en.jsonl")], str(tmp_path / "other"), 500)
    shutil.copyfile(other, data / "spm.model")
    assert run_tokenizer(run) == os.path.join(run, rundir.TOKENIZER)
    assert file_sha256(run_tokenizer(run)) == trained_with
    shutil.rmtree(data)
    out = subprocess.run([sys.executable, "-m", "llmjp_jax.cli.convert", "to-hf", f"--workdir={run}",
                          f"--output={tmp_path / 'hf'}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert file_sha256(str(tmp_path / "hf" / "tokenizer.model")) == trained_with
    modes = {name: os.stat(tmp_path / "hf" / name).st_mode & 0o777 for name in os.listdir(tmp_path / "hf")}
    assert len(set(modes.values())) == 1, f"exported files differ in mode: {modes}"


def test_a_run_refuses_data_made_with_another_tokenizer(corpus, tmp_path):
    run = str(tmp_path / "run")
    source = {"path": corpus["tokenizer"], "sha256": file_sha256(corpus["tokenizer"])}
    rundir.keep_tokenizer(run, source)
    rundir.keep_tokenizer(run, source)  # a resume on the same data: accepted
    with pytest.raises(UserError, match="other text"):
        rundir.keep_tokenizer(run, {"path": "/elsewhere/spm.model", "sha256": "0" * 64})


def test_a_held_out_set_made_with_another_tokenizer_is_refused_before_compiling(corpus, tmp_path,
                                                                               monkeypatch):
    """Only the vocabulary size was compared: an eval set from another tokenizer gave a loss that
    means nothing. It is refused, naming data.eval_dir, before the step is compiled."""
    from llmjp_jax.data.manifest import ShardError
    from llmjp_jax.train.loop import Run

    other = train_tokenizer([os.path.join(SAMPLE, "train", "en.jsonl")], str(tmp_path / "other"), 500)
    tokenize_files(sorted(glob.glob(os.path.join(SAMPLE, "heldout", "*.jsonl"))), str(tmp_path / "eval"),
                   Tokenizer(other))
    cfg = small_config(corpus, steps=2, eval_every=1)
    cfg.data.eval_dir = str(tmp_path / "eval")
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    monkeypatch.setattr(Run, "compile_step", lambda self: pytest.fail("compiled before checking data"))
    with pytest.raises(ShardError, match=r"data.eval_dir=.* was tokenized with .*other"):
        train(cfg, str(tmp_path / "run"), devices=jax.devices()[:1])
