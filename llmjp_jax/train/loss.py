"""Next-token cross entropy with optional z-loss, as sums (so microbatches add up exactly)."""

import jax
import jax.numpy as jnp


def cross_entropy_sums(logits_BxTxV, targets_BxT):
    """Returns (sum of cross entropy, sum of log(Z)^2, token count), all float32."""
    logits_BxTxV = logits_BxTxV.astype(jnp.float32)
    log_z_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    ce_sum = jnp.sum(log_z_BxT - target_logit_BxT)
    z_sum = jnp.sum(jnp.square(log_z_BxT))
    return ce_sum, z_sum, jnp.float32(targets_BxT.size)
