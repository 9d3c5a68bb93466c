"""The training run: build everything from the config, resume if possible, train (train/driver.py).

What a run does to its workdir is laid out in train/rundir.py; how it survives a cluster:
- one trainer per workdir (a lock), so two cannot overwrite each other;
- resume from the newest checkpoint that verifies (damaged ones are moved to `damaged/`),
  and never silently from scratch when the workdir has a history but no usable checkpoint;
- SIGTERM/SIGINT save the step every process agrees on and exit (train/signals.py);
- loss spikes skip their update, repeated ones roll back (train/guard.py, train/driver.py);
- a hung peer ends the run after train.hang_timeout_s (train/monitor.py).
"""

import contextlib
import json
import math
import os
import shutil
import time

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import multihost_utils

from llmjp_jax.config import parse_ranges, validate
from llmjp_jax.data.loader import train_dataset
from llmjp_jax.data.manifest import ShardError
from llmjp_jax.data.mixture import load_mixture, mixture_table
from llmjp_jax.data.settings import BATCH_KEYS
from llmjp_jax.errors import ConfigError
from llmjp_jax.log import get_logger
from llmjp_jax.model import LlamaConfig
from llmjp_jax.model.attention import splash_block
from llmjp_jax.model.hf import load_hf
from llmjp_jax.optim import make_optimizer, make_schedule
from llmjp_jax.parallel import LOGICAL_RULES, batch_sharding, make_mesh
from llmjp_jax.parallel.distributed import broadcast_json
from llmjp_jax.parallel.mesh import dcn_degrees
from llmjp_jax.parallel.pipeline import Pipeline, schedule_from_config
from llmjp_jax.train import checkpoint, rundir
from llmjp_jax.train.allocator import cpu_allocator_advice, current_allocator
from llmjp_jax.train.driver import Driver, LossSpikeError
from llmjp_jax.train.errors import DiskFullError, MemoryAdvice, named_disk_full
from llmjp_jax.train.evaluation import make_evaluator
from llmjp_jax.train.flops import peak_flops
from llmjp_jax.train.guard import SkipPlan, SpikeTracker
from llmjp_jax.train.metrics import MetricsWriter
from llmjp_jax.train.monitor import Monitor
from llmjp_jax.train.signals import StopSignals
from llmjp_jax.train.state import init_state, state_spec
from llmjp_jax.train.step import make_train_step, skip_step

log = get_logger()


class NoUsableCheckpointError(RuntimeError):
    """The workdir has a history (saved checkpoints, metrics) but nothing to resume from."""


# Errors whose message names the file or setting to change (llmjp-train prints only the message).
RUN_ERRORS = (rundir.WorkdirBusyError, NoUsableCheckpointError, LossSpikeError,
              checkpoint.CorruptCheckpointError, DiskFullError, FloatingPointError, MemoryError,
              ShardError)


class Run:
    """Everything one training run needs, built once from the config."""

    def __init__(self, cfg, workdir: str, devices=None, signals: StopSignals | None = None):
        self.cfg, self.workdir, self.signals = cfg, workdir, signals
        if workdir:
            rundir.check_workdir(workdir)
        self.devices = list(jax.devices() if devices is None else devices)
        t = cfg.train
        degrees = validate(cfg, len(self.devices), jax.process_count())
        self.pipeline = None
        if degrees["pipeline"] > 1:
            schedule = schedule_from_config(cfg.mesh, degrees["pipeline"])
            log.info("Pipeline: %d stages x %d repeats, %d microbatches, bubble %.1f%% of stage time",
                     schedule.stages, schedule.repeats, schedule.microbatches,
                     100 * schedule.bubble_fraction)
            self.pipeline = Pipeline(schedule)
        try:  # "auto" attention becomes the devices' fast kernel
            self.model_cfg = LlamaConfig.from_dict(cfg.model).for_platform(self.devices[0].platform)
            if self.model_cfg.attention == "splash":
                splash_block(t.seq_len)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        self.mesh = make_mesh(cfg.mesh, self.devices)
        dcn = dcn_degrees(cfg.mesh, degrees)
        log.info("Mesh: %s", ", ".join(f"{a}={n}" + (f" ({dcn[a]} across hosts)" if dcn[a] > 1 else "")
                                        for a, n in degrees.items()))
        self.schedule = make_schedule(cfg.optim, t.steps)
        self.tx = make_optimizer(cfg.optim, t.steps)
        self.batch_sharding = batch_sharding(self.mesh)
        # Parameter shardings come from the raw logical names (outside the rules
        # context, which would already rename them); activations use the context.
        self.spec = state_spec(self.model_cfg, self.tx, self.mesh)
        self.allocator = current_allocator()
        if self.devices[0].platform == "cpu":
            if advice := cpu_allocator_advice(self.allocator):
                log.warning(advice)
            else:
                log.info("Host memory allocator: %s", self.allocator)
        self.main = jax.process_index() == 0
        if t.keep_last < 2:
            log.warning("train.keep_last=%d: if the newest checkpoint is found damaged when the run "
                        "resumes, there is no older one to fall back to (keep_last=2 leaves one).",
                        t.keep_last)

    @contextlib.contextmanager
    def context(self):
        """The mesh and the logical-axis rules that jitting and running the steps need."""
        with jax.set_mesh(self.mesh), nn.logical_axis_rules(LOGICAL_RULES):
            yield

    def globalise(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's rows (its loader shards' rows) -> global arrays, batch sharded over data x fsdp."""
        return {k: jax.make_array_from_process_local_data(self.batch_sharding, v) for k, v in batch.items()}

    def _data_iter(self):
        t = self.cfg.train
        subsets = load_mixture(self.cfg.data, self.model_cfg.padded_vocab)
        log.info("Training mixture:\n%s", mixture_table(subsets))
        warn_if_smaller_than_a_step(subsets, t)
        self.tokenizer = subsets[0].manifest["tokenizer"]  # load_mixture: the same for every subset
        if self.main:
            rundir.keep_tokenizer(self.workdir, self.tokenizer)
        ds = train_dataset(subsets, t.seq_len, t.global_batch, t.seed, jax.process_index(),
                           jax.process_count(), self.cfg.data.packing, self.cfg.data.loader_shards)
        return iter(ds)

    # ---- where the run starts -------------------------------------------------------------

    def _start(self, manager, data_iter, events):
        """(state, step, meta): the newest checkpoint of this run that verifies, else
        train.init_from, else fresh (parameters from train.init_params_from if set)."""
        skipped = []

        def move_away(step, error):
            skipped.append(step)
            self._move_damaged(manager, step, error, events)

        found = checkpoint.restore_newest(manager, self.spec.abstract, data_iter, move_away)
        if found is not None:
            step, state, meta = found
            log.info("Resuming from %s step %d%s", manager.directory, step,
                     f" (skipped the damaged checkpoints of steps {skipped})" if skipped else "")
            events.write("resume", step=step, skipped=skipped)
            return state, step, meta
        self._refuse_lost_history(skipped)
        if self.cfg.train.init_from:
            state, step = self._init_from(data_iter)
            events.write("start", step=step, init_from=self.cfg.train.init_from)
            return state, step, {}
        state = init_state(self.model_cfg, self.tx, self.spec, self.cfg.train.seed)
        if self.cfg.train.init_params_from:
            state["params"] = imported_params(self.cfg.train.init_params_from, self.model_cfg, self.spec)
        events.write("start", step=0)
        return state, 0, {}

    def _move_damaged(self, manager, step: int, error: Exception, events):
        source = os.path.join(str(manager.directory), str(step))
        target = os.path.join(self.workdir, rundir.DAMAGED, f"{step}-{int(time.time())}")
        log.warning("Skipping the checkpoint of step %d: %s Moved to %s.", step, error, target)
        if self.main:
            events.write("checkpoint_skipped", step=step, reason=str(error), moved_to=target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(source, target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"llmjp_jax moved damaged checkpoint {step}")
        manager.reload()

    def _refuse_lost_history(self, skipped: list[int]):
        """Starting from step 0 in a workdir that had checkpoints would overwrite its history."""
        reason = broadcast_json(self._history(skipped) if self.main else None)
        if reason:
            raise NoUsableCheckpointError(
                f"{self.workdir} has no usable checkpoint in {rundir.checkpoints_dir(self.workdir)}, "
                f"but {reason}. Starting again from step 0 would overwrite that run's metrics. To "
                f"resume, put its checkpoints back (or start from one elsewhere with "
                f"--config.train.init_from=RUN_DIR:STEP); to start over, use a new --workdir.")

    def _history(self, skipped: list[int]) -> str | None:
        if skipped:
            return f"the checkpoints of steps {skipped} failed verification (moved to {rundir.DAMAGED}/)"
        events = rundir.EventLog(self.workdir, enabled=False).rows()
        committed = [e["step"] for e in events if e.get("event") == "committed" and e.get("step")]
        if committed:
            return f"{rundir.EVENTS} records checkpoints saved up to step {max(committed)}"
        rows = rundir.read_rows(os.path.join(self.workdir, rundir.METRICS))
        last = max((r["step"] for r in rows), default=0)
        if last >= self.cfg.train.checkpoint_every:
            return (f"{rundir.METRICS} has rows up to step {last}, past the first checkpoint "
                    f"(train.checkpoint_every={self.cfg.train.checkpoint_every})")
        return None

    def _init_from(self, data_iter):
        directory, _, step = self.cfg.train.init_from.partition(":")
        source = checkpoint.open_read_only(rundir.checkpoints_dir(directory))
        step = int(step) if step else source.latest_step()
        if step is None:
            raise FileNotFoundError(f"train.init_from={self.cfg.train.init_from}: no checkpoint there.")
        log.info("Starting from %s step %d (%s)", directory, step,
                 "state and data position" if checkpoint.has_data_state(source, step)
                 else "state; no data position saved there: data from the start")
        try:
            state, _ = checkpoint.restore(source, step, self.spec.abstract, data_iter, data_optional=True)
            return state, step
        finally:
            source.close()

    # ---- compiled pieces -------------------------------------------------------------------

    def compile_step(self):
        """The train step compiled ahead of time for this config's state and batch shapes."""
        t, spec = self.cfg.train, self.spec
        step = make_train_step(spec.graphdef, self.tx, self.schedule, t.microbatches, t.z_loss,
                               self.pipeline, t.loss_chunk, t.spike, math.log(self.model_cfg.padded_vocab))
        row = jax.ShapeDtypeStruct((t.global_batch, t.seq_len + 1), np.int32, sharding=self.batch_sharding)
        batch = dict.fromkeys(BATCH_KEYS[self.cfg.data.packing], row)
        batch["stop"] = jax.ShapeDtypeStruct((t.global_batch,), np.int32, sharding=self.batch_sharding)
        start = time.perf_counter()
        jitted = jax.jit(step, out_shardings=(spec.shardings, None), donate_argnums=0)
        compiled = jitted.lower(spec.abstract, batch).compile()
        log.info("Train step compiled in %.1f s", time.perf_counter() - start)
        return compiled

    def _skip_fn(self):
        def skip(state, stop):
            return skip_step(state), stop.max()

        return jax.jit(skip, out_shardings=(self.spec.shardings, None), donate_argnums=0)

    # ---- the run ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self):
        """Process 0 holds the workdir lock for the run; every process learns whether it got it."""
        lock, error = None, None
        if self.main:
            lock = rundir.WorkdirLock(self.workdir)
            try:
                lock.acquire()
            except rundir.WorkdirBusyError as e:
                error = str(e)
        error = broadcast_json(error)
        if error:
            raise rundir.WorkdirBusyError(error)
        try:
            yield lock
        finally:
            if lock is not None:
                lock.release()

    def train(self) -> dict:
        # For MFU; on CPU it times a matmul, so only a run that trains pays for it (and outside
        # any mesh context).
        self.peak_flops = peak_flops(self.devices, self.model_cfg.compute_dtype)
        with named_disk_full(self.workdir), self._locked() as lock, self.context():
            return self._train(self.cfg.train, lock)

    def _train(self, t, lock) -> dict:
        # The data (train and held-out) is checked before anything is restored or compiled: a bad
        # data.* setting stops the run in seconds, before orbax starts its background threads.
        data_iter = self._data_iter()
        evaluate = make_evaluator(self)
        events = rundir.EventLog(self.workdir, enabled=self.main)
        keep = checkpoint.KeepSteps()
        manager = checkpoint.make_manager(rundir.checkpoints_dir(self.workdir), t, keep)
        # Signals are caught from here on (or from earlier, by the caller's StopSignals): one that
        # comes during restore or compilation stops the run after its first step, which is saved.
        signals = contextlib.nullcontext(self.signals) if self.signals else StopSignals()
        with signals as signals, _finishing(manager, events), MemoryAdvice(t) as memory:
            state, start, meta = self._start(manager, data_iter, events)
            tracker = SpikeTracker(t.spike.window, t.spike.rollback_after)
            tracker.load(meta)
            plan = SkipPlan(parse_ranges(t.get("skip_steps")), list(tracker.skipped))
            step_fn = memory.compiled = self.compile_step()
            writer = MetricsWriter(self.workdir, start, t.steps, enabled=self.main)
            config_json = json.loads(self.cfg.to_json())
            with contextlib.closing(writer), Monitor(t.hang_timeout_s, lock) as monitor:
                driver = Driver(self, step_fn, self._skip_fn(), evaluate, data_iter, manager,
                                keep, writer, events, signals, monitor, config_json, tracker, plan)
                return driver.run_steps(state, start)


@contextlib.contextmanager
def _finishing(manager, events):
    """Waits for the checkpoint manager's background saves, records the last committed step,
    closes it: on every way out of the run."""
    try:
        yield
    finally:
        manager.wait_until_finished()
        if manager.latest_step() is not None:
            events.write("committed", step=manager.latest_step())
        manager.close()


def warn_if_smaller_than_a_step(subsets, t):
    """A corpus smaller than one step's batch trains, but every step repeats it: say so."""
    tokens = sum(s.tokens * s.repeats for s in subsets)
    per_step = t.global_batch * (t.seq_len + 1)
    if tokens < per_step:
        log.warning("The training data holds %d tokens (x repeats), less than one step's batch of "
                    "train.global_batch x (train.seq_len + 1) = %d: every step sees it %.1f times. "
                    "Add data, or lower train.global_batch / train.seq_len.",
                    tokens, per_step, per_step / max(tokens, 1))


def imported_params(folder: str, model_cfg: LlamaConfig, spec) -> dict:
    """Parameters of a Hugging Face Llama folder, placed with this run's shardings.

    Continual pretraining (e.g. from a released Llama): the optimizer starts fresh.
    """
    params, hf_cfg = load_hf(folder)
    for name in model_cfg.architecture_differences(hf_cfg):
        raise ConfigError(f"train.init_params_from={folder}: the model there has {name}="
                          f"{getattr(hf_cfg, name)}, this config has {getattr(model_cfg, name)}; set the "
                          f"model.* settings to match.")
    log.info("Initialising parameters from %s (fresh optimizer state)", folder)
    return jax.device_put(params, spec.shardings["params"])


def train(cfg, workdir: str, devices=None, signals: StopSignals | None = None) -> dict:
    """Trains (or resumes) the run in `workdir`; returns the last logged metrics row. A signal
    stops it with `Preempted` after saving (`signals`: one already catching them)."""
    return Run(cfg, workdir, devices, signals).train()
