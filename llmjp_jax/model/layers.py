"""Llama-2 building blocks in Flax NNX.

Parameters carry logical axis names (`out_sharding`); activations are
constrained with logical names too. Which mesh axis a name maps to is decided
in `llmjp_jax.parallel`, never here.
"""

import jax
import jax.numpy as jnp
from flax import nnx
from flax.linen import with_logical_constraint

from llmjp_jax.model.config import LlamaConfig


def _param(rngs: nnx.Rngs, shape, std: float, axes) -> nnx.Param:
    value = std * jax.random.normal(rngs.params(), shape, jnp.float32)
    return nnx.Param(value, out_sharding=axes)


def constrain(x, *axes):
    """Pins an activation's sharding by logical axis names (no-op without rules)."""
    return with_logical_constraint(x, axes)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float):
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32), out_sharding=("norm",))
        self.eps = eps

    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...]).astype(x.dtype)


def rope(x_BxTxNxH, positions_BxT, theta: float):
    """Rotary embedding, rotate-half convention (as Hugging Face Llama)."""
    half = x_BxTxNxH.shape[-1] // 2
    inv_freq = 1.0 / theta ** (jnp.arange(half, dtype=jnp.float32) / half)
    angles_BxTxh = positions_BxT[..., None].astype(jnp.float32) * inv_freq
    cos = jnp.cos(angles_BxTxh)[:, :, None, :]
    sin = jnp.sin(angles_BxTxh)[:, :, None, :]
    x1, x2 = x_BxTxNxH[..., :half].astype(jnp.float32), x_BxTxNxH[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxNxH.dtype)


class Attention(nnx.Module):
    """Causal self-attention with grouped-query heads and optional document masks."""

    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        d, h, k, dh, std = cfg.hidden, cfg.num_heads, cfg.num_kv_heads, cfg.dh, cfg.init_std
        self.wq = _param(rngs, (d, h, dh), std, ("embed", "heads", "head_dim"))
        self.wk = _param(rngs, (d, k, dh), std, ("embed", "kv_heads", "head_dim"))
        self.wv = _param(rngs, (d, k, dh), std, ("embed", "kv_heads", "head_dim"))
        self.wo = _param(rngs, (h, dh, d), std, ("heads", "head_dim", "embed"))
        self.cfg = cfg

    def __call__(self, x_BxTxD, positions_BxT, segment_ids_BxT=None):
        cfg, dt = self.cfg, x_BxTxD.dtype
        q = jnp.einsum("btd,dnh->btnh", x_BxTxD, self.wq[...].astype(dt))
        k = jnp.einsum("btd,dnh->btnh", x_BxTxD, self.wk[...].astype(dt))
        v = jnp.einsum("btd,dnh->btnh", x_BxTxD, self.wv[...].astype(dt))
        q = constrain(rope(q, positions_BxT, cfg.rope_theta), "act_batch", "act_len", "act_heads", None)
        k = constrain(rope(k, positions_BxT, cfg.rope_theta), "act_batch", "act_len", "act_kv_heads", None)
        v = constrain(v, "act_batch", "act_len", "act_kv_heads", None)
        mask = None
        if segment_ids_BxT is not None:
            same_doc_BxTxT = segment_ids_BxT[:, :, None] == segment_ids_BxT[:, None, :]
            mask = same_doc_BxTxT[:, None, :, :]
        out_BxTxNxH = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=True)
        out_BxTxD = jnp.einsum("btnh,nhd->btd", out_BxTxNxH, self.wo[...].astype(dt))
        return constrain(out_BxTxD, "act_batch", "act_len", "act_embed")


class MLP(nnx.Module):
    """SwiGLU feed-forward block."""

    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        d, f, std = cfg.hidden, cfg.ffn, cfg.init_std
        self.w_gate = _param(rngs, (d, f), std, ("embed", "mlp"))
        self.w_up = _param(rngs, (d, f), std, ("embed", "mlp"))
        self.w_down = _param(rngs, (f, d), std, ("mlp", "embed"))

    def __call__(self, x_BxTxD):
        dt = x_BxTxD.dtype
        gate_BxTxF = x_BxTxD @ self.w_gate[...].astype(dt)
        up_BxTxF = x_BxTxD @ self.w_up[...].astype(dt)
        h_BxTxF = constrain(jax.nn.silu(gate_BxTxF) * up_BxTxF, "act_batch", "act_len", "act_mlp")
        return constrain(h_BxTxF @ self.w_down[...].astype(dt), "act_batch", "act_len", "act_embed")


class Block(nnx.Module):
    """Pre-norm decoder layer: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.attn = Attention(cfg, rngs)
        self.mlp_norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.mlp = MLP(cfg, rngs)

    def __call__(self, x_BxTxD, positions_BxT, segment_ids_BxT=None):
        x_BxTxD = x_BxTxD + self.attn(self.attn_norm(x_BxTxD), positions_BxT, segment_ids_BxT)
        return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD))
