"""Real processes: a run killed with SIGKILL and restarted gives the losses of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

from .conftest import ROOT, read_metrics


def _command(corpus, workdir, steps):
    overrides = {
        "model.num_layers": 2, "model.hidden": 64, "model.ffn": 128, "model.num_heads": 4,
        "model.num_kv_heads": 2, "optim.warmup_steps": 2, "train.global_batch": 8,
        "train.seq_len": 64, "train.log_every": 1, "train.eval_every": 0, "train.keep_last": 1,
        "train.checkpoint_every": 10, "train.steps": steps, "data.train_dir": corpus["train"],
        "data.eval_dir": corpus["eval"], "mesh.fsdp": 2}
    return [sys.executable, "-m", "llmjp_jax.cli.train", "--config=configs/tiny.py",
            f"--workdir={workdir}", *(f"--config.{k}={v}" for k, v in overrides.items())]


def _env():
    return {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def _losses(workdir):
    return [(r["step"], r["loss"], r["grad_norm"]) for r in read_metrics(workdir)]


def test_sigkill_then_restart_matches_uninterrupted_run(corpus, tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    subprocess.run(_command(corpus, straight, 60), cwd=ROOT, env=_env(), check=True,
                   capture_output=True, timeout=300)
    proc = subprocess.Popen(_command(corpus, crashed, 60), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (crashed / "metrics.jsonl").exists() and len(read_metrics(crashed)) >= 25:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    logged = len(read_metrics(crashed))
    assert 25 <= logged < 60
    subprocess.run(_command(corpus, crashed, 60), cwd=ROOT, env=_env(), check=True,
                   capture_output=True, timeout=300)
    assert _losses(crashed) == _losses(straight)
