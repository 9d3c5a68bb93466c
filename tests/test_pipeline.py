"""Pipeline parallelism: the schedule equals running the layers in order, and training with
pipeline stages gives the losses of one device."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from llmjp_jax.config import ConfigError, validate
from llmjp_jax.model import Llama, LlamaConfig
from llmjp_jax.parallel import LOGICAL_RULES, make_mesh
from llmjp_jax.parallel.pipeline import Pipeline, PipelineSchedule
from llmjp_jax.train.loop import train

from .conftest import read_metrics, small_config


def _toy_stack(stacked, x_BxTxD, positions_BxT, segment_ids_BxT, choice=None):
    """Layers whose result depends on the layer order, the positions and the segments."""
    for i in range(stacked["w"].shape[0]):
        w = stacked["w"][i] if choice is None else stacked["w"][i, choice]
        h = x_BxTxD @ w + 0.01 * positions_BxT[..., None]
        if segment_ids_BxT is not None:
            h = h * (1.0 + 0.1 * segment_ids_BxT[..., None])
        x_BxTxD = x_BxTxD + jnp.tanh(h)
    return x_BxTxD


def _mesh(stages: int):
    degrees = dict(data=8 // stages, pipeline=stages, fsdp=1, tensor=1)
    return make_mesh(degrees)


@pytest.mark.parametrize("stages,repeats,micro", [(2, 1, 2), (4, 1, 4), (2, 2, 2), (2, 3, 4),
                                                  (4, 2, 8), (4, 6, 4)])
@pytest.mark.parametrize("with_segments", [False, True])
def test_schedule_equals_layers_in_order(stages, repeats, micro, with_segments):
    layers, batch, length, dim = stages * repeats * 2, 2 * micro, 3, 8
    keys = jax.random.split(jax.random.key(0), 3)
    stacked = {"w": 0.3 * jax.random.normal(keys[0], (layers, dim, dim))}
    x = jax.random.normal(keys[1], (batch, length, dim))
    positions = jnp.broadcast_to(jnp.arange(length), (batch, length)) + jnp.arange(batch)[:, None]
    segments = jax.random.randint(keys[2], (batch, length), 0, 3) if with_segments else None
    pipeline = Pipeline(PipelineSchedule(stages, repeats, micro), layers_key="w")

    def pipelined(stacked, x):
        staged = pipeline.to_stages(stacked)
        return jnp.sum(jnp.sin(pipeline.run_blocks(_toy_stack, staged, x, positions, segments)))

    def in_order(stacked, x):
        return jnp.sum(jnp.sin(_toy_stack(stacked, x, positions, segments)))

    with jax.set_mesh(_mesh(stages)):
        got = jax.jit(jax.value_and_grad(pipelined, argnums=(0, 1)))(stacked, x)
    # Over 16-48 layers float32 roundoff alone moves the gradients by up to 5e-4 (JAX 0.12's CPU
    # kernels), so the pipelined result is held to the exact value (layers in order, float64):
    # it must be as close to it as running the layers in order in float32 is.
    want32 = jax.value_and_grad(in_order, argnums=(0, 1))(stacked, x)
    with jax.enable_x64(True):
        exact = jax.value_and_grad(in_order, argnums=(0, 1))(
            jax.tree.map(lambda a: a.astype(jnp.float64), stacked), x.astype(jnp.float64))
    for name, pick in (("loss", lambda r: r[0]), ("dw", lambda r: r[1][0]["w"]), ("dx", lambda r: r[1][1])):
        err = np.abs(np.asarray(pick(got), np.float64) - np.asarray(pick(exact))).max()
        err32 = np.abs(np.asarray(pick(want32), np.float64) - np.asarray(pick(exact))).max()
        scale = max(1.0, float(np.abs(np.asarray(pick(exact))).max()))
        assert err <= 2 * err32 + 1e-5 * scale, (name, err, err32)
        np.testing.assert_allclose(pick(got), pick(exact), rtol=1e-3, atol=1e-3)


def test_bubble_fraction():
    assert PipelineSchedule(4, 1, 4).bubble_fraction == pytest.approx(3 / 7)
    assert PipelineSchedule(4, 2, 4).bubble_fraction == pytest.approx(3 / 11)
    assert PipelineSchedule(1, 1, 1).bubble_fraction == 0


def test_model_logits_with_pipeline_equal_without():
    cfg = LlamaConfig(vocab_size=256, num_layers=4, hidden=32, ffn=64, num_heads=4, num_kv_heads=2)
    from flax import nnx
    model = Llama(cfg, nnx.Rngs(params=0))
    tokens = jax.random.randint(jax.random.key(1), (8, 16), 0, 256)
    segments = jnp.repeat(jnp.array([[1] * 10 + [2] * 6]), 8, axis=0)
    positions = jnp.concatenate([jnp.arange(10), jnp.arange(6)])[None].repeat(8, axis=0)
    want = model(tokens, positions, segments)
    mesh = make_mesh(dict(data=2, pipeline=2, fsdp=1, tensor=2))
    graphdef, params = nnx.split(model)
    params = nnx.to_pure_dict(params)
    pipeline = Pipeline(PipelineSchedule(2, 2, 2))

    @jax.jit
    def logits(params):
        params = pipeline.to_stages(params)
        return nnx.merge(graphdef, params)(tokens, positions, segments, run_blocks=pipeline.run_blocks)

    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_RULES):
        params = jax.device_put(params, jax.sharding.NamedSharding(mesh, P()))
        got = logits(params)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


LAYOUTS = {
    "pipe2_tensor2_data2": dict(data=2, pipeline=2, fsdp=1, tensor=2),
    "pipe4_fsdp2": dict(data=1, pipeline=4, fsdp=2, tensor=1),
    "pipe2_circular2_data4": dict(data=4, pipeline=2, fsdp=1, tensor=1, pipeline_repeats=2),
}


def _pipeline_config(corpus, **mesh):
    cfg = small_config(corpus, global_batch=16, microbatches=2)
    cfg.model.num_layers = 4
    cfg.mesh.update(mesh)
    return cfg


def _losses(workdir):
    return [row["loss"] for row in read_metrics(workdir) if "loss" in row]


@pytest.fixture(scope="module")
def one_device_losses(corpus, tmp_path_factory):
    cfg = _pipeline_config(corpus, data=1, fsdp=1, tensor=1)
    cfg.train.microbatches = 1
    workdir = str(tmp_path_factory.mktemp("one_device"))
    train(cfg, workdir, devices=jax.devices()[:1])
    return _losses(workdir)


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_pipeline_training_equals_one_device(corpus, tmp_path, one_device_losses, layout):
    """5 steps with gradient accumulation (2 microbatches) on 8 devices == 1 device."""
    cfg = _pipeline_config(corpus, **layout)
    train(cfg, str(tmp_path), devices=jax.devices())
    losses = _losses(tmp_path)
    assert len(losses) == 5
    np.testing.assert_allclose(losses, one_device_losses, rtol=1e-5)


@pytest.mark.parametrize("mesh,message", [
    (dict(pipeline=2, pipeline_repeats=3), "model.num_layers=4 is not divisible by mesh.pipeline=2 x "
                                           "mesh.pipeline_repeats=3"),
    (dict(pipeline=4, pipeline_microbatches=2), "mesh.pipeline_microbatches=2 must be at least"),
    (dict(pipeline=2, pipeline_microbatches=3), "mesh.pipeline_microbatches=3 must be a multiple of "
                                                "mesh.pipeline=2"),
    (dict(pipeline=2, pipeline_microbatches=6), "mesh.pipeline_microbatches=6 does not divide"),
    (dict(pipeline=2, data=4, pipeline_microbatches=4), "cannot be split over mesh.data x mesh.fsdp"),
    (dict(pipeline=1, pipeline_repeats=2), "mesh.pipeline_repeats=2 needs mesh.pipeline > 1"),
])
def test_pipeline_config_errors_name_the_setting(corpus, mesh, message):
    cfg = _pipeline_config(corpus, data=1, fsdp=-1, tensor=1)
    cfg.mesh.update(mesh)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(cfg, 8)


def test_pipelined_checkpoint_resumes_on_one_device(corpus, tmp_path, one_device_losses):
    """Checkpoints keep the layers in model order: a circular-pipeline run's step-3 checkpoint
    resumes on a single device and ends with the uninterrupted single-device losses."""
    import shutil

    cfg = _pipeline_config(corpus, **LAYOUTS["pipe2_circular2_data4"])
    cfg.train.checkpoint_every = 3
    train(cfg, str(tmp_path), devices=jax.devices())
    shutil.rmtree(tmp_path / "checkpoints" / "5")
    single = _pipeline_config(corpus, data=1, fsdp=1, tensor=1)
    single.train.update(microbatches=1, checkpoint_every=3)
    train(single, str(tmp_path), devices=jax.devices()[:1])
    assert [row["step"] for row in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(_losses(tmp_path), one_device_losses, rtol=1e-5)


@pytest.mark.parametrize("model", [dict(remat="full"), dict(remat="save_dots", scan=False)],
                         ids=["remat_full", "save_dots_unrolled"])
def test_pipeline_with_remat_and_unrolled_layers(corpus, tmp_path, one_device_losses, model):
    cfg = _pipeline_config(corpus, **LAYOUTS["pipe2_circular2_data4"])
    cfg.model.update(model)
    train(cfg, str(tmp_path), devices=jax.devices())
    np.testing.assert_allclose(_losses(tmp_path), one_device_losses, rtol=1e-5)
