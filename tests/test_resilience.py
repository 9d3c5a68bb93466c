"""What a cluster does to a run: damaged and missing checkpoints, torn logs, a second trainer,
a full disk. Each test failed on the code before the resilience work (issue 10)."""

import json
import os
import subprocess

import jax
import numpy as np
import pytest

from llmjp_jax.train import rundir
from llmjp_jax.train.loop import NoUsableCheckpointError, train

from .conftest import read_metrics, small_config, train_until


def _config(corpus, **train_overrides):
    cfg = small_config(corpus, **{"steps": 40, "checkpoint_every": 5, "keep_last": 2, **train_overrides})
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    return cfg


def _history(workdir):
    return [(r["step"], r["loss"], r["grad_norm"]) for r in read_metrics(workdir)]


@pytest.fixture(scope="module")
def straight(corpus, tmp_path_factory):
    """The uninterrupted 40-step run every recovered run must equal."""
    workdir = tmp_path_factory.mktemp("straight")
    train(_config(corpus), str(workdir), devices=jax.devices()[:1])
    return _history(workdir)


def _steps(workdir) -> list[int]:
    return sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())


def _damage(step_dir):
    """XORs 4 KiB in the middle of the largest array file (the issue's reproduction)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    big = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(big.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(middle + 4096, len(data))):
        data[i] ^= 0xFF
    big.write_bytes(bytes(data))


def test_damaged_checkpoint_is_skipped_and_the_previous_one_resumes_exactly(corpus, tmp_path, straight):
    """Before: step 20 restored silently, the loss went nan, and keep_last deleted 15 and 20."""
    cfg = _config(corpus)
    train_until(cfg, tmp_path, jax.devices()[:1], stop_after=22)
    assert _steps(tmp_path) == [15, 20]
    _damage(tmp_path / "checkpoints" / "20")
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    assert _history(tmp_path) == straight
    damaged = os.listdir(tmp_path / "damaged")
    assert len(damaged) == 1 and damaged[0].startswith("20-")
    events = rundir.read_rows(str(tmp_path / "events.jsonl"))
    skipped = [e for e in events if e["event"] == "checkpoint_skipped"]
    assert [e["step"] for e in skipped] == [20] and "could not be restored" in skipped[0]["reason"]
    assert [e["step"] for e in events if e["event"] == "resume"] == [15]


def _overwrite(step_dir, name: str, change):
    """Rewrites one saved array with valid but different values, as silent storage damage would
    (tensorstore reads it without complaint)."""
    import orbax.checkpoint as ocp
    import tensorstore as ts
    from etils import epath

    directory = epath.Path(step_dir) / "state"
    info = ocp.type_handlers.ParamInfo(name=name, parent_dir=directory, use_zarr3=False)
    spec = ocp.type_handlers.get_json_tspec_read(info, use_ocdbt=True)
    context = ocp.type_handlers.get_ts_context(use_ocdbt=True)
    store = ts.open(spec, context=context, read=True, write=True).result()
    store.write(change(store.read().result())).result()


def test_silently_damaged_array_is_found_by_its_digest(corpus, tmp_path, straight):
    cfg = _config(corpus)
    train_until(cfg, tmp_path, jax.devices()[:1], stop_after=22)
    _overwrite(tmp_path / "checkpoints" / "20", "params.final_norm.scale", lambda x: x * 1.001)
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    assert _history(tmp_path) == straight
    events = rundir.read_rows(str(tmp_path / "events.jsonl"))
    reason = next(e["reason"] for e in events if e["event"] == "checkpoint_skipped")
    assert "differs from what was saved in 1 of" in reason and "['params']['final_norm']['scale']" in reason


def test_empty_latest_step_folder_is_skipped(corpus, tmp_path, straight):
    cfg = _config(corpus)
    train_until(cfg, tmp_path, jax.devices()[:1], stop_after=12)
    os.makedirs(tmp_path / "checkpoints" / "15")
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    assert _history(tmp_path) == straight
    assert [n.split("-")[0] for n in os.listdir(tmp_path / "damaged")] == ["15"]


def test_all_checkpoints_damaged_refuses_naming_the_folder(corpus, tmp_path):
    cfg = _config(corpus, steps=5)
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    _damage(tmp_path / "checkpoints" / "5")
    cfg.train.steps = 10
    with pytest.raises(NoUsableCheckpointError, match=r"checkpoints of steps \[5\] failed verification"):
        train(cfg, str(tmp_path), devices=jax.devices()[:1])
    assert len(read_metrics(tmp_path)) == 5  # nothing overwritten


def test_deleted_checkpoints_folder_refuses_to_start_over(corpus, tmp_path):
    """Before: it started again from step 1 and emptied metrics.jsonl, saying nothing."""
    cfg = _config(corpus, steps=10)
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    subprocess.run(["rm", "-rf", str(tmp_path / "checkpoints")], check=True)
    with pytest.raises(NoUsableCheckpointError, match="events.jsonl records checkpoints saved up to step 10"):
        train(cfg, str(tmp_path), devices=jax.devices()[:1])
    assert len(read_metrics(tmp_path)) == 10


def test_crash_before_the_first_checkpoint_starts_over(corpus, tmp_path, straight):
    """No checkpoint was ever complete: starting from step 0 is right, and says so in events."""
    cfg = _config(corpus)
    train_until(cfg, tmp_path, jax.devices()[:1], stop_after=3)
    assert len(read_metrics(tmp_path)) == 3
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    assert _history(tmp_path) == straight


def test_torn_last_line_and_duplicate_rows_are_dropped_on_resume(corpus, tmp_path, straight):
    """Before: a torn last line broke every restart with a bare JSONDecodeError; duplicates stayed."""
    cfg = _config(corpus)
    train_until(cfg, tmp_path, jax.devices()[:1], stop_after=12)
    path = tmp_path / "metrics.jsonl"
    rows = path.read_text().splitlines()
    path.write_text("\n".join(rows + rows[2:4]) + "\n" + rows[5][:17])  # duplicates, torn tail
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    assert _history(tmp_path) == straight


def test_bad_line_inside_metrics_stops_naming_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": \n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON object"):
        rundir.read_rows(str(path))


def test_second_trainer_on_a_workdir_is_refused(corpus, tmp_path, monkeypatch):
    """Before: two trainers started together crashed inside orbax; 30 s apart both 'finished'
    with duplicate rows out of order. The lock names the holder."""
    monkeypatch.setattr(rundir.WorkdirLock, "stale_s", 1.0)
    holder = rundir.WorkdirLock(str(tmp_path)).acquire()
    try:
        with pytest.raises(rundir.WorkdirBusyError, match=rf"in use by pid {os.getpid()} on host"):
            train(_config(corpus, steps=2), str(tmp_path), devices=jax.devices()[:1])
    finally:
        holder.release()
    assert not (tmp_path / "checkpoints").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "LOCK").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "started": 0}))
    lock = rundir.WorkdirLock(str(tmp_path)).acquire(wait=False)
    assert json.loads((tmp_path / "LOCK").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / "LOCK").exists()


def test_lock_of_another_host_goes_stale_when_not_refreshed(tmp_path):
    (tmp_path / "LOCK").write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0}))
    with pytest.raises(rundir.WorkdirBusyError, match="pid 1 on host elsewhere"):
        rundir.WorkdirLock(str(tmp_path)).acquire(wait=False)
    old = os.path.getmtime(tmp_path / "LOCK") - 120
    os.utime(tmp_path / "LOCK", (old, old))
    rundir.WorkdirLock(str(tmp_path)).acquire(wait=False).release()


def test_checkpoint_digests_do_not_depend_on_the_mesh():
    from jax.sharding import NamedSharding, PartitionSpec

    from llmjp_jax.train.digest import state_digests

    x = jax.random.normal(jax.random.key(0), (64, 32))
    mesh = jax.make_mesh((4, 2), ("a", "b"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    bf16 = x.astype(jax.numpy.bfloat16)
    spread = {"x": jax.device_put(x, NamedSharding(mesh, PartitionSpec("a", "b"))),
              "b": jax.device_put(bf16, NamedSharding(mesh, PartitionSpec(None, "a")))}
    single = {"x": x, "b": x.astype(jax.numpy.bfloat16)}
    assert state_digests(spread) == state_digests(single)
    nudged = single["x"].at[3, 5].set(np.nextafter(np.float32(single["x"][3, 5]), np.float32(np.inf)))
    swapped = single["x"].at[0, 0].set(single["x"][0, 1]).at[0, 1].set(single["x"][0, 0])
    digests = {state_digests({**single, "x": v})[0]["['x']"] for v in (single["x"], nudged, swapped)}
    assert len(digests) == 3
    assert state_digests({"x": single["x"].at[1, 1].set(np.nan)})[1] == 1


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs: room for one checkpoint of the test model (about 5.3 MB), not two."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_reported_as_such_and_the_older_checkpoint_resumes(corpus, tmp_path, small_disk):
    """Before: 'does not fit in device memory' (tensorstore reports ENOSPC as RESOURCE_EXHAUSTED)."""
    from llmjp_jax.train.errors import DiskFullError

    cfg = _config(corpus, steps=10)
    straight = tmp_path / "straight"
    train(cfg, str(straight), devices=jax.devices()[:1])
    workdir = small_disk / "run"
    with pytest.raises(DiskFullError, match=r"disk holding .*run is full \(No space left on device\)"):
        train(cfg, str(workdir), devices=jax.devices()[:1])
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    train(cfg, str(workdir), devices=jax.devices()[:1])
    assert _history(workdir) == _history(straight)


class _KeyValues:
    """The coordination service's key-value calls the run monitor makes, in memory."""

    def __init__(self):
        self.values = {}

    def key_value_set(self, key, value, allow_overwrite=False):
        self.values[key] = value

    def key_value_dir_get(self, prefix):
        return [(k, v) for k, v in self.values.items() if k.startswith(prefix)]


def test_the_monitor_reports_before_its_first_poll():
    """A peer stopped within its first second had never reported, so the process left waiting
    said only that no report could be read (test_multiprocess's hung-peer test, now and then)."""
    from llmjp_jax.train.monitor import Monitor

    monitor = Monitor(timeout_s=0, poll_s=60)
    monitor._client = _KeyValues()
    with monitor:
        reports = [json.loads(v) for _, v in monitor._client.key_value_dir_get("")]
    assert [(r["process"], r["step"]) for r in reports] == [(0, None)]
