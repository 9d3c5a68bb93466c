"""Streaming export: the same bytes as exporting a fully restored state, with at most about one
safetensors shard of parameters read and alive at a time, and no optimizer state read at all."""

import json
import os
import weakref

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from llmjp_jax.files import file_sha256
from llmjp_jax.interop import checkpoint_params
from llmjp_jax.interop.export import export_hf, read_run
from llmjp_jax.model import LlamaConfig, hf
from llmjp_jax.model.hf import save_hf
from llmjp_jax.optim import make_optimizer
from llmjp_jax.parallel import make_mesh
from llmjp_jax.train import checkpoint, rundir
from llmjp_jax.train.state import init_state, state_spec

from .conftest import small_config

SHARD_BYTES = 300_000  # the model holds about 1.4 MB of parameters


def _mesh(n: int):
    return make_mesh({"data": 1, "pipeline": 1, "fsdp": n, "tensor": 1}, jax.devices()[:n])


@pytest.fixture
def run(corpus, tmp_path):
    """A run directory with one checkpoint saved from 8 devices (FSDP), so each stored array is
    split into chunks that every layer slice crosses."""
    cfg = small_config(corpus)
    cfg.model.update(vocab_size=512, num_layers=6, hidden=64, ffn=192)
    model_cfg = LlamaConfig.from_dict(cfg.model)
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    spec = state_spec(model_cfg, tx, _mesh(8))
    state = init_state(model_cfg, tx, spec, seed=4)
    rng = np.random.default_rng(0)  # norm scales that are not all ones
    state["params"] = jax.tree_util.tree_map_with_path(
        lambda p, x: x + ("scale" in jax.tree_util.keystr(p)) * rng.normal(0, 0.5, x.shape).astype(x.dtype),
        state["params"])
    manager = checkpoint.make_manager(str(tmp_path / "run" / "checkpoints"), cfg.train)
    checkpoint.save(manager, 7, state, {}, json.loads(cfg.to_json()), force=True)
    manager.wait_until_finished()
    manager.close()
    # What training also leaves in a run: the tokenizer it trained with.
    rundir.keep_tokenizer(str(tmp_path / "run"), {"path": corpus["tokenizer"],
                                                 "sha256": file_sha256(corpus["tokenizer"])})
    return str(tmp_path / "run"), cfg, spec


def _full_restore(workdir, cfg):
    """What export did before streaming: the whole train state restored on one device."""
    model_cfg = LlamaConfig.from_dict(cfg.model)
    spec = state_spec(model_cfg, make_optimizer(cfg.optim, cfg.train.steps), _mesh(1))
    manager = checkpoint.open_read_only(os.path.join(workdir, "checkpoints"))
    try:
        return jax.device_get(checkpoint.restore(manager, 7, spec.abstract)[0]["params"])
    finally:
        manager.close()


def test_streaming_export_equals_full_restore(run, tmp_path):
    workdir, cfg, _ = run
    params = _full_restore(workdir, cfg)
    old = save_hf(params, LlamaConfig.from_dict(cfg.model), str(tmp_path / "old"),
                  max_positions=cfg.train.seq_len, shard_bytes=SHARD_BYTES)
    assert len(old) > 3
    assert export_hf(workdir, str(tmp_path / "new"), shard_bytes=SHARD_BYTES) == 7
    for name in os.listdir(tmp_path / "old"):
        assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes(), name
    assert "tokenizer.json" in os.listdir(tmp_path / "new")
    restored, _, step = read_run(workdir)  # the params-only partial restore
    assert step == 7
    assert jax.tree.structure(restored) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(params)):
        assert a.dtype == b.dtype and np.array_equal(a, b)


class _Tally:
    """Bytes of the arrays it was shown that are still alive (now, at peak, in total)."""

    def __init__(self):
        self.alive = self.peak = self.total = self.count = 0
        self.watchers = []

    def add(self, array: np.ndarray):
        self.alive += array.nbytes
        self.total += array.nbytes
        self.count += 1
        self.peak = max(self.peak, self.alive)
        for watch in self.watchers:
            watch()
        weakref.finalize(array, self._free, array.nbytes)

    def _free(self, nbytes):
        self.alive -= nbytes


class _Peak:
    """The largest sum of several tallies' alive bytes."""

    def __init__(self, *tallies):
        self.value, self.tallies = 0, tallies
        for t in tallies:
            t.watchers.append(self._update)

    def _update(self):
        self.value = max(self.value, sum(t.alive for t in self.tallies))


def _forbid_full_restores(monkeypatch):
    """Any restore of the train state through orbax's handlers fails; config JSON still reads."""
    def refuse(*args, **kwargs):
        raise AssertionError("the export restored a train state")

    for handler in (ocp.StandardCheckpointHandler, ocp.PyTreeCheckpointHandler):
        monkeypatch.setattr(handler, "restore", refuse)


def test_export_holds_about_one_shard(run, tmp_path, monkeypatch):
    """Alive at once: the current shard's tensors plus the parameter slice being converted."""
    workdir, cfg, spec = run
    reads, converted = _Tally(), _Tally()
    read, convert = checkpoint_params.ParamReader.read, hf.convert

    def counted_read(self, path, start=None, stop=None):
        out = read(self, path, start, stop)
        reads.add(out)
        return out

    def counted_convert(t, value):
        out = convert(t, value)
        converted.add(out)
        return out

    monkeypatch.setattr(checkpoint_params.ParamReader, "read", counted_read)
    monkeypatch.setattr(hf, "convert", counted_convert)
    _forbid_full_restores(monkeypatch)
    peak = _Peak(reads, converted)
    export_hf(workdir, str(tmp_path / "hf"), shard_bytes=SHARD_BYTES)
    param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(spec.abstract["params"]))
    shards = [n for n in os.listdir(tmp_path / "hf") if n.endswith(".safetensors")]
    assert len(shards) > 3
    assert reads.total == converted.total == param_bytes  # every parameter byte read exactly once
    assert reads.count > len(shards)  # in per-shard slices, not whole
    assert converted.peak <= SHARD_BYTES and peak.value <= 2 * SHARD_BYTES < param_bytes / 2
    with pytest.raises(Exception, match="restored a train state"):  # the guard works
        _full_restore(workdir, cfg)
