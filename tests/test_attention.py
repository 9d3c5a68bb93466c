"""The attention kernels against the `xla` path: values and gradients, with and without
document masks, MHA and GQA; splash runs interpreted on CPU, the cudnn call through XLA."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from llmjp_jax.model import LlamaConfig
from llmjp_jax.model.attention import causal_attention, cudnn_attention, resolve, splash_attention
from llmjp_jax.parallel import LOGICAL_RULES


def _qkv(kv_heads, b=2, t=256, n=4, h=32, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    q = jax.random.normal(keys[0], (b, t, n, h), jnp.float32)
    k = jax.random.normal(keys[1], (b, t, kv_heads, h), jnp.float32)
    v = jax.random.normal(keys[2], (b, t, kv_heads, h), jnp.float32)
    return q, k, v


def _documents(b=2, t=256, seed=1):
    """Random document boundaries, the first row with a padding tail (id 0), as first_fit packs."""
    rng = np.random.default_rng(seed)
    ids = np.cumsum(rng.random((b, t)) < 0.05, axis=1).astype(np.int32) + 1
    ids[0, t - 40:] = 0
    assert all(len(np.unique(row)) > 2 for row in ids)  # several documents in every row
    return jnp.asarray(ids)


def _value_and_grads(fn, q, k, v, seg):
    w = jax.random.normal(jax.random.key(9), q.shape, jnp.float32)
    loss = lambda q, k, v: jnp.sum(fn(q, k, v, seg) * w)  # noqa: E731
    return jax.value_and_grad(loss, argnums=(0, 1, 2))(q, k, v), fn(q, k, v, seg)


KERNELS = {
    "splash": functools.partial(splash_attention, interpret=True),
    "cudnn_masks": functools.partial(cudnn_attention, implementation="xla"),
}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
@pytest.mark.parametrize("documents", [False, True], ids=["causal", "documents"])
def test_kernel_equals_xla_attention(kernel, kv_heads, documents):
    q, k, v = _qkv(kv_heads)
    seg = _documents() if documents else None
    (loss, grads), out = _value_and_grads(KERNELS[kernel], q, k, v, seg)
    (ref_loss, ref_grads), ref_out = _value_and_grads(causal_attention, q, k, v, seg)
    np.testing.assert_allclose(out, ref_out, atol=2e-5, rtol=2e-5)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for g, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(g, ref, atol=5e-5, rtol=5e-5)
    if documents:  # the masks matter: attention across documents gives other values
        np.testing.assert_raises(AssertionError, np.testing.assert_allclose,
                                 out, causal_attention(q, k, v, None), atol=1e-3)


def test_splash_sharded_over_batch_and_heads_equals_one_device():
    """Under a mesh, splash runs in shard_map over the axes the rules give the batch and heads."""
    q, k, v = _qkv(kv_heads=2, b=4)
    seg = _documents(b=4)
    devices = np.asarray(jax.devices()[:8]).reshape(2, 1, 2, 2)
    mesh = Mesh(devices, ("data", "pipeline", "fsdp", "tensor"))
    batch_heads = NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None, "tensor", None))
    args = [jax.device_put(x, batch_heads) for x in (q, k, v)]
    seg_sharded = jax.device_put(seg, NamedSharding(mesh, PartitionSpec(("data", "fsdp"))))
    fn = functools.partial(splash_attention, interpret=True)
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_RULES):
        (loss, grads), out = jax.jit(lambda *a: _value_and_grads(fn, *a))(*args, seg_sharded)
        lowered = jax.jit(fn).lower(*args, seg_sharded).as_text()
    assert "shard_map" in lowered or "sdy.manual_computation" in lowered
    (ref_loss, ref_grads), ref_out = _value_and_grads(causal_attention, q, k, v, seg)
    np.testing.assert_allclose(out, ref_out, atol=2e-5, rtol=2e-5)
    for g, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(g, ref, atol=5e-5, rtol=5e-5)


def test_attention_resolves_per_platform():
    cfg = LlamaConfig(vocab_size=300, num_layers=1, hidden=64, ffn=96, num_heads=4, num_kv_heads=2,
                      attention="auto")
    assert cfg.for_platform("tpu").attention == "splash"
    assert not cfg.for_platform("tpu").interpret_kernels
    assert cfg.for_platform("gpu").attention == "cudnn"
    assert cfg.for_platform("cpu").attention == "xla"
    splash_on_cpu = dataclass_replace(cfg, attention="splash").for_platform("cpu")
    assert splash_on_cpu.attention == "splash" and splash_on_cpu.interpret_kernels
    with pytest.raises(ValueError, match="model.attention='cudnn' does not run on cpu"):
        resolve("cudnn", "cpu")
    with pytest.raises(ValueError, match="model.attention='splash' does not run on gpu"):
        resolve("splash", "gpu")


def dataclass_replace(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)
