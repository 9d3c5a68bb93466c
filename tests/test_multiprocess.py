"""Multi-process training on one CPU machine: 2 processes x 4 simulated devices joined with
jax.distributed (gloo collectives) train like 1 process x 8 devices, and their checkpoint resumes
in a single process."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from llmjp_jax.parallel.distributed import JOIN_EXIT_CODE

from .conftest import ROOT, read_metrics

STEPS = 6
MESH = {"mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 2}
DCN = {"mesh.dcn.data": 2}  # the 2-process run: data parallel across processes, the rest inside


def _command(corpus, workdir, *extra, **overrides):
    settings = {
        "model.num_layers": 2, "model.hidden": 64, "model.ffn": 128, "model.num_heads": 4,
        "model.num_kv_heads": 2, "optim.warmup_steps": 2, "train.global_batch": 8,
        "train.seq_len": 64, "train.log_every": 1, "train.eval_every": 3, "train.keep_last": 2,
        # As many held-out batches as the data gives: each process's loader shards run out after
        # a different number (this hung before every process ran the same number).
        "train.eval_batches": 1000,
        "train.checkpoint_every": 3, "train.steps": STEPS, "data.train_dir": corpus["train"],
        "data.eval_dir": corpus["eval"], **MESH, **overrides}
    return [sys.executable, "-m", "llmjp_jax.cli.train", "--config=configs/tiny.py",
            f"--workdir={workdir}", *(f"--config.{k}={v}" for k, v in settings.items()), *extra]


def _env():
    """No inherited host-device count (conftest sets 8): each child gets --cpu_devices."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    return {**os.environ, "XLA_FLAGS": " ".join(flags), "JAX_PLATFORMS": "cpu"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(commands, logs, timeout=240) -> list[int]:
    """Starts the commands together; returns their exit codes (all killed on timeout)."""
    procs = []
    for command, log in zip(commands, logs):
        with open(log, "w") as out:
            procs.append(subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=out,
                                          stderr=subprocess.STDOUT))
    deadline = time.time() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.time())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _tail(log, lines=25) -> str:
    with open(log, errors="replace") as f:
        return "".join(line for line in f.readlines()[-lines:])


def _check(codes, logs):
    for code, log in zip(codes, logs):
        assert code == 0, f"{log} exited with {code}:\n{_tail(log)}"


def _losses(workdir):
    """(step, loss, grad_norm, eval_loss or nan) per logged row."""
    return [(r["step"], r["loss"], r["grad_norm"], r.get("eval_loss", np.nan)) for r in read_metrics(workdir)]


def _assert_same(got, want):
    assert [row[0] for row in got] == [row[0] for row in want]
    np.testing.assert_allclose([row[1:] for row in got], [row[1:] for row in want], rtol=1e-5)


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """An uninterrupted 1-process x 8-device run, and the same run as 2 processes x 4 devices
    (a hybrid mesh: mesh.dcn.data=2)."""
    root = tmp_path_factory.mktemp("multiprocess")
    single, multi = root / "single", root / "multi"
    port = _free_port()
    join = [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", "--cpu_devices=4"]
    logs = [root / "single.log", root / "multi0.log", root / "multi1.log"]
    codes = _run([_command(corpus, single, "--cpu_devices=8"),
                  _command(corpus, multi, *join, "--process_id=0", **DCN),
                  _command(corpus, multi, *join, "--process_id=1", **DCN)], logs)
    _check(codes, logs)
    return {"root": root, "single": single, "multi": multi, "logs": logs}


def test_two_processes_train_like_one(runs):
    single, multi = _losses(runs["single"]), _losses(runs["multi"])
    assert [row[0] for row in single] == list(range(1, STEPS + 1))
    assert np.isfinite([row[3] for row in single[2::3]]).all()  # evaluated at steps 3 and 6
    _assert_same(multi, single)  # also: one row per step, so only one process wrote metrics
    log0, log1 = (open(p).read() for p in runs["logs"][1:])
    assert "JAX process 0 of 2: 4 local devices, 8 in all" in log0
    assert "JAX process 1 of 2: 4 local devices, 8 in all" in log1
    assert f"step 1/{STEPS}" in log0 and f"step 1/{STEPS}" not in log1
    assert len(os.listdir(runs["multi"] / "tensorboard")) == 1


def test_single_process_resumes_a_two_process_checkpoint(corpus, runs):
    """Keep the 2-process run's step-3 checkpoint only; 1 process x 4 devices on another mesh
    resumes it and ends with the uninterrupted run's losses."""
    resumed = runs["root"] / "resumed"
    shutil.copytree(runs["multi"], resumed)
    shutil.rmtree(resumed / "checkpoints" / str(STEPS))
    log = runs["root"] / "resumed.log"
    mesh = {"mesh.data": 1, "mesh.fsdp": 4, "mesh.tensor": 1}
    _check(_run([_command(corpus, resumed, "--cpu_devices=4", **mesh)], [log]), [log])
    assert "Resuming from" in open(log).read()
    _assert_same(_losses(resumed), _losses(runs["single"]))


def test_two_processes_agree_to_skip_a_checkpoint_damaged_in_one_process_files(corpus, runs):
    """Only process 1's files of step 6 are damaged: both skip it and resume from step 3."""
    damaged = runs["root"] / "damaged"
    shutil.copytree(runs["multi"], damaged)
    files = list((damaged / "checkpoints" / str(STEPS) / "state" / "ocdbt.process_1" / "d").iterdir())
    big = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(big.read_bytes())
    for i in range(len(data) // 2, min(len(data), len(data) // 2 + 4096)):
        data[i] ^= 0xFF
    big.write_bytes(bytes(data))
    join = [f"--coordinator_address=127.0.0.1:{_free_port()}", "--num_processes=2", "--cpu_devices=4"]
    logs = [runs["root"] / "damaged0.log", runs["root"] / "damaged1.log"]
    codes = _run([_command(corpus, damaged, *join, f"--process_id={i}", **DCN) for i in (0, 1)], logs)
    _check(codes, logs)
    for log in logs:
        text = open(log).read()
        assert f"Skipping the checkpoint of step {STEPS}" in text and "Resuming from" in text
        assert f"step 3 (skipped the damaged checkpoints of steps [{STEPS}])" in text
    _assert_same(_losses(damaged), _losses(runs["single"]))


@pytest.mark.parametrize("process_id", [0, 1])
def test_a_process_whose_peer_never_starts_fails_clearly(corpus, tmp_path, process_id):
    address = f"127.0.0.1:{_free_port()}"
    log = tmp_path / "alone.log"
    start = time.time()
    codes = _run([_command(corpus, tmp_path / "run", f"--coordinator_address={address}",
                           "--num_processes=2", f"--process_id={process_id}", "--cpu_devices=4",
                           "--init_timeout_s=3")], [log], timeout=60)
    assert codes == [JOIN_EXIT_CODE], _tail(log)
    assert time.time() - start < 30
    out = open(log).read()
    assert f"coordinator at {address} within 3 s (--init_timeout_s)" in out, out
    assert f"--coordinator_address={address}" in out and "--process_id" in out


def _two_long_runs(corpus, root, *extra, **overrides):
    """Two processes of a run too long to finish, started; returns (procs, logs)."""
    join = [f"--coordinator_address=127.0.0.1:{_free_port()}", "--num_processes=2", "--cpu_devices=2"]
    settings = {"train.steps": 100000, "train.eval_every": 0, "train.checkpoint_every": 1000,
                "mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 1, **DCN, **overrides}
    logs = [root / "p0.log", root / "p1.log"]
    procs = []
    for i, log in enumerate(logs):
        with open(log, "w") as out:
            procs.append(subprocess.Popen(
                _command(corpus, root / "run", *join, f"--process_id={i}", *extra, **settings),
                cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT))
    deadline = time.time() + 240
    while not (root / "run" / "metrics.jsonl").exists() or len(read_metrics(root / "run")) < 5:
        assert time.time() < deadline and all(p.poll() is None for p in procs), _tail(logs[0])
        time.sleep(0.1)
    return procs, logs


def _stop_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_dead_peer_ends_the_other_process_naming_it(corpus, tmp_path):
    """Either the step's collective fails at once (gloo sees the closed connection: our message,
    PEER_EXIT_CODE) or it waits until JAX's coordination service misses the dead process's
    heartbeats for --heartbeat_timeout_s and aborts this one (JAX's message names task 1)."""
    from llmjp_jax.train.monitor import PEER_EXIT_CODE

    procs, logs = _two_long_runs(corpus, tmp_path, "--heartbeat_timeout_s=15")
    try:
        procs[1].kill()
        start = time.time()
        code = procs[0].wait(timeout=90)
    finally:
        _stop_all(procs)
    assert time.time() - start < 45, _tail(logs[0])
    out = open(logs[0]).read()
    ours = code == PEER_EXIT_CODE and "failed in a collective" in out and "process 1 (host" in out
    jax_ = code == -signal.SIGABRT and "tasks are unhealthy (stopped sending heartbeats):\n1\n" in out
    assert ours or jax_, (code, _tail(logs[0]))


def test_a_hung_peer_ends_the_other_process_after_hang_timeout(corpus, tmp_path):
    """A stopped peer (SIGSTOP: alive, no progress); the coordination service would wait 300 s."""
    from llmjp_jax.train.monitor import PEER_EXIT_CODE

    procs, logs = _two_long_runs(corpus, tmp_path, "--heartbeat_timeout_s=300",
                                 **{"train.hang_timeout_s": 15})
    try:
        procs[1].send_signal(signal.SIGSTOP)
        start = time.time()
        code = procs[0].wait(timeout=90)
    finally:
        procs[1].send_signal(signal.SIGCONT)
        _stop_all(procs)
    assert code == PEER_EXIT_CODE and time.time() - start < 40, _tail(logs[0])
    out = open(logs[0]).read()
    assert "No training step finished for" in out and "(train.hang_timeout_s=15)" in out
    assert "process 1 (host" in out and "<- silent" in out, _tail(logs[0])
