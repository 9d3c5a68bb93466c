"""Loss-spike guard: skip a spiking update on the device, roll back after repeated spikes.

In the step (jitted): a step whose loss exceeds the moving mean by `train.spike.sigmas`
moving standard deviations (and by `min_rise` of the mean), or exceeds the loss of a
uniform guess by `uniform_margin`, is a spike; its update is skipped like a non-finite
one. The moving statistics are exponential averages over about `window` steps of the
accepted losses, kept in the train state ("guard"), so a resumed run makes the same
decisions. MaxText skips such steps too (mean + 6 sigma of the last 128);
this guard adds the rollback that LLM-jp and others did by hand.

On the host: `SpikeTracker` counts spikes; `rollback_after` of them within `window` steps
roll the run back to the last checkpoint before the first of them, and the data of the
steps from that first spike to the last is skipped (`SkipPlan`). `train.skip_steps` lists
step ranges to skip by hand (Megatron's --iterations-to-skip): their batches are read and
dropped, the step counter (and LR schedule) moves on.
"""

import dataclasses

import jax.numpy as jnp

from llmjp_jax.log import get_logger

log = get_logger()


def init_guard() -> dict:
    return {"loss_mean": jnp.float32(0), "loss_var": jnp.float32(0), "count": jnp.int32(0)}


def spike_step(guard: dict, loss, finite, spike_cfg, uniform_loss: float) -> tuple:
    """(is the loss a spike, the guard after this step); only accepted losses update it.

    `uniform_loss` is ln(output rows), the loss of a model that knows nothing: a loss above
    it by `uniform_margin` nats is a spike at any time, even before `min_history` steps (an
    LR blow-up in the first steps).
    """
    mean, var, count = guard["loss_mean"], guard["loss_var"], guard["count"]
    excess = loss - mean
    spike = jnp.bool_(False)
    if spike_cfg is not None and spike_cfg.enabled:
        moving = ((count >= spike_cfg.min_history) & (excess > spike_cfg.sigmas * jnp.sqrt(var))
                  & (excess > spike_cfg.min_rise * jnp.abs(mean)))
        spike = (moving | (loss > uniform_loss + spike_cfg.uniform_margin)) & finite
    accept = finite & ~spike
    alpha = 2.0 / ((spike_cfg.window if spike_cfg is not None else 128) + 1)
    first = count == 0
    new = {"loss_mean": jnp.where(first, loss, mean + alpha * excess),
           "loss_var": jnp.where(first, 0.0, (1 - alpha) * (var + alpha * excess ** 2)),
           "count": count + 1}
    kept = {k: jnp.where(accept, new[k], guard[k]).astype(guard[k].dtype) for k in guard}
    return spike, kept


@dataclasses.dataclass
class SkipPlan:
    """Step ranges whose data is read and dropped: by hand (config) and by rollbacks."""

    by_hand: list[tuple[int, int]]
    by_rollback: list[tuple[int, int]] = dataclasses.field(default_factory=list)

    def skips(self, step: int) -> bool:
        return any(a <= step <= b for a, b in self.by_hand + self.by_rollback)


@dataclasses.dataclass
class SpikeTracker:
    """Recent spike steps, rollbacks so far and the data they skipped; saved in each checkpoint."""

    window: int
    rollback_after: int
    recent: list[int] = dataclasses.field(default_factory=list)
    rollbacks: int = 0
    skipped: list[tuple[int, int]] = dataclasses.field(default_factory=list)

    def record(self, step: int) -> bool:
        """Notes a spike at `step`; True when it calls for a rollback."""
        self.recent = [s for s in self.recent if s > step - self.window] + [step]
        return self.rollback_after > 0 and len(self.recent) >= self.rollback_after

    def first_recent(self, step: int) -> int | None:
        recent = [s for s in self.recent if s > step - self.window]
        return min(recent) if recent else None

    def to_json(self) -> dict:
        return {"recent_spikes": self.recent, "rollbacks": self.rollbacks,
                "skipped_by_rollback": [list(r) for r in self.skipped]}

    def load(self, meta: dict):
        self.recent = list(meta.get("recent_spikes", []))
        self.rollbacks = int(meta.get("rollbacks", 0))
        self.skipped = [tuple(r) for r in meta.get("skipped_by_rollback", [])]


class SkipWatch:
    """Counts steps skipped for a non-finite loss or gradients; stops the run after
    train.max_skipped_steps in a row (it would otherwise spin without learning)."""

    def __init__(self, limit: int):
        self.limit, self.in_a_row = limit, 0

    def check(self, skipped: bool, done: int):
        self.in_a_row = self.in_a_row + 1 if skipped else 0
        if skipped:
            log.warning("Step %d had a non-finite loss, gradients or updated state; its update "
                        "was skipped.", done)
        if self.in_a_row >= self.limit:
            raise FloatingPointError(
                f"Steps {done - self.in_a_row + 1}..{done} all had a non-finite loss or gradients "
                f"(train.max_skipped_steps={self.limit}). Their updates were skipped, so the saved "
                f"checkpoints are unharmed: resume with a lower optim.peak_lr, a longer "
                f"optim.warmup_steps or model.dtype='float32', or check the data these steps read.")
