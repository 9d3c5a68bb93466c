"""Export a training run's checkpoint as a Hugging Face folder (model, config, tokenizer).

The export streams: the safetensors shards are planned from the checkpoint's shapes,
and each shard is read (only the parameter slices it holds, never the optimizer
state), written, and dropped before the next, so host memory stays near one shard.
"""

import os
import shutil

import orbax.checkpoint as ocp
from ml_collections import ConfigDict

from llmjp_jax.errors import MissingFileError
from llmjp_jax.interop.checkpoint_params import ParamReader, restore_params
from llmjp_jax.interop.hf_tokenizer import save_hf_tokenizer, special_ids
from llmjp_jax.log import get_logger
from llmjp_jax.model import LlamaConfig, hf
from llmjp_jax.model.hf import TOKENIZER, HFTensor
from llmjp_jax.train import checkpoint, rundir

log = get_logger()



def _open(workdir: str, step: int | None):
    """The run's checkpoints and the step to read (default: the latest); a run with no checkpoint,
    or a --step it does not have, is a MissingFileError saying what there is."""
    if not os.path.isdir(workdir):
        raise MissingFileError(f"--workdir={workdir} does not exist (give the folder of a trained run).")
    manager = checkpoint.open_read_only(rundir.checkpoints_dir(workdir))
    steps = sorted(manager.all_steps())
    if not steps or (step is not None and step not in steps):
        manager.close()
        if not steps:
            raise MissingFileError(f"--workdir={workdir} holds no complete checkpoint (train it first: "
                                   "a run saves every train.checkpoint_every steps and when it ends).")
        raise MissingFileError(f"--step={step}: {workdir} has checkpoints at steps "
                               f"{', '.join(map(str, steps))}.")
    return manager, steps[-1] if step is None else step


def _config(manager: ocp.CheckpointManager, step: int) -> ConfigDict:
    return ConfigDict(manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))["config"])


def read_run(workdir: str, step: int | None = None) -> tuple[dict, ConfigDict, int]:
    """The parameters (host numpy) and config saved in `workdir` at `step` (default: latest)."""
    manager, step = _open(workdir, step)
    try:
        return restore_params(manager, step), _config(manager, step), step
    finally:
        manager.close()


def _read_shard(reader: ParamReader, group: list[HFTensor]) -> dict:
    """One shard's tensors, with one read per parameter (just the layers this shard holds)."""
    out = {}
    for path in dict.fromkeys(t.path for t in group):
        members = [t for t in group if t.path == path]
        layers = [t.layer for t in members if t.layer is not None]
        first = min(layers) if layers else 0
        block = reader.read(path, first, max(layers) + 1) if layers else reader.read(path)
        for t in members:
            out[t.name] = hf.convert(t, block if t.layer is None else block[t.layer - first])
        del block
    return {t.name: out[t.name] for t in group}


def stream_safetensors(reader: ParamReader, cfg: LlamaConfig, out_dir: str,
                       shard_bytes: int = hf.SHARD_BYTES) -> list[str]:
    """Writes the safetensors shards one at a time, as `save_hf` lays them out."""
    tensors = hf.hf_tensors(cfg)
    sizes = ((t.name, reader.nbytes(t.path, None if t.layer is None else 1)) for t in tensors)
    plan = hf.plan_shards(sizes, shard_bytes)
    by_name = {t.name: t for t in tensors}
    shards = (_read_shard(reader, [by_name[n] for n in names]) for names in plan)
    return hf.write_shards(shards, len(plan), out_dir)


def export_hf(workdir: str, out_dir: str, step: int | None = None, shard_bytes: int = hf.SHARD_BYTES) -> int:
    """Writes `out_dir` loadable by transformers' AutoModelForCausalLM and AutoTokenizer; returns
    the step exported."""
    manager, step = _open(workdir, step)
    try:
        cfg = _config(manager, step)
        step_dir = os.path.join(str(manager.directory), str(step))
    finally:
        manager.close()
    model_cfg = LlamaConfig.from_dict(cfg.model)
    tokenizer = run_tokenizer(workdir)
    ids = _tokenizer_ids(tokenizer)
    hf.write_metadata(model_cfg, out_dir, cfg.train.seq_len, ids)
    stream_safetensors(ParamReader(step_dir), model_cfg, out_dir, shard_bytes)
    if ids:
        save_hf_tokenizer(tokenizer, out_dir, cfg.train.seq_len)
    elif tokenizer:
        shutil.copyfile(tokenizer, os.path.join(out_dir, TOKENIZER))
    return step


def _tokenizer_ids(tokenizer: str | None) -> dict | None:
    """The tokenizer's special ids, or None (with a warning) if no tokenizer.json can be written."""
    if not tokenizer:
        return None
    try:
        return special_ids(tokenizer)
    except ValueError as e:
        log.warning("Copying tokenizer.model only (AutoTokenizer will not load it): %s", e)
        return None


def run_tokenizer(workdir: str) -> str | None:
    """The run's own tokenizer.model (training copies it there; so does from-hf), None if it has none."""
    return rundir.tokenizer_path(workdir)
