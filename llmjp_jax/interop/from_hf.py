"""A Hugging Face Llama folder -> a run directory with a step-0 checkpoint (llmjp-convert from-hf).

The run holds what `--config.train.init_from=RUN` restores: the train state (step 0,
the folder's parameters, a fresh optimizer state) and the config, plus the folder's
tokenizer.model (used by `to-hf`). It has no data position, so a run started from it
reads its data from the beginning. `run_config` and `write_step0_run` are shared with
megatron-to-run (interop/megatron_ckpt.py).
"""

import json
import math
import os
import shutil

import jax
from ml_collections import ConfigDict

from llmjp_jax.config import default_config
from llmjp_jax.errors import ConfigError, ExistingFileError
from llmjp_jax.model import LlamaConfig
from llmjp_jax.model.hf import load_hf, read_hf_config
from llmjp_jax.optim import make_optimizer
from llmjp_jax.parallel import make_mesh
from llmjp_jax.train import checkpoint, rundir
from llmjp_jax.train.state import fresh_state, state_spec


def run_config(model: LlamaConfig, source: str, seq_len: int | None = None, base: ConfigDict | None = None,
               init_std: float | None = None, max_positions: int | None = None) -> ConfigDict:
    """`base` (default: the defaults) describing `model`, read from `source` (named in errors);
    train.seq_len from `seq_len`, else base's, else `max_positions`."""
    cfg = ConfigDict(default_config().to_dict() if base is None else base.to_dict())
    if base is None:
        cfg.model.update(vocab_size=model.vocab_size, vocab_multiple=1, num_layers=model.num_layers,
                         hidden=model.hidden, ffn=model.ffn, num_heads=model.num_heads,
                         num_kv_heads=model.num_kv_heads, head_dim=model.dh, rope_theta=model.rope_theta,
                         norm_eps=float(model.norm_eps), tie_embeddings=model.tie_embeddings,
                         init_std=float(init_std or cfg.model.init_std))
        seq_len = seq_len or max_positions
    else:
        ours = LlamaConfig.from_dict(cfg.model)
        wrong = [f"{name}={getattr(model, name)} (config: {getattr(ours, name)})"
                 for name in ours.architecture_differences(model)]
        if wrong:
            raise ConfigError(f"{source} differs from --config in {', '.join(wrong)}; set the "
                             f"model.* settings to match.")
    cfg.train.seq_len = int(seq_len or cfg.train.seq_len)
    cfg.train.init_from = cfg.train.init_params_from = None
    return cfg


def initial_state(params: dict, model_cfg: LlamaConfig, cfg: ConfigDict) -> dict:
    """Step 0 with `params` and a fresh optimizer state, spread (FSDP) over the local devices."""
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    devices = jax.local_devices()
    n = math.gcd(model_cfg.hidden, len(devices))
    mesh = make_mesh({"data": 1, "pipeline": 1, "fsdp": n, "tensor": 1}, devices[:n])
    spec = state_spec(model_cfg, tx, mesh)
    placed = jax.device_put(params, spec.shardings["params"])

    return jax.jit(lambda p: fresh_state(p, tx), out_shardings=spec.shardings)(placed)


def _refuse_existing(workdir: str):
    directory = rundir.checkpoints_dir(workdir)
    if os.path.isdir(directory) and os.listdir(directory):
        raise ExistingFileError(f"{directory} already holds checkpoints; choose a new --workdir.")


def refuse_existing(workdir: str):
    """The run directory must not hold checkpoints already (checked before anything is read)."""
    directory = rundir.checkpoints_dir(workdir)
    if os.path.isdir(directory) and os.listdir(directory):
        raise ExistingFileError(f"{directory} already holds checkpoints; choose a new --workdir.")


def write_step0_run(params: dict, cfg: ConfigDict, workdir: str, tokenizer: str | None = None):
    """Saves step 0 (`params`, a fresh optimizer state) and `cfg` in `workdir`, plus `tokenizer`
    (a tokenizer.model) when it exists."""
    state = initial_state(params, LlamaConfig.from_dict(cfg.model), cfg)
    del params
    manager = checkpoint.make_manager(rundir.checkpoints_dir(workdir), cfg.train)
    try:
        checkpoint.save(manager, 0, state, None, json.loads(cfg.to_json()), force=True)
        manager.wait_until_finished()
    finally:
        manager.close()
    if tokenizer and os.path.isfile(tokenizer):
        shutil.copyfile(tokenizer, os.path.join(workdir, rundir.TOKENIZER))


def import_hf(hf_dir: str, workdir: str, seq_len: int | None = None, base: ConfigDict | None = None
              ) -> ConfigDict:
    """Writes the run directory `workdir` from `hf_dir`; returns the run's config."""
    refuse_existing(workdir)
    hf = read_hf_config(hf_dir)
    params, model = load_hf(hf_dir)
    cfg = run_config(model, "The Hugging Face model", seq_len, base, hf.get("initializer_range"),
                     hf.get("max_position_embeddings"))
    write_step0_run(params, cfg, workdir, os.path.join(hf_dir, rundir.TOKENIZER))
    return cfg
