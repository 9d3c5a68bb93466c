"""Training equivalences: sharded vs one device, resumed vs uninterrupted, accumulated vs whole batch."""

import jax
import numpy as np
import pytest

from llmjp_jax.train.loop import train

from .conftest import read_metrics, small_config

MESHES = {
    "data8": dict(data=8, fsdp=1, tensor=1),
    "fsdp8": dict(data=1, fsdp=8, tensor=1),
    "data2_fsdp2_tensor2": dict(data=2, fsdp=2, tensor=2),
}


def _losses(workdir):
    return [row["loss"] for row in read_metrics(workdir) if "loss" in row]


@pytest.fixture(scope="module")
def one_device_losses(corpus, tmp_path_factory):
    cfg = small_config(corpus)
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    workdir = str(tmp_path_factory.mktemp("one_device"))
    train(cfg, workdir, devices=jax.devices()[:1])
    return _losses(workdir)


@pytest.mark.parametrize("mesh", MESHES.values(), ids=MESHES.keys())
def test_sharded_losses_equal_one_device(corpus, tmp_path, one_device_losses, mesh):
    assert len(jax.devices()) == 8
    cfg = small_config(corpus)
    cfg.mesh.update(mesh)
    train(cfg, str(tmp_path), devices=jax.devices())
    losses = _losses(tmp_path)
    assert len(losses) == 5
    np.testing.assert_allclose(losses, one_device_losses, rtol=1e-5)
    assert all(0 < row["mfu"] < 1 for row in read_metrics(tmp_path))


def test_cpu_peak_is_measured_on_one_device_inside_a_mesh():
    """Under an 8-device mesh an uncommitted operand was replicated: all 8 simulated devices
    did the matmul and the 'peak' read 1/8 of the host's (MFU 128% for the tiny model)."""
    from llmjp_jax.parallel import make_mesh
    from llmjp_jax.train.flops import measure_cpu_matmul_flops, on_one_device

    with jax.set_mesh(make_mesh(dict(data=8, pipeline=1, fsdp=1, tensor=1))):
        with on_one_device():
            operand = jax.numpy.ones((8, 8))
            assert len(jax.jit(lambda x: x @ x)(operand).sharding.device_set) == 1
        assert len(jax.numpy.ones((8, 8)).sharding.device_set) == 8  # what it guards against
        assert measure_cpu_matmul_flops(n=64, repeats=1) > 0
