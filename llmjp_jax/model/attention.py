"""Causal attention, four ways (`model.attention`):

- `xla`: einsums XLA compiles on every platform, the upper-triangle blocks skipped;
- `cudnn`: cuDNN's fused flash attention (NVIDIA GPUs), through `jax.nn.dot_product_attention`;
- `splash`: the Pallas splash-attention kernel (TPUs; in interpret mode on a CPU, for tests);
- `auto`: splash on TPUs, cudnn on GPUs, xla elsewhere (resolved by `LlamaConfig.for_platform`).

All take q [B, T, N, H], k and v [B, S, K, H] (N a multiple of K: grouped-query heads) and
optional document ids [B, T]: a token sees the earlier tokens of its own document only.
"""

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.sharding import PartitionSpec

from llmjp_jax.errors import UserError

IMPLEMENTATIONS = ("auto", "xla", "cudnn", "splash")
_FAST = {"tpu": "splash", "gpu": "cudnn", "cuda": "cudnn"}
# Where each kernel runs; splash also runs on CPUs, interpreted (slow: for tests only).
_RUNS_ON = {"cudnn": ("gpu", "cuda"), "splash": ("tpu", "cpu")}


def resolve(name: str, platform: str) -> str:
    """The implementation `name` means on `platform` ("cpu", "gpu"/"cuda", "tpu")."""
    impl = _FAST.get(platform, "xla") if name == "auto" else name
    if impl not in IMPLEMENTATIONS[1:]:
        raise UserError(f"model.attention={name!r}: choose one of {IMPLEMENTATIONS}.")
    if impl in _RUNS_ON and platform not in _RUNS_ON[impl]:
        raise UserError(f"model.attention={name!r} does not run on {platform} devices; use "
                         f"'auto' (the fast kernel of each platform) or 'xla'.")
    return impl


def self_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT, impl: str, interpret: bool):
    """Full-sequence causal attention with the implementation `impl` names."""
    if impl == "auto":  # a model built outside a training run: the default backend decides
        impl = resolve(impl, jax.default_backend())
    if impl == "cudnn":
        return cudnn_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT)
    if impl == "splash":
        return splash_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT, interpret)
    return causal_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT)


def same_document(segment_ids_BxT):
    return segment_ids_BxT[:, :, None] == segment_ids_BxT[:, None, :]


def causal_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT=None):
    """The `xla` path: causal attention over one sequence, optionally within each document.

    The queries are cut into blocks and block i only meets keys 0 .. end of block i:
    the all-masked upper blocks are never computed (10/16 of the work with 4 blocks; the
    attention's forward and backward 1.4x faster on CPU at length 512; benchmarks/RESULTS.md).
    """
    t = q_BxTxNxH.shape[1]
    visible_BxTxS = jnp.tril(jnp.ones((t, t), bool))[None]
    if segment_ids_BxT is not None:
        visible_BxTxS = visible_BxTxS & same_document(segment_ids_BxT)
    size = causal_block(t)
    outs = [attend(q_BxTxNxH[:, i:i + size], k_BxSxKxH[:, :i + size], v_BxSxKxH[:, :i + size],
                   visible_BxTxS[:, i:i + size, :i + size]) for i in range(0, t, size)]
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)


def causal_block(t: int) -> int:
    """Query block length: at least 128 (smaller matmuls lose more than the skipped work
    gains), at most 8 blocks."""
    size = max(128, t // 8)
    return size if t % size == 0 else t


def attend(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, visible_BxTxS):
    """Softmax attention written with einsums; query head n uses KV head n // (N / K).

    XLA compiles this well on every platform (on CPU about 1.5x faster than
    jax.nn.dot_product_attention's reference path; benchmarks/RESULTS.md).
    """
    b, t, n, h = q_BxTxNxH.shape
    kv = k_BxSxKxH.shape[2]
    g = n // kv
    # The g query heads sharing a KV head are folded into the query axis, so both
    # products are plain batched matmuls over (batch, kv head).
    q_BxKxGxTxH = q_BxTxNxH.reshape(b, t, kv, g, h).transpose(0, 2, 3, 1, 4) * (h**-0.5)
    q_BxKxQxH = q_BxKxGxTxH.reshape(b, kv, g * t, h)
    scores_BxKxQxS = jnp.einsum("bkqh,bskh->bkqs", q_BxKxQxH, k_BxSxKxH).astype(jnp.float32)
    visible_BxQxS = jnp.tile(visible_BxTxS, (1, g, 1))
    scores_BxKxQxS = jnp.where(visible_BxQxS[:, None], scores_BxKxQxS, jnp.finfo(jnp.float32).min)
    probs_BxKxQxS = jax.nn.softmax(scores_BxKxQxS, axis=-1).astype(v_BxSxKxH.dtype)
    out_BxKxQxH = jnp.einsum("bkqs,bskh->bkqh", probs_BxKxQxS, v_BxSxKxH)
    return out_BxKxQxH.reshape(b, kv, g, t, h).transpose(0, 3, 1, 2, 4).reshape(b, t, n, h)


def cudnn_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT=None, implementation="cudnn"):
    """The `cudnn` path. cuDNN takes the causal mask as a flag (the upper triangle is skipped) and
    documents as a boolean mask [B, 1, T, S]; GQA heads as they are.

    `implementation="xla"` runs the same call through XLA: how the CPU tests check the masks.
    """
    mask = None if segment_ids_BxT is None else same_document(segment_ids_BxT)[:, None]
    return jax.nn.dot_product_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, mask=mask, is_causal=True,
                                        implementation=implementation)


def splash_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT=None, interpret=False):
    """The `splash` path: Pallas's flash kernel for TPUs, one call per sequence (vmapped).

    A Mosaic kernel cannot be partitioned by GSPMD, so under a mesh it runs inside
    `jax.shard_map`, split over the mesh axes that the logical rules give the batch and the
    heads (each device attends its own sequences and heads; no communication).
    """
    local = functools.partial(_splash_local, interpret=interpret)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return local(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT)
    q_spec = _mesh_spec("act_batch", "act_len", "act_heads", None)
    kv_spec = _mesh_spec("act_batch", "act_len", "act_kv_heads", None)
    seg_spec = None if segment_ids_BxT is None else _mesh_spec("act_batch", "act_len")
    return jax.shard_map(local, in_specs=(q_spec, kv_spec, kv_spec, seg_spec), out_specs=q_spec,
                         check_vma=False)(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT)


def _mesh_spec(*logical) -> PartitionSpec:
    """Mesh axes of logical names under the current rules (flax's logical_axis_rules)."""
    return nn.logical_to_mesh_axes(logical)


def splash_block(t: int) -> int:
    """The kernel's tile length along the sequence: 512 where it divides T (a fast size on
    v5p/v6e), else the largest multiple of 128 that does."""
    for size in (512, 384, 256, 128):
        if t % size == 0:
            return size
    raise UserError(f"model.attention='splash' needs a sequence length that is a multiple of 128, "
                     f"got {t}; change train.seq_len or use model.attention='xla'.")


def _splash_local(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, segment_ids_BxT, *, interpret: bool):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as kernel
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as masks

    _, t, n, h = q_BxTxNxH.shape
    size = splash_block(t)
    blocks = kernel.BlockSizes(block_q=size, block_kv=size, block_kv_compute=size,
                               block_q_dkv=size, block_kv_dkv=size, block_kv_dkv_compute=size,
                               block_q_dq=size, block_kv_dq=size)
    causal = masks.MultiHeadMask([masks.CausalMask((t, t))] * n)
    splash = kernel.make_splash_mha(causal, block_sizes=blocks, head_shards=1, q_seq_shards=1,
                                    interpret=interpret)
    # The kernel wants heads first, [N, T, H], and does not scale the queries itself.
    q_BxNxTxH = (q_BxTxNxH * (h**-0.5)).transpose(0, 2, 1, 3)
    k_BxKxSxH, v_BxKxSxH = k_BxSxKxH.transpose(0, 2, 1, 3), v_BxSxKxH.transpose(0, 2, 1, 3)
    if segment_ids_BxT is None:
        out_BxNxTxH = jax.vmap(splash)(q_BxNxTxH, k_BxKxSxH, v_BxKxSxH)
    else:
        seg = segment_ids_BxT.astype(jnp.int32)
        out_BxNxTxH = jax.vmap(splash)(q_BxNxTxH, k_BxKxSxH, v_BxKxSxH,
                                       segment_ids=kernel.SegmentIds(q=seg, kv=seg))
    return out_BxNxTxH.transpose(0, 2, 1, 3)
