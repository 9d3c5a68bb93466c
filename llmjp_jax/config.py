"""The run configuration: defaults shared by every preset, and validation.

A preset (configs/*.py) starts from `default_config()` and changes what it
needs. `validate` runs once, before anything is allocated, and its errors name
the setting to change.
"""

import dataclasses

from ml_collections import ConfigDict, config_dict

from llmjp_jax import optim
from llmjp_jax.data import settings as data_settings
from llmjp_jax.errors import ConfigError, UserError, require
from llmjp_jax.model import config as model_config
from llmjp_jax.model.config import DERIVED_FIELDS, LlamaConfig
from llmjp_jax.parallel import mesh, pipeline

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


def validate(cfg: ConfigDict, num_devices: int, num_processes: int = 1) -> dict[str, int]:
    """Raises ConfigError naming the setting to change; returns the mesh degrees.

    Each section's checks live beside the code they protect (model/config.py, parallel/mesh.py,
    parallel/pipeline.py, optim.py, data/settings.py); the train.* ones, which only this file
    defines, are below."""
    mc = model_config.check(cfg.model)
    degrees = mesh.resolve_degrees(cfg.mesh, num_devices)
    mesh.dcn_degrees(cfg.mesh, degrees)
    mesh.check_model_split(mc, degrees)
    micro = _check_batch(cfg.train, degrees, num_processes)
    if degrees["pipeline"] > 1 or cfg.mesh.get("pipeline_repeats", 1) > 1:
        pipeline.check_config(cfg.mesh, degrees, mc.num_layers, micro)
    _check_train(cfg.train)
    data_settings.check(cfg.data, cfg.train.global_batch, num_processes)
    optim.check(cfg.optim, cfg.train.steps)
    return degrees


def _check_batch(t, degrees: dict[str, int], num_processes: int) -> int:
    """The sequences per microbatch, after checking they split over the devices and processes."""
    shards = degrees["data"] * degrees["fsdp"]
    require(t.global_batch % t.microbatches == 0,
            f"train.microbatches={t.microbatches} does not divide train.global_batch={t.global_batch}.")
    micro = t.global_batch // t.microbatches
    require(micro % shards == 0,
            f"A microbatch of {micro} sequences (train.global_batch / train.microbatches) cannot be "
            f"split over mesh.data x mesh.fsdp = {shards} devices; change train.global_batch, "
            "train.microbatches, mesh.data or mesh.fsdp.")
    require(t.global_batch % num_processes == 0,
            f"train.global_batch={t.global_batch} is not divisible by the {num_processes} processes.")
    return micro


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


def _check_train(t):
    require(t.loss_chunk >= 0 and (t.loss_chunk == 0 or t.seq_len % t.loss_chunk == 0),
            f"train.loss_chunk={t.loss_chunk} must divide train.seq_len={t.seq_len} (0: no chunks).")
    require(t.steps > 0 and t.log_every > 0 and t.checkpoint_every > 0,
            "train.steps, train.log_every and train.checkpoint_every must be positive.")
    try:
        parse_ranges(t.get("skip_steps"))
    except UserError as e:
        raise ConfigError(str(e)) from e
    require(t.get("hang_timeout_s", 0) >= 0, "train.hang_timeout_s must be >= 0 (0: never time out).")
    sp = t.get("spike")
    if not sp:
        return
    require(sp.window >= 1 and sp.min_history >= 1,
            "train.spike.window and train.spike.min_history must be >= 1.")
    require(sp.sigmas > 0 and sp.min_rise >= 0 and sp.uniform_margin >= 0,
            "train.spike.sigmas must be positive, train.spike.min_rise and uniform_margin >= 0.")
    require(sp.rollback_after >= 0 and sp.max_rollbacks >= 0 and sp.skip_before >= 0,
            "train.spike.rollback_after, max_rollbacks and skip_before must be >= 0 "
            "(rollback_after=0: never roll back).")
