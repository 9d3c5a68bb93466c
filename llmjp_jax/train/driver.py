"""The host side of the training loop: one step at a time, each judged before the next.

After every step the host reads its few scalars (the next batch is already loaded while the
device works), so every process takes the same decision at the same step: skip a step's
data (train.skip_steps, rollbacks), note a loss spike and roll back after repeated ones,
stop on a signal, log, evaluate and save.
"""

import dataclasses
import time

import jax
import numpy as np

from llmjp_jax.log import get_logger
from llmjp_jax.train import checkpoint
from llmjp_jax.train.guard import SkipPlan, SkipWatch, SpikeTracker
from llmjp_jax.train.monitor import exit_for_peer
from llmjp_jax.train.signals import Preempted

log = get_logger()


class LossSpikeError(RuntimeError):
    """Repeated loss spikes that rollbacks did not cure."""


@dataclasses.dataclass
class _Counts:
    """What happened since the last metrics row."""

    timed_steps: int = 0
    skipped: int = 0
    spikes: int = 0
    data_skipped: int = 0
    since: float = dataclasses.field(default_factory=time.perf_counter)


class Driver:
    """Runs steps start+1..train.steps of `run` (llmjp_jax.train.loop.Run) with its compiled step."""

    def __init__(self, run, step_fn, skip_fn, evaluate, data_iter, manager, keep, writer, events,
                 signals, monitor, config_json, tracker: SpikeTracker, plan: SkipPlan):
        self.run, self.t = run, run.cfg.train
        self.step_fn, self.skip_fn, self.evaluate = step_fn, skip_fn, evaluate
        self.data_iter, self.manager, self.keep = data_iter, manager, keep
        self.writer, self.events, self.signals, self.monitor = writer, events, signals, monitor
        self.config_json, self.tracker, self.plan = config_json, tracker, plan
        self.watch = SkipWatch(self.t.max_skipped_steps)
        self.last_row: dict = {}
        self.saved: int | None = None  # the step of this process's latest save

    def _fetch(self):
        """The next host batch, and the data position right after it (what a save at that step holds)."""
        batch = next(self.data_iter)
        return batch, self.data_iter.get_state()

    def _stop_array(self) -> jax.Array:
        rows = self.t.global_batch // jax.process_count()
        flag = np.full((rows,), int(self.signals.requested), np.int32)
        return jax.make_array_from_process_local_data(self.run.batch_sharding, flag)

    def run_steps(self, state, start: int) -> dict:
        done, counts = start, _Counts()
        pending = self._fetch()
        self._protect(start)
        while done < self.t.steps:
            batch, data_state = pending
            step = done + 1
            if self.plan.skips(step):
                state, stop = self.skip_fn(state, self._stop_array())
                metrics = None
                counts.data_skipped += 1
            else:
                arrays = self.run.globalise(batch)
                state, metrics = self.step_fn(state, {**arrays, "stop": self._stop_array()})
                stop = None
            pending = self._fetch() if step < self.t.steps else None  # loads while the device works
            metrics, stop = self._wait(step, metrics, stop)
            done = step
            self.monitor.beat(done)
            if metrics is not None:
                counts.timed_steps += 1
                if self._judge(done, metrics, counts):
                    state, done = self._rollback(done)
                    counts, pending = _Counts(), self._fetch()
                    continue
            if self._log_eval_save(state, done, metrics, counts, data_state, stop):
                counts = _Counts()
            if stop or self.manager.reached_preemption(done):
                self._stop(state, done, data_state)
        return self.last_row

    def _wait(self, step: int, metrics, stop):
        """The step's metrics on the host (None for a skipped step) and its agreed stop flag."""
        try:
            if metrics is None:
                return None, int(jax.device_get(stop))
            metrics = jax.device_get(metrics)
            return metrics, int(metrics["stop"])
        except jax.errors.JaxRuntimeError as e:
            if jax.process_count() == 1:
                raise
            exit_for_peer(f"Step {step} failed in a collective ({str(e).splitlines()[0][:300]}): "
                          f"another process has probably died." + self.monitor.describe_peers())

    def _judge(self, done: int, m: dict, counts: _Counts) -> bool:
        """Non-finite and spike bookkeeping for step `done`; True when it calls for a rollback."""
        self.watch.check(bool(m["skipped"]), done)
        counts.skipped += int(m["skipped"])
        if not m["spike"]:
            return False
        counts.spikes += 1
        log.warning("Loss spike at step %d (loss %.4f): its update was skipped.", done, float(m["loss"]))
        self.events.write("spike", step=done, loss=float(m["loss"]), grad_norm=float(m["grad_norm"]))
        return self.tracker.record(done)

    def _log_eval_save(self, state, done, metrics, counts: _Counts, data_state, stop) -> bool:
        """Writes the metrics row, evaluates and saves as due; True when a row was written."""
        t, row = self.t, {}
        if done % t.log_every == 0 or done == t.steps:
            row = self._row(metrics, counts)
        evaluated = bool(self.evaluate) and (done % t.eval_every == 0 or done == t.steps)
        if evaluated:
            row.update(self.evaluate(state["params"]))
        if row:
            self.last_row = {"step": done, "tokens": done * t.global_batch * t.seq_len, **row}
            self.writer.write(self.last_row)
        saved = self._save(state, done, data_state, force=done == t.steps or bool(stop))
        if saved or evaluated:  # step times exclude evaluation and saving
            counts.timed_steps, counts.since = 0, time.perf_counter()
        return bool(row)

    def _row(self, m, counts: _Counts) -> dict:
        row = {k: float(m[k]) for k in ("loss", "z_loss", "grad_norm", "lr")} if m is not None else {}
        if counts.timed_steps:
            step_time = (time.perf_counter() - counts.since) / counts.timed_steps
            tokens = self.t.global_batch * self.t.seq_len
            flops = self.run.model_cfg.flops_per_token(self.t.seq_len) * tokens
            peak = self.run.peak_flops
            row.update(step_time=step_time, tokens_per_sec=tokens / step_time,
                       mfu=flops / step_time / peak if peak else 0.0)
        row.update(skipped_steps=counts.skipped, spike_steps=counts.spikes,
                   data_skipped_steps=counts.data_skipped)
        return row

    def _meta(self) -> dict:
        return self.tracker.to_json()

    def _save(self, state, done: int, data_state, force: bool) -> bool:
        previous = self.saved
        if not checkpoint.save(self.manager, done, state, data_state, self.config_json, self._meta(), force):
            return False
        # orbax finishes the previous save before it starts a new one: that one is complete now.
        if previous is not None:
            self.events.write("committed", step=previous)
        self.events.write("saving", step=done)
        self.saved = done
        self._protect(done)
        return True

    def _protect(self, done: int):
        """While spikes are recent, keeps the newest checkpoint from before them (a rollback's
        target) out of keep_last's deletion; otherwise the newest checkpoint is the good one."""
        first = self.tracker.first_recent(done)
        if first is None:
            self.keep.steps = set()
            return
        steps = [s for s in self.manager.all_steps() if s < first - self.t.spike.skip_before]
        if steps:
            self.keep.steps = {max(steps)}

    def _stop(self, state, done: int, data_state):
        if self.saved != done:
            checkpoint.save(self.manager, done, state, data_state, self.config_json, self._meta(), force=True)
        self.manager.wait_until_finished()
        self.events.write("committed", step=done)
        self.events.write("stopped", step=done, signal=self.signals.signum)
        raise Preempted(done, self.signals.signum)

    def _rollback(self, done: int):
        """Back to the newest checkpoint before the recent spikes; their data will be skipped."""
        sp = self.t.spike
        first = self.tracker.first_recent(done)
        skip = (max(1, first - sp.skip_before), done)
        self.manager.wait_until_finished()
        before = [s for s in self.manager.all_steps() if s < skip[0]]
        spikes = list(self.tracker.recent)
        if self.tracker.rollbacks >= sp.max_rollbacks or not before:
            why = (f"again after {self.tracker.rollbacks} rollbacks (train.spike.max_rollbacks="
                   f"{sp.max_rollbacks}), so skipping their data did not cure it" if before else
                   "and no checkpoint from before them is left to roll back to")
            raise LossSpikeError(
                f"The loss spiked at steps {spikes} ({len(spikes)} within train.spike.window="
                f"{sp.window} steps) {why}. The cause is likely the optimisation: lower "
                f"optim.peak_lr, lengthen optim.warmup_steps, or set train.z_loss; or skip a data "
                f"range by hand with train.skip_steps. The checkpoints in {self.manager.directory} "
                f"hold no update of a spiking step.")
        target = max(before)
        for s in self.manager.all_steps():
            if s > target:  # the abandoned timeline's checkpoints
                self.manager.delete(s)
        state, meta = checkpoint.restore(self.manager, target, self.run.spec.abstract, self.data_iter)
        rollbacks, skipped = self.tracker.rollbacks + 1, self.tracker.skipped + [skip]
        self.tracker.load(meta)
        self.tracker.rollbacks, self.tracker.skipped = rollbacks, skipped
        self.plan.by_rollback = list(skipped)
        self.writer.truncate_after(target)
        log.warning("Loss spikes at steps %s: rolled back to the checkpoint of step %d; the data of "
                    "steps %d..%d will be skipped (rollback %d of at most %d).", spikes, target, *skip,
                    rollbacks, sp.max_rollbacks)
        self.events.write("rollback", step=done, to_step=target, spikes=spikes, skip=list(skip),
                          rollbacks=rollbacks)
        self.monitor.beat(target)
        return state, target
