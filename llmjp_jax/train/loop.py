"""The training loop: build everything from the config, resume if possible, train, log, save."""

import contextlib
import json
import os
import time

import flax.linen as nn
import jax
import numpy as np

from llmjp_jax.config import validate
from llmjp_jax.data.mixture import load_mixture, mixture_table
from llmjp_jax.data.pipeline import eval_batches, train_dataset
from llmjp_jax.log import get_logger
from llmjp_jax.model import LlamaConfig
from llmjp_jax.optim import make_optimizer, make_schedule
from llmjp_jax.parallel import LOGICAL_RULES, batch_sharding, make_mesh
from llmjp_jax.parallel.mesh import dcn_degrees
from llmjp_jax.parallel.pipeline import Pipeline, schedule_from_config
from llmjp_jax.train import checkpoint
from llmjp_jax.train.allocator import cpu_allocator_advice, current_allocator
from llmjp_jax.train.flops import peak_flops
from llmjp_jax.train.metrics import MetricsWriter
from llmjp_jax.train.state import init_state, state_spec
from llmjp_jax.train.step import make_eval_step, make_train_step

log = get_logger()


class Run:
    """Everything one training run needs, built once from the config."""

    def __init__(self, cfg, workdir: str, devices=None):
        self.cfg, self.workdir = cfg, workdir
        self.devices = list(jax.devices() if devices is None else devices)
        degrees = validate(cfg, len(self.devices), jax.process_count())
        self.pipeline = None
        if degrees["pipeline"] > 1:
            schedule = schedule_from_config(cfg.mesh, degrees["pipeline"])
            log.info("Pipeline: %d stages x %d repeats, %d microbatches, bubble %.1f%% of stage time",
                     schedule.stages, schedule.repeats, schedule.microbatches,
                     100 * schedule.bubble_fraction)
            self.pipeline = Pipeline(schedule)
        self.model_cfg = LlamaConfig.from_dict(cfg.model)
        self.mesh = make_mesh(cfg.mesh, self.devices)
        dcn = dcn_degrees(cfg.mesh, degrees)
        log.info("Mesh: %s", ", ".join(f"{a}={n}" + (f" ({dcn[a]} across hosts)" if dcn[a] > 1 else "")
                                        for a, n in degrees.items()))
        t = cfg.train
        self.schedule = make_schedule(cfg.optim, t.steps)
        self.tx = make_optimizer(cfg.optim, t.steps)
        self.batch_sharding = batch_sharding(self.mesh)
        # Parameter shardings come from the raw logical names (outside the rules
        # context, which would already rename them); activations use the context.
        self.spec = state_spec(self.model_cfg, self.tx, self.mesh)
        self.peak_flops = peak_flops(self.devices)  # measured on CPU: outside any mesh context
        self.allocator = current_allocator()
        if self.devices[0].platform == "cpu":
            if advice := cpu_allocator_advice(self.allocator):
                log.warning(advice)
            else:
                log.info("Host memory allocator: %s", self.allocator)

    @contextlib.contextmanager
    def context(self):
        """The mesh and the logical-axis rules that jitting and running the steps need."""
        with jax.set_mesh(self.mesh), nn.logical_axis_rules(LOGICAL_RULES):
            yield

    def _global(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's rows (its loader shards' rows) -> global arrays, batch sharded over data x fsdp."""
        return {k: jax.make_array_from_process_local_data(self.batch_sharding, v) for k, v in batch.items()}

    def _data_iter(self):
        t = self.cfg.train
        subsets = load_mixture(self.cfg.data, self.model_cfg.padded_vocab)
        log.info("Training mixture:\n%s", mixture_table(subsets))
        ds = train_dataset(subsets, t.seq_len, t.global_batch, t.seed, jax.process_index(),
                           jax.process_count(), self.cfg.data.packing, self.cfg.data.loader_shards)
        return iter(ds)

    def _start(self, spec, manager, data_iter):
        """Resumes from this run's latest checkpoint, else from train.init_from, else initialises
        (with parameters from a Hugging Face folder if train.init_params_from names one)."""
        latest = manager.latest_step()
        if latest is not None:
            log.info("Resuming from %s step %d", manager.directory, latest)
            return checkpoint.restore(manager, latest, spec.abstract, data_iter), latest
        if self.cfg.train.init_from:
            directory, _, step = self.cfg.train.init_from.partition(":")
            source = checkpoint.open_read_only(os.path.join(directory, "checkpoints"))
            step = int(step) if step else source.latest_step()
            if step is None:
                raise FileNotFoundError(f"train.init_from={self.cfg.train.init_from}: no checkpoint there.")
            log.info("Starting from %s step %d (%s)", directory, step,
                     "state and data position" if checkpoint.has_data_state(source, step)
                     else "state; no data position saved there: data from the start")
            try:
                return checkpoint.restore(source, step, spec.abstract, data_iter, data_optional=True), step
            finally:
                source.close()
        state = init_state(self.model_cfg, self.tx, spec, self.cfg.train.seed)
        if self.cfg.train.init_params_from:
            state["params"] = imported_params(self.cfg.train.init_params_from, self.model_cfg, spec)
        return state, 0

    def compile_step(self):
        """The train step compiled ahead of time for this config's state and batch shapes."""
        t, spec = self.cfg.train, self.spec
        step = make_train_step(spec.graphdef, self.tx, self.schedule, t.microbatches, t.z_loss,
                               self.pipeline, t.loss_chunk)
        row = jax.ShapeDtypeStruct((t.global_batch, t.seq_len + 1), np.int32, sharding=self.batch_sharding)
        keys = ("tokens",) + (("segment_ids", "positions") if self.cfg.data.packing == "first_fit" else ())
        batch = {k: row for k in keys}
        start = time.perf_counter()
        jitted = jax.jit(step, out_shardings=(spec.shardings, None), donate_argnums=0)
        compiled = jitted.lower(spec.abstract, batch).compile()
        log.info("Train step compiled in %.1f s", time.perf_counter() - start)
        return compiled

    def _evaluator(self, spec):
        t, eval_dir = self.cfg.train, self.cfg.data.eval_dir
        if not eval_dir or not t.eval_every:
            return None
        batches = [self._global(b) for b in eval_batches(
            eval_dir, t.seq_len, t.global_batch, t.eval_batches, jax.process_index(),
            jax.process_count(), self.model_cfg.padded_vocab, self.cfg.data.packing,
            self.cfg.data.loader_shards)]
        evaluate = jax.jit(make_eval_step(spec.graphdef, self.pipeline, t.loss_chunk))

        def run(params) -> float:
            sums = [evaluate(params, b) for b in batches]
            return float(sum(s for s, _ in sums) / sum(c for _, c in sums))

        return run

    def train(self) -> dict:
        t = self.cfg.train
        spec = self.spec
        with self.context():
            data_iter = self._data_iter()
            manager = checkpoint.make_manager(os.path.join(self.workdir, "checkpoints"), t)
            try:
                state, start = self._start(spec, manager, data_iter)
                step_fn = None
                try:
                    step_fn, evaluate = self.compile_step(), self._evaluator(spec)
                    writer = MetricsWriter(self.workdir, start, t.steps, enabled=jax.process_index() == 0)
                    config_json = json.loads(self.cfg.to_json())
                    try:
                        return self._loop(state, start, step_fn, evaluate, data_iter, manager, writer,
                                          config_json)
                    finally:
                        writer.close()
                except Exception as e:
                    if not _out_of_memory(e):
                        raise
                    raise MemoryError(_memory_advice(step_fn)) from e
            finally:
                manager.wait_until_finished()
                manager.close()

    def _loop(self, state, start, step_fn, evaluate, data_iter, manager, writer, config_json):
        t = self.cfg.train
        tokens_per_step = t.global_batch * t.seq_len
        flops_per_step = self.model_cfg.flops_per_token(t.seq_len) * tokens_per_step
        peak = self.peak_flops
        last, timer, timed_steps, skipped = {}, time.perf_counter(), 0, []
        watch = _SkipWatch(t.max_skipped_steps)
        for step in range(start, t.steps):
            state, metrics = step_fn(state, self._global(next(data_iter)))
            done, timed_steps = step + 1, timed_steps + 1
            skipped.append(metrics.pop("skipped"))  # read at the next log step: no sync per step
            row = {}
            if done % t.log_every == 0 or done == t.steps:
                row = {k: float(v) for k, v in jax.device_get(metrics).items()}
                step_time = (time.perf_counter() - timer) / timed_steps
                row.update(step_time=step_time, tokens_per_sec=tokens_per_step / step_time,
                           mfu=flops_per_step / step_time / peak if peak else 0.0,
                           skipped_steps=watch.check(jax.device_get(skipped), done))
                skipped = []
            if evaluate and (done % t.eval_every == 0 or done == t.steps):
                row["eval_loss"] = evaluate(state["params"])
            if row:
                last = {"step": done, **row}
                writer.write(last)
            checkpoint.save(manager, done, state, data_iter, config_json, force=done == t.steps)
            if "step_time" in row or "eval_loss" in row:
                timer, timed_steps = time.perf_counter(), 0
        return last


def _out_of_memory(error: Exception) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text


def _memory_advice(compiled) -> str:
    """What to change when the step does not fit, with XLA's plan when the step compiled."""
    plan = ""
    if compiled is not None and hasattr(compiled, "memory_analysis"):
        m = compiled.memory_analysis()
        plan = (f" XLA planned {m.argument_size_in_bytes / 2**30:.2f} GiB of arguments (parameters, "
                f"optimizer state, batch) and {m.temp_size_in_bytes / 2**30:.2f} GiB of temporaries "
                f"per device.")
    return ("The train step does not fit in device memory." + plan + " To need less per device: "
            "raise train.microbatches (gradient accumulation), use model.remat='full', set "
            "train.loss_chunk (e.g. 1024), or spread the model over more devices with mesh.fsdp, "
            "mesh.tensor or mesh.pipeline. `python benchmarks/aot.py --config=... --devices=N` shows "
            "the plan for a layout without running it.")


class _SkipWatch:
    """Counts steps skipped for a non-finite loss or gradients; stops the run after
    train.max_skipped_steps in a row (it would otherwise spin without learning)."""

    def __init__(self, limit: int):
        self.limit, self.in_a_row = limit, 0

    def check(self, flags, done: int) -> int:
        count = int(sum(flags))
        for flag in flags:
            self.in_a_row = self.in_a_row + 1 if flag else 0
        if count:
            log.warning("%d of the %d steps up to step %d had a non-finite loss or gradients; "
                        "their updates were skipped.", count, len(flags), done)
        if self.in_a_row >= self.limit:
            raise FloatingPointError(
                f"Steps {done - self.in_a_row + 1}..{done} all had a non-finite loss or gradients "
                f"(train.max_skipped_steps={self.limit}). Their updates were skipped, so the saved "
                f"checkpoints are unharmed: resume with a lower optim.peak_lr, a longer "
                f"optim.warmup_steps or model.dtype='float32', or check the data these steps read.")
        return count


def imported_params(folder: str, model_cfg: LlamaConfig, spec) -> dict:
    """Parameters of a Hugging Face Llama folder, placed with this run's shardings.

    Continual pretraining (e.g. from a released Llama): the optimizer starts fresh.
    """
    from llmjp_jax.interop.hf import load_hf

    params, hf_cfg = load_hf(folder)
    fields = ("num_layers", "hidden", "ffn", "num_heads", "num_kv_heads", "dh", "padded_vocab",
              "tie_embeddings")
    for name in fields:
        ours, theirs = getattr(model_cfg, name), getattr(hf_cfg, name)
        if ours != theirs:
            raise ValueError(f"train.init_params_from={folder}: the model there has {name}={theirs}, "
                             f"this config has {ours}; set the model.* settings to match.")
    log.info("Initialising parameters from %s (fresh optimizer state)", folder)
    return jax.device_put(params, spec.shardings["params"])


def train(cfg, workdir: str, devices=None) -> dict:
    """Trains (or resumes) the run in `workdir`; returns the last logged metrics row."""
    return Run(cfg, workdir, devices).train()
