"""Llama-2 building blocks in Flax NNX.

Parameters carry logical axis names (`out_sharding`); activations are
constrained with logical names too. Which mesh axis a name maps to is decided
in `llmjp_jax.parallel`, never here.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx
from flax.linen import with_logical_constraint

from llmjp_jax.model.attention import attend, self_attention
from llmjp_jax.model.config import LlamaConfig


def _param(rngs: nnx.Rngs, shape, std: float, axes) -> nnx.Param:
    value = std * jax.random.normal(rngs.params(), shape, jnp.float32)
    return nnx.Param(value, out_sharding=axes)


def dense(x, w, in_dims: int = 1):
    """Contracts the last `in_dims` axes of x with the first `in_dims` axes of w.

    Written as one 2-D matmul ([tokens, in] @ [in, out]) because XLA:CPU runs
    the backward pass of the equivalent multi-axis einsum about 1.8x slower
    (benchmarks/RESULTS.md, 2026-11-23).
    """
    lead, w_in, w_out = x.shape[: x.ndim - in_dims], w.shape[:in_dims], w.shape[in_dims:]
    x_NxI = x.reshape(-1, math.prod(w_in))
    y_NxO = x_NxI @ w.reshape(math.prod(w_in), -1).astype(x.dtype)
    return y_NxO.reshape(*lead, *w_out)


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

    def _qkv(self, x_BxTxD, positions_BxT):
        """Queries, keys and values of these tokens, rotated for their positions."""
        cfg = self.cfg
        q = dense(x_BxTxD, self.wq[...])
        k = dense(x_BxTxD, self.wk[...])
        v = dense(x_BxTxD, self.wv[...])
        q = constrain(rope(q, positions_BxT, cfg.rope_theta), "act_batch", "act_len", "act_heads", None)
        k = constrain(rope(k, positions_BxT, cfg.rope_theta), "act_batch", "act_len", "act_kv_heads", None)
        return q, k, constrain(v, "act_batch", "act_len", "act_kv_heads", None)

    def __call__(self, x_BxTxD, positions_BxT, segment_ids_BxT=None):
        """Full-sequence causal attention (within each document when segment ids are given)."""
        q, k, v = self._qkv(x_BxTxD, positions_BxT)
        out = self_attention(q, k, v, segment_ids_BxT, self.cfg.attention, self.cfg.interpret_kernels)
        out_BxTxD = dense(out, self.wo[...], in_dims=2)
        return constrain(out_BxTxD, "act_batch", "act_len", "act_embed")

    def decode(self, x_BxTxD, positions_BxT, cache):
        """These T new tokens attend to the cached keys/values (k, v, end, start_B; see `KVCache`)
        and themselves; returns (output, the updated (k, v))."""
        q, k, v = self._qkv(x_BxTxD, positions_BxT)
        k_cache, v_cache, end, start_B = cache
        k_cache = jax.lax.dynamic_update_slice_in_dim(k_cache, k.astype(k_cache.dtype), end, axis=1)
        v_cache = jax.lax.dynamic_update_slice_in_dim(v_cache, v.astype(v_cache.dtype), end, axis=1)
        out = attend(q, k_cache, v_cache, _cached_visibility(q.shape[1], k_cache.shape[1], end, start_B))
        return dense(out, self.wo[...], in_dims=2), (k_cache, v_cache)


def _cached_visibility(t: int, s: int, end, start_B):
    """New query i (at cache slot end + i) sees slots start_b .. end + i of its row."""
    query_slot_T = end + jnp.arange(t)
    key_slot_S = jnp.arange(s)
    causal_TxS = key_slot_S[None, :] <= query_slot_T[:, None]
    return causal_TxS[None] & (key_slot_S[None, None, :] >= start_B[:, None, None])


class MLP(nnx.Module):
    """SwiGLU feed-forward block."""

    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        d, f, std = cfg.hidden, cfg.ffn, cfg.init_std
        self.w_gate = _param(rngs, (d, f), std, ("embed", "mlp"))
        self.w_up = _param(rngs, (d, f), std, ("embed", "mlp"))
        self.w_down = _param(rngs, (f, d), std, ("mlp", "embed"))

    def __call__(self, x_BxTxD):
        gate_BxTxF = dense(x_BxTxD, self.w_gate[...])
        up_BxTxF = dense(x_BxTxD, self.w_up[...])
        h_BxTxF = constrain(jax.nn.silu(gate_BxTxF) * up_BxTxF, "act_batch", "act_len", "act_mlp")
        return constrain(dense(h_BxTxF, self.w_down[...]), "act_batch", "act_len", "act_embed")


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

    def decode(self, x_BxTxD, positions_BxT, cache):
        """The layer on new tokens with the KV cache (see `Attention.decode`): (output, (k, v))."""
        attn, cache = self.attn.decode(self.attn_norm(x_BxTxD), positions_BxT, cache)
        x_BxTxD = x_BxTxD + attn
        return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD)), cache
