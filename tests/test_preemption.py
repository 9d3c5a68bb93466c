"""SIGTERM/SIGINT as a cluster sends them: the run saves the step all processes agree on, exits
with PREEMPTED_EXIT_CODE, and the restart redoes nothing and ends like an uninterrupted run.

Before: one process died at once on SIGTERM (nothing saved), printed a KeyboardInterrupt
traceback on SIGINT (nothing saved); two processes ignored SIGTERM and trained on."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from llmjp_jax.train.signals import PREEMPTED_EXIT_CODE

from .conftest import ROOT, read_metrics
from .test_multiprocess import _command, _env, _free_port, _run, _tail

STEPS = 40
SETTINGS = {"train.steps": STEPS, "train.checkpoint_every": 100, "train.eval_every": 0, "mesh.data": 2,
            "mesh.fsdp": 2, "mesh.tensor": 1}


def _losses(workdir):
    return [(r["step"], r["loss"], r["grad_norm"]) for r in read_metrics(workdir)]


def _start(command, log):
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT)


def _wait_for_rows(workdir, rows: int, procs, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert all(p.poll() is None for p in procs), "a run ended before the signal"
        if (workdir / "metrics.jsonl").exists() and len(read_metrics(workdir)) >= rows:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{workdir}: fewer than {rows} metrics rows after {timeout} s")


def _saved_steps(workdir) -> list[int]:
    return sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())


@pytest.fixture(scope="module")
def straight(corpus, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    log = workdir.parent / "straight.log"
    codes = _run([_command(corpus, workdir, "--cpu_devices=4", **SETTINGS)], [log])
    assert codes == [0], _tail(log)
    return _losses(workdir)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_the_step_and_the_restart_redoes_nothing(corpus, tmp_path, straight, signum):
    workdir, log = tmp_path / "run", tmp_path / "run.log"
    command = _command(corpus, workdir, "--cpu_devices=4", **SETTINGS)
    proc = _start(command, log)
    _wait_for_rows(workdir, 8, [proc])
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE, _tail(log)
    rows = read_metrics(workdir)
    stopped = rows[-1]["step"]
    assert 8 <= stopped < STEPS and _saved_steps(workdir) == [stopped]
    out = open(log).read()
    assert f"after step {stopped}; the checkpoint of step {stopped} is saved" in out
    assert "Traceback" not in out
    codes = _run([command], [tmp_path / "restart.log"])
    assert codes == [0], _tail(tmp_path / "restart.log")
    assert f"Resuming from {workdir / 'checkpoints'} step {stopped}" in open(tmp_path / "restart.log").read()
    assert _losses(workdir) == straight


def test_second_signal_exits_at_once_without_saving(corpus, tmp_path):
    workdir, log = tmp_path / "run", tmp_path / "run.log"
    proc = _start(_command(corpus, workdir, "--cpu_devices=4", **{**SETTINGS, "train.steps": 100000}), log)
    _wait_for_rows(workdir, 3, [proc])
    proc.send_signal(signal.SIGINT)
    deadline = time.time() + 30
    while "SIGINT received" not in open(log).read():
        assert time.time() < deadline, _tail(log)
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, _tail(log)
    assert "Second signal (SIGTERM): exiting now without saving." in open(log).read()


def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_step(corpus, tmp_path, straight):
    """SLURM may signal any task first: both save the same step, exit 75, and resume exactly."""
    workdir = tmp_path / "run"
    join = [f"--coordinator_address=127.0.0.1:{_free_port()}", "--num_processes=2", "--cpu_devices=2"]
    settings = {**SETTINGS, "mesh.dcn.data": 2}
    commands = [_command(corpus, workdir, *join, f"--process_id={i}", **settings) for i in (0, 1)]
    logs = [tmp_path / "p0.log", tmp_path / "p1.log"]
    procs = [_start(c, log) for c, log in zip(commands, logs)]
    try:
        _wait_for_rows(workdir, 8, procs)
        procs[1].send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [PREEMPTED_EXIT_CODE] * 2, [_tail(log) for log in logs]
    stopped = read_metrics(workdir)[-1]["step"]
    assert _saved_steps(workdir) == [stopped]
    for log in logs:
        assert f"after step {stopped}; the checkpoint of step {stopped} is saved" in open(log).read()
    join[0] = f"--coordinator_address=127.0.0.1:{_free_port()}"
    commands = [_command(corpus, workdir, *join, f"--process_id={i}", **settings) for i in (0, 1)]
    restart = [tmp_path / "r0.log", tmp_path / "r1.log"]
    codes = _run(commands, restart)
    assert codes == [0, 0], [_tail(log) for log in restart]
    assert f"step {stopped}" in open(restart[0]).read().split("Resuming from")[1].splitlines()[0]
    # Two processes sum their gradients in another order than one: equal to float32 rounding.
    got = _losses(workdir)
    assert [r[0] for r in got] == [r[0] for r in straight]
    np.testing.assert_allclose([r[1:] for r in got], [r[1:] for r in straight], rtol=1e-5)
