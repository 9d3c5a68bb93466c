"""Export a training run's checkpoint as a Hugging Face folder (model, config, tokenizer)."""

import json
import os
import shutil

import jax
import orbax.checkpoint as ocp
from ml_collections import ConfigDict

from llmjp_jax.data.shards import MANIFEST
from llmjp_jax.interop.hf import save_hf
from llmjp_jax.model import LlamaConfig
from llmjp_jax.optim import make_optimizer
from llmjp_jax.parallel import make_mesh
from llmjp_jax.train import checkpoint
from llmjp_jax.train.state import state_spec


def read_run(workdir: str, step: int | None = None) -> tuple[dict, ConfigDict, int]:
    """The parameters (host numpy) and config saved in `workdir` at `step` (default: latest)."""
    manager = checkpoint.open_read_only(os.path.join(workdir, "checkpoints"))
    try:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{workdir}/checkpoints holds no complete checkpoint.")
        cfg = ConfigDict(manager.restore(step, args=ocp.args.Composite(
            config=ocp.args.JsonRestore()))["config"])
        model_cfg = LlamaConfig.from_dict(cfg.model)
        mesh_cfg = {"data": 1, "pipeline": 1, "fsdp": 1, "tensor": 1}
        mesh = make_mesh(mesh_cfg, jax.devices()[:1])
        spec = state_spec(model_cfg, make_optimizer(cfg.optim, cfg.train.steps), mesh)
        state = checkpoint.restore(manager, step, spec.abstract)
    finally:
        manager.close()
    return jax.device_get(state["params"]), cfg, step


def export_hf(workdir: str, out_dir: str, step: int | None = None) -> int:
    """Writes `out_dir` loadable by transformers' AutoModelForCausalLM; returns the step exported."""
    params, cfg, step = read_run(workdir, step)
    save_hf(params, LlamaConfig.from_dict(cfg.model), out_dir, max_positions=cfg.train.seq_len)
    tokenizer = run_tokenizer(cfg)
    if tokenizer:
        shutil.copyfile(tokenizer, os.path.join(out_dir, "tokenizer.model"))
    return step


def run_tokenizer(cfg: ConfigDict) -> str | None:
    """The SentencePiece model named by the training data's manifest, if it still exists."""
    directory = next(iter(cfg.data.mixture.values()))["dir"] if cfg.data.get("mixture") else \
        cfg.data.train_dir
    try:
        with open(os.path.join(directory, MANIFEST)) as f:
            path = json.load(f)["tokenizer"]["path"]
    except (OSError, KeyError):
        return None
    return path if os.path.isfile(path) else None
