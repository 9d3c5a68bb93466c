"""The run configuration: defaults shared by every preset, and validation.

A preset (configs/*.py) starts from `default_config()` and changes what it
needs. `validate` runs once, before anything is allocated, and its errors name
the setting to change.
"""

import dataclasses
import math

from ml_collections import ConfigDict, config_dict

from llmjp_jax.data import settings as data_settings
from llmjp_jax.errors import UserError
from llmjp_jax.model.config import ATTENTION, DERIVED_FIELDS, DTYPES, REMAT_POLICIES, LlamaConfig
from llmjp_jax.optim import DECAY_SHAPES, SCHEDULES, wsd_decay_start
from llmjp_jax.parallel.mesh import dcn_degrees, resolve_degrees
from llmjp_jax.parallel.pipeline import schedule_from_config

# The shape of the default model (a tiny one); every other model.* default is LlamaConfig's own.
TINY_MODEL = dict(vocab_size=32_000, num_layers=2, hidden=128, ffn=384, num_heads=4, num_kv_heads=4)


def model_defaults() -> dict:
    """config.model: TINY_MODEL plus LlamaConfig's defaults (the one place they are written)."""
    fields = dataclasses.fields(LlamaConfig)
    defaults = {f.name: f.default for f in fields if f.name not in DERIVED_FIELDS
                and f.default is not dataclasses.MISSING}
    return {**TINY_MODEL, **defaults}


def default_config() -> ConfigDict:
    c = ConfigDict()
    c.model = model_defaults()
    c.optim = dict(
        peak_lr=3e-4, min_lr_ratio=0.1, warmup_steps=100, schedule="cosine",
        decay_steps=0, decay_shape="minus_sqrt", decay_start=config_dict.placeholder(int),
        b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1, clip_norm=1.0)
    c.train = dict(
        steps=1000, global_batch=8, seq_len=256, microbatches=1, z_loss=0.0, seed=0,
        log_every=10, eval_every=100, eval_batches=4, checkpoint_every=100,
        keep_last=3, keep_every=0, max_skipped_steps=20, loss_chunk=0,
        init_from=config_dict.placeholder(str),
        init_params_from=config_dict.placeholder(str),
        skip_steps=config_dict.placeholder(str), hang_timeout_s=900.0,
        # train.eval_tasks: {name: task.jsonl}, multiple-choice tasks scored at every evaluation
        # (mc_acc/<name>; llmjp_jax/multiple_choice.py).
        eval_tasks={},
        # Loss-spike guard (llmjp_jax/train/guard.py): a loss above the moving mean by `sigmas`
        # moving standard deviations and by `min_rise` x the mean (after `min_history` steps),
        # or above ln(vocabulary rows) + `uniform_margin`, skips its update; `rollback_after`
        # spikes within `window` steps roll back to the last checkpoint before them and skip
        # their data (from `skip_before` steps before the first); after `max_rollbacks` it stops.
        spike=dict(enabled=True, window=128, min_history=128, sigmas=6.0, min_rise=0.05,
                   uniform_margin=1.0, rollback_after=3, max_rollbacks=3, skip_before=0))
    # data.mixture: {name: {"dir": ..., "repeats": 1.0, "level": "L1"}}; empty means
    # train_dir alone. Presets define mixtures; repeats can be overridden per subset.
    # data.packing: "concat" (Megatron-style concatenate and split, as LLM-jp trains) or
    # "first_fit" (whole documents per row, padded, with per-document attention masks).
    # data.loader_shards: the data is read as this many shards, each packed on its own; every
    # process reads a block of them, so the batches do not depend on the number of processes
    # (which must divide it). It must divide train.global_batch, and must stay the same on resume.
    # data.verify_shards: what is checked of each shard before training, besides its size and
    # record count: "sha256" hashes every shard, "auto" does so for up to 2 GiB of shards.
    # data.eval: {name: dir}, named held-out sets (eval_loss/<name>), replacing data.eval_dir.
    c.data = dict(train_dir="runs/data/train", eval_dir=config_dict.placeholder(str), eval={}, mixture={},
                  packing="concat", loader_shards=data_settings.LOADER_SHARDS, verify_shards="auto")
    # mesh.pipeline > 1 splits the layers into that many stages (llmjp_jax/parallel/pipeline.py);
    # pipeline_repeats > 1 makes the schedule circular; pipeline_microbatches (0: = stages) is
    # how many pieces each step's batch is cut into for the pipeline.
    # mesh.dcn.<axis>: the part of that axis's degree that spans hosts / TPU slices (the slower
    # network); e.g. 4 nodes x 8 GPUs with mesh.data=4, mesh.fsdp=8: --config.mesh.dcn.data=4.
    c.mesh = dict(data=1, pipeline=1, fsdp=-1, tensor=1, pipeline_repeats=1, pipeline_microbatches=0,
                  dcn=dict(data=1, pipeline=1, fsdp=1, tensor=1))
    return c


class ConfigError(UserError):
    """A setting that cannot work; the message names it."""


def _check(ok: bool, message: str):
    if not ok:
        raise ConfigError(message)


def validate(cfg: ConfigDict, num_devices: int, num_processes: int = 1) -> dict[str, int]:
    """Raises ConfigError naming the setting to change; returns the mesh degrees."""
    m, o, t = cfg.model, cfg.optim, cfg.train
    try:
        mc = LlamaConfig.from_dict(m)
    except TypeError as e:
        raise ConfigError(f"config.model: {e}") from e
    _check(m.dtype in DTYPES, f"model.dtype={m.dtype!r}: choose one of {tuple(DTYPES)}.")
    _check(m.attention in ATTENTION, f"model.attention={m.attention!r}: choose one of {ATTENTION}.")
    _check(m.remat in REMAT_POLICIES, f"model.remat={m.remat!r}: choose one of {REMAT_POLICIES}.")
    _check(m.num_heads % m.num_kv_heads == 0,
           f"model.num_kv_heads={m.num_kv_heads} must divide model.num_heads={m.num_heads}.")
    _check(m.head_dim or m.hidden % m.num_heads == 0,
           f"model.num_heads={m.num_heads} does not divide model.hidden={m.hidden}; set model.head_dim.")
    _check(mc.dh % 2 == 0, f"head dimension {mc.dh} must be even for RoPE (model.head_dim).")
    try:
        degrees = resolve_degrees(cfg.mesh, num_devices)
        dcn_degrees(cfg.mesh, degrees)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    tp, shards = degrees["tensor"], degrees["data"] * degrees["fsdp"]
    for name, size in (("num_heads", m.num_heads), ("num_kv_heads", m.num_kv_heads), ("ffn", m.ffn)):
        _check(size % tp == 0, f"mesh.tensor={tp} does not divide model.{name}={size}.")
    _check(mc.padded_vocab % tp == 0,
           f"mesh.tensor={tp} does not divide the padded vocabulary {mc.padded_vocab}; "
           "raise model.vocab_multiple.")
    _check(m.hidden % degrees["fsdp"] == 0,
           f"mesh.fsdp={degrees['fsdp']} does not divide model.hidden={m.hidden}.")
    _check(t.global_batch % t.microbatches == 0,
           f"train.microbatches={t.microbatches} does not divide train.global_batch={t.global_batch}.")
    micro = t.global_batch // t.microbatches
    _check(micro % shards == 0,
           f"A microbatch of {micro} sequences (train.global_batch / train.microbatches) cannot be "
           f"split over mesh.data x mesh.fsdp = {shards} devices; change train.global_batch, "
           "train.microbatches, mesh.data or mesh.fsdp.")
    if degrees["pipeline"] > 1 or cfg.mesh.get("pipeline_repeats", 1) > 1:
        _check_pipeline(cfg, degrees, micro, shards)
    _check(t.global_batch % num_processes == 0,
           f"train.global_batch={t.global_batch} is not divisible by the {num_processes} processes.")
    _check(t.loss_chunk >= 0 and (t.loss_chunk == 0 or t.seq_len % t.loss_chunk == 0),
           f"train.loss_chunk={t.loss_chunk} must divide train.seq_len={t.seq_len} (0: no chunks).")
    _check(t.steps > 0 and t.log_every > 0 and t.checkpoint_every > 0,
           "train.steps, train.log_every and train.checkpoint_every must be positive.")
    _check_resilience(t)
    try:
        data_settings.check(cfg.data, t.global_batch, num_processes)
    except UserError as e:
        raise ConfigError(str(e)) from e
    _check(o.schedule in SCHEDULES, f"optim.schedule={o.schedule!r}: choose one of {SCHEDULES}.")
    _check(0 <= o.warmup_steps <= t.steps,
           f"optim.warmup_steps={o.warmup_steps} must lie within train.steps={t.steps}.")
    if o.schedule == "wsd":
        _check(o.decay_shape in DECAY_SHAPES,
               f"optim.decay_shape={o.decay_shape!r}: choose one of {DECAY_SHAPES}.")
        _check(o.decay_steps > 0, "optim.schedule='wsd' needs optim.decay_steps > 0.")
        start = wsd_decay_start(o, t.steps)
        _check(o.warmup_steps <= start,
               f"The WSD decay would start at step {start}, before warmup ends at "
               f"optim.warmup_steps={o.warmup_steps}; change optim.decay_steps or optim.decay_start.")
    _check(math.isfinite(o.peak_lr) and o.peak_lr > 0, f"optim.peak_lr={o.peak_lr} must be positive.")
    return degrees


def parse_ranges(text: str | None, setting: str = "train.skip_steps") -> list[tuple[int, int]]:
    """"100-200,350" -> [(100, 200), (350, 350)]: inclusive ranges of step numbers (train.skip_steps;
    the spike guard's SkipPlan takes them)."""
    ranges = []
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            a, b = int(first), int(last or first)
        except ValueError:
            raise UserError(f"{setting}={text!r}: expected ranges like '1000-1200,5000' "
                             "(inclusive step numbers).") from None
        if not 1 <= a <= b:
            raise UserError(f"{setting}={text!r}: range {part!r} must satisfy 1 <= first <= last.")
        ranges.append((a, b))
    return ranges


def _check_resilience(t):
    try:
        parse_ranges(t.get("skip_steps"))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    _check(t.get("hang_timeout_s", 0) >= 0, "train.hang_timeout_s must be >= 0 (0: never time out).")
    sp = t.get("spike")
    if not sp:
        return
    _check(sp.window >= 1 and sp.min_history >= 1,
           "train.spike.window and train.spike.min_history must be >= 1.")
    _check(sp.sigmas > 0 and sp.min_rise >= 0 and sp.uniform_margin >= 0,
           "train.spike.sigmas must be positive, train.spike.min_rise and uniform_margin >= 0.")
    _check(sp.rollback_after >= 0 and sp.max_rollbacks >= 0 and sp.skip_before >= 0,
           "train.spike.rollback_after, max_rollbacks and skip_before must be >= 0 "
           "(rollback_after=0: never roll back).")


def _check_pipeline(cfg, degrees, micro: int, shards: int):
    schedule = schedule_from_config(cfg.mesh, degrees["pipeline"])
    _check(schedule.repeats >= 1, f"mesh.pipeline_repeats={schedule.repeats} must be >= 1.")
    _check(schedule.stages > 1 or schedule.repeats == 1,
           f"mesh.pipeline_repeats={schedule.repeats} needs mesh.pipeline > 1.")
    try:
        schedule.check(cfg.model.num_layers, micro)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    piece = micro // schedule.microbatches
    _check(piece % shards == 0,
           f"A pipeline microbatch of {piece} sequences (train.global_batch / train.microbatches / "
           f"mesh.pipeline_microbatches) cannot be split over mesh.data x mesh.fsdp = {shards} devices.")
