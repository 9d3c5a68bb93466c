"""Next-token cross entropy with optional z-loss, as sums (so microbatches add up exactly)."""

import jax
import jax.numpy as jnp
from flax import nnx

from llmjp_jax.model.layers import constrain


def token_losses(logits_BxTxV, targets_BxT):
    """Per-token cross entropy and log(Z), float32 [B, T] each."""
    logits_BxTxV = logits_BxTxV.astype(jnp.float32)
    log_z_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    return log_z_BxT - target_logit_BxT, log_z_BxT


def model_outputs(model, batch, run_blocks=None):
    """Logits for a batch of rows of T + 1 tokens, the next-token targets, and the loss mask.

    Concatenated rows (Megatron style) train on every target. First-fit packed
    rows carry `segment_ids` (0 = padding) and `positions`: attention stays
    within a document and a target counts only inside the same document.
    """
    tokens_BxT1 = constrain(batch["tokens"], "act_batch", "act_len")
    inputs_BxT, targets_BxT = tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]
    if "segment_ids" not in batch:
        return model(inputs_BxT, run_blocks=run_blocks), targets_BxT, jnp.ones(targets_BxT.shape, bool)
    segments_BxT1 = batch["segment_ids"]
    logits = model(inputs_BxT, batch["positions"][:, :-1], segments_BxT1[:, :-1], run_blocks=run_blocks)
    mask_BxT = (segments_BxT1[:, 1:] == segments_BxT1[:, :-1]) & (segments_BxT1[:, 1:] != 0)
    return logits, targets_BxT, mask_BxT


def loss_sums(graphdef, params, batch, run_blocks=None):
    """(sum of cross entropy, sum of log(Z)^2, number of targets) over the batch's counted targets."""
    logits, targets, mask = model_outputs(nnx.merge(graphdef, params), batch, run_blocks)
    ce_BxT, log_z_BxT = token_losses(logits, targets)
    return (jnp.sum(jnp.where(mask, ce_BxT, 0.0)), jnp.sum(jnp.where(mask, jnp.square(log_z_BxT), 0.0)),
            jnp.sum(mask, dtype=jnp.float32))
