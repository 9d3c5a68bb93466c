"""The jitted train and eval steps: microbatched gradients, AdamW update, metrics."""

import jax
import jax.numpy as jnp
import optax

from llmjp_jax.train.guard import spike_step
from llmjp_jax.train.loss import loss_sums


def _all_finite(tree) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves]))


def make_train_step(graphdef, tx, schedule, microbatches: int, z_loss: float, pipeline=None,
                    loss_chunk: int = 0, spike_cfg=None, uniform_loss: float = float("inf")):
    """Returns step(state, batch) -> (state, metrics); one optimizer update per call.

    `batch` holds int32 [B, T+1] arrays: "tokens", and for first-fit packing
    "segment_ids" and "positions"; optionally "stop", int32 [B], which each process fills
    with its own flag (a signal asked it to stop): metrics["stop"] is their maximum, so
    every process learns of any one's request at the same step.
    `pipeline`: a `llmjp_jax.parallel.pipeline.Pipeline`. `loss_chunk`: see `loss_sums`.
    `spike_cfg`: train.spike, `uniform_loss`: ln(output rows) (see train/guard.py).
    """
    run_blocks = pipeline.run_blocks if pipeline else None

    def objective(params, batch):
        ce_sum, z_sum, count = loss_sums(graphdef, params, batch, run_blocks, loss_chunk)
        return ce_sum + z_loss * z_sum, (ce_sum, z_sum, count)

    grad_fn = jax.grad(objective, has_aux=True)

    def accumulate(params, batch):
        # Row r of microbatch m is global row r * M + m, so every microbatch is
        # spread evenly over the devices that hold the batch.
        micro = jax.tree.map(
            lambda x_BxT1: x_BxT1.reshape(-1, microbatches, x_BxT1.shape[1]).swapaxes(0, 1), batch)

        def body(acc, micro_batch):
            grads, sums = grad_fn(params, micro_batch)
            return jax.tree.map(jnp.add, acc, (grads, jnp.stack(sums))), None

        zero = (jax.tree.map(jnp.zeros_like, params), jnp.zeros(3, jnp.float32))
        if microbatches == 1:
            return body(zero, jax.tree.map(lambda x: x[0], micro))[0]
        return jax.lax.scan(body, zero, micro)[0]

    def step(state, batch):
        batch = dict(batch)
        stop = batch.pop("stop", jnp.zeros((1,), jnp.int32))
        params = state["params"]
        # The layers are put in pipeline stage order once per step, not once per microbatch;
        # the gradients come back to model order through the same function's transpose.
        run_params, to_model_order = jax.vjp(pipeline.to_stages if pipeline else lambda p: p, params)
        grad_sums, (ce_sum, z_sum, count) = accumulate(run_params, batch)
        grad_sums = to_model_order(grad_sums)[0]
        grads = jax.tree.map(lambda g: g / count, grad_sums)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        # A step whose loss, gradients or updated state are not finite changes neither the
        # parameters nor the optimizer state (one bad batch, an overflow or a damaged state must
        # not poison the run); neither does a loss spike. The step still counts.
        loss = ce_sum / count
        finite = (jnp.isfinite(ce_sum + z_sum) & jnp.isfinite(grad_norm) & _all_finite(new_params)
                  & _all_finite(opt_state))
        spike, guard = spike_step(state["guard"], loss, finite, spike_cfg, uniform_loss)
        ok = finite & ~spike

        def unless_bad(new, old):
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

        new_state = {"step": state["step"] + 1, "params": unless_bad(new_params, params),
                     "opt_state": unless_bad(opt_state, state["opt_state"]), "guard": guard}
        metrics = {"loss": loss, "z_loss": z_loss * z_sum / count, "grad_norm": grad_norm,
                   "lr": schedule(state["step"]), "skipped": (~finite).astype(jnp.int32),
                   "spike": spike.astype(jnp.int32), "stop": jnp.max(stop)}
        return new_state, metrics

    return step


def skip_step(state):
    """The step counter moves on without an update: a step whose data is skipped."""
    return {**state, "step": state["step"] + 1}


def make_eval_step(graphdef, pipeline=None, loss_chunk: int = 0):
    """Returns eval(params, batch) -> (sum of cross entropy, number of targets)."""

    def evaluate(params, batch):
        if pipeline:
            params = pipeline.to_stages(params)
        run_blocks = pipeline.run_blocks if pipeline else None
        ce_sum, _, count = loss_sums(graphdef, params, batch, run_blocks, loss_chunk)
        return ce_sum, count

    return evaluate
