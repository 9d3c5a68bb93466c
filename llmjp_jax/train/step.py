"""The jitted train and eval steps: microbatched gradients, AdamW update, metrics."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from llmjp_jax.model.layers import constrain
from llmjp_jax.train.loss import cross_entropy_sums


def _loss_sums(graphdef, params, tokens_BxT1):
    model = nnx.merge(graphdef, params)
    tokens_BxT1 = constrain(tokens_BxT1, "act_batch", "act_len")
    logits_BxTxV = model(tokens_BxT1[:, :-1])
    return cross_entropy_sums(logits_BxTxV, tokens_BxT1[:, 1:])


def make_train_step(graphdef, tx, schedule, microbatches: int, z_loss: float):
    """Returns step(state, tokens[B, T+1]) -> (state, metrics); one optimizer update per call."""

    def objective(params, tokens_BxT1):
        ce_sum, z_sum, count = _loss_sums(graphdef, params, tokens_BxT1)
        return ce_sum + z_loss * z_sum, (ce_sum, z_sum, count)

    grad_fn = jax.grad(objective, has_aux=True)

    def accumulate(params, tokens_BxT1):
        # Row r of microbatch m is global row r * M + m, so every microbatch is
        # spread evenly over the devices that hold the batch.
        b, t1 = tokens_BxT1.shape
        micro_MxbxT1 = tokens_BxT1.reshape(b // microbatches, microbatches, t1).swapaxes(0, 1)

        def body(acc, tokens_bxT1):
            grads, sums = grad_fn(params, tokens_bxT1)
            return jax.tree.map(jnp.add, acc, (grads, jnp.stack(sums))), None

        zero = (jax.tree.map(jnp.zeros_like, params), jnp.zeros(3, jnp.float32))
        if microbatches == 1:
            return body(zero, micro_MxbxT1[0])[0]
        return jax.lax.scan(body, zero, micro_MxbxT1)[0]

    def step(state, tokens_BxT1):
        params = state["params"]
        grad_sums, (ce_sum, z_sum, count) = accumulate(params, tokens_BxT1)
        grads = jax.tree.map(lambda g: g / count, grad_sums)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_state = {"step": state["step"] + 1, "params": optax.apply_updates(params, updates),
                     "opt_state": opt_state}
        metrics = {"loss": ce_sum / count, "z_loss": z_loss * z_sum / count,
                   "grad_norm": optax.tree.norm(grads), "lr": schedule(state["step"])}
        return new_state, metrics

    return step


def make_eval_step(graphdef):
    """Returns eval(params, tokens[B, T+1]) -> (sum of cross entropy, token count)."""

    def evaluate(params, tokens_BxT1):
        ce_sum, _, count = _loss_sums(graphdef, params, tokens_BxT1)
        return ce_sum, count

    return evaluate
