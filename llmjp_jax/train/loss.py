"""Next-token cross entropy with optional z-loss, as sums (so microbatches add up exactly)."""

import jax
import jax.numpy as jnp
from flax import nnx

from llmjp_jax.model.layers import constrain
from llmjp_jax.model.llama import output_logits


def token_losses(logits_BxTxV, targets_BxT):
    """Per-token cross entropy and log(Z), float32 [B, T] each."""
    logits_BxTxV = logits_BxTxV.astype(jnp.float32)
    log_z_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    return log_z_BxT - target_logit_BxT, log_z_BxT


def model_outputs(model, batch, run_blocks=None, hidden_only: bool = False):
    """Logits for a batch of rows of T + 1 tokens, the next-token targets, and the loss mask
    (with `hidden_only`, the final-normed hidden states instead of the logits: `Llama.hidden`).

    Concatenated rows (Megatron style) train on every target. First-fit packed
    rows carry `segment_ids` (0 = padding) and `positions`: attention stays
    within a document and a target counts only inside the same document.
    """
    tokens_BxT1 = constrain(batch["tokens"], "act_batch", "act_len")
    inputs_BxT, targets_BxT = tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]
    forward = model.hidden if hidden_only else model
    if "segment_ids" not in batch:
        out = forward(inputs_BxT, run_blocks=run_blocks)
        return out, targets_BxT, jnp.ones(targets_BxT.shape, bool)
    segments_BxT1 = batch["segment_ids"]
    out = forward(inputs_BxT, batch["positions"][:, :-1], segments_BxT1[:, :-1], run_blocks=run_blocks)
    mask_BxT = (segments_BxT1[:, 1:] == segments_BxT1[:, :-1]) & (segments_BxT1[:, 1:] != 0)
    return out, targets_BxT, mask_BxT


def _masked_sums(logits_BxTxV, targets_BxT, mask_BxT):
    ce_BxT, log_z_BxT = token_losses(logits_BxTxV, targets_BxT)
    return jnp.stack([jnp.sum(jnp.where(mask_BxT, ce_BxT, 0.0)),
                      jnp.sum(jnp.where(mask_BxT, jnp.square(log_z_BxT), 0.0))])


def loss_sums(graphdef, params, batch, run_blocks=None, chunk: int = 0):
    """(sum of cross entropy, sum of log(Z)^2, number of targets) over the batch's counted targets.

    `chunk` > 0 (train.loss_chunk): the output head and the loss run over that many positions
    of the sequence at a time, rematerialised in the backward pass, so the [B, T, V] float32
    logits never exist at once (they dominate activation memory with LLM-jp's 99,584-row
    vocabulary); the head's forward matmul is computed twice.
    """
    model = nnx.merge(graphdef, params)
    if not chunk:
        logits, targets, mask = model_outputs(model, batch, run_blocks)
        sums = _masked_sums(logits, targets, mask)
    else:
        hidden_BxTxD, targets, mask = model_outputs(model, batch, run_blocks, hidden_only=True)
        sums = _chunked_sums(hidden_BxTxD, model.head_weights(), targets, mask, chunk)
    return sums[0], sums[1], jnp.sum(mask, dtype=jnp.float32)


def _chunked_sums(hidden_BxTxD, head_DxV, targets_BxT, mask_BxT, chunk: int):
    b, t, d = hidden_BxTxD.shape

    def pieces(a):  # [B, T, ...] -> [T / chunk, B, chunk, ...]
        return a.reshape(b, t // chunk, chunk, *a.shape[2:]).swapaxes(0, 1)

    @jax.checkpoint
    def piece(sums, xs):
        x_BxCxD, targets_BxC, mask_BxC = xs
        return sums + _masked_sums(output_logits(x_BxCxD, head_DxV), targets_BxC, mask_BxC), None

    xs = (pieces(hidden_BxTxD), pieces(targets_BxT), pieces(mask_BxT))
    return jax.lax.scan(piece, jnp.zeros(2, jnp.float32), xs)[0]
