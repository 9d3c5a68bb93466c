"""Megatron-Core GPT checkpoints read into global tensors (llmjp-convert megatron-to-run).

Two layouts, both as Megatron-LM writes them (`--save DIR`: DIR/latest_checkpointed_iteration.txt
and DIR/iter_NNNNNNN/; either folder may be given):
- torch_dist (`--ckpt-format torch_dist`, the default): read with torch.distributed.checkpoint,
  no megatron import. The format stores global tensors, so whatever TP/PP/DP the run used, the
  tensors read are whole; layers are stacked [num_layers, ...] under `decoder.layers.*`.
- legacy torch (`--ckpt-format torch`): iter_N/mp_rank_TT[_PPP]/model_optim_rng.pt, each TP (x PP)
  rank's own slices, merged here: column-parallel tensors (embedding, output layer, linear_qkv with
  each rank's whole query groups, linear_fc1 with each rank's [gate; up] halves) on dim 0,
  row-parallel ones (linear_proj, linear_fc2) on dim 1, pipeline stages' layers in stage order.
Either way the result is {global name: float32 array}, layers stacked, the layer norms under the
fused names (`linear_qkv.layer_norm_weight`, `linear_fc1.layer_norm_weight`). Only the model is
read (never the optimizer state). torch is imported when a checkpoint is read.
"""

import argparse
import io
import os
import re
import warnings

import numpy as np

from llmjp_jax.errors import MissingFileError, UserError

LATEST = "latest_checkpointed_iteration.txt"
LEGACY_FILE = "model_optim_rng.pt"
RANK_DIR = re.compile(r"mp_rank_(\d{2})(?:_(\d{3}))?$")
MODEL_PREFIXES = ("embedding.", "decoder.", "output_layer.")
# Legacy (local-spec) layer norm names -> the fused names torch_dist always uses.
ALIASES = {"input_layernorm.weight": "self_attention.linear_qkv.layer_norm_weight",
           "pre_mlp_layernorm.weight": "mlp.linear_fc1.layer_norm_weight"}
COLUMN_PARALLEL = ("embedding.word_embeddings.weight", "output_layer.weight", "linear_qkv.weight")
ROW_PARALLEL = ("linear_proj.weight", "linear_fc2.weight")
LAYER_KEY = re.compile(r"decoder\.layers\.(\d+)\.(.+)$")


class MegatronCheckpointError(UserError):
    """A Megatron checkpoint that cannot be read or is not a Llama-style GPT model."""


def _torch():
    try:
        import torch
    except ImportError as e:
        raise MegatronCheckpointError("Reading a Megatron checkpoint needs torch (pip install torch; "
                                      "the CPU build is enough).") from e
    return torch


def iteration_dir(path: str) -> str:
    """The iter_N folder of `path`: itself, or the one its latest_checkpointed_iteration.txt names."""
    if not os.path.isdir(path):
        raise MissingFileError(f"Megatron checkpoint folder {path} does not exist.")
    latest = os.path.join(path, LATEST)
    if not os.path.isfile(latest):
        return path
    with open(latest, encoding="utf-8") as f:
        text = f.read().strip()
    name = "release" if text == "release" else f"iter_{int(text):07d}" if text.isdigit() else None
    if name is None or not os.path.isdir(os.path.join(path, name)):
        raise MissingFileError(f"{latest} names iteration {text!r}, but {path}/{name or text} "
                               "does not exist.")
    return os.path.join(path, name)


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict, str]:
    """(global tensors, the run's args as a dict (empty if none), the folder read)."""
    folder = iteration_dir(path)
    if os.path.isfile(os.path.join(folder, ".metadata")):
        return *read_torch_dist(folder), folder
    if any(RANK_DIR.match(name) for name in os.listdir(folder)):
        return *read_legacy(folder), folder
    raise MegatronCheckpointError(f"{folder} is neither a torch_dist checkpoint (no .metadata) nor a legacy "
                                  f"one (no mp_rank_XX/{LEGACY_FILE}).")


def load_pickle(source, torch, where: str):
    """torch.load with weights_only=True; classes it does not allow (Megatron's enums in args) become
    inert stand-ins, so nothing in the file runs and megatron need not be installed."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(source)
        stand_ins = [(type(name.rsplit(".", 1)[-1], (_StandIn,), {}), name) for name in unsafe
                     if name != "argparse.Namespace"]
        if hasattr(source, "seek"):
            source.seek(0)
        with torch.serialization.safe_globals([argparse.Namespace, *stand_ins]):
            return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a damaged file
        raise MegatronCheckpointError(f"{where} is not a readable torch file "
                                      f"({type(e).__name__}: {e}).") from e


class _StandIn:
    """Whatever a pickled object outside the allowed classes was; it keeps nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _args_dict(args) -> dict:
    """A run's args (a Namespace) as a dict; {} when there are none."""
    if isinstance(args, argparse.Namespace):
        return vars(args)
    return dict(args) if isinstance(args, dict) else {}


def read_torch_dist(folder: str) -> tuple[dict[str, np.ndarray], dict]:
    """The model tensors of a torch_dist checkpoint and the args in its common state."""
    torch = _torch()
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

    reader = dcp.FileSystemReader(folder)
    try:
        meta = reader.read_metadata().state_dict_metadata
    except Exception as e:
        raise MegatronCheckpointError(f"{folder}/.metadata is not a torch.distributed.checkpoint "
                                      f"metadata file ({type(e).__name__}: {e}).") from e
    tensors = {k: torch.empty(v.size, dtype=v.properties.dtype) for k, v in meta.items()
               if isinstance(v, TensorStorageMetadata) and k.startswith(MODEL_PREFIXES)}
    common = [k for k, v in meta.items()
              if isinstance(v, BytesStorageMetadata) and k.startswith("common_state")]
    raw = _dcp_load({**tensors, **dict.fromkeys(common)}, reader, folder, dcp)
    args = {}
    for key in common:
        common_state = load_pickle(raw[key], torch, f"{folder} ({key})")
        while isinstance(common_state, list) and len(common_state) == 1:  # one object per shard
            common_state = common_state[0]
        args = _args_dict(common_state.get("args") if isinstance(common_state, dict) else None)
    if not args and os.path.isfile(os.path.join(folder, "common.pt")):  # older torch_dist checkpoints
        common_pt = os.path.join(folder, "common.pt")
        args = _args_dict(load_pickle(common_pt, torch, common_pt).get("args"))
    return {k: _numpy(v) for k, v in tensors.items()}, args


def _dcp_load(state: dict, reader, folder: str, dcp) -> dict[str, bytes]:
    """Fills the tensors of `state` in place and returns its byte entries as bytes (dcp's own
    planner would unpickle them unchecked)."""
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    raw = {}

    class KeepBytes(DefaultLoadPlanner):
        def load_bytes(self, read_item, value):
            raw[read_item.dest_index.fqn] = value.read()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "assuming the intent is to load in a single process"
            dcp.load(state, storage_reader=reader, planner=KeepBytes(), no_dist=True)
    except Exception as e:
        raise MegatronCheckpointError(f"{folder}: the torch_dist tensors cannot be read "
                                      f"({type(e).__name__}: {e}).") from e
    return raw


def _numpy(t) -> np.ndarray:
    return t.detach().float().numpy()


def _rank_files(folder: str) -> list[list[str]]:
    """model_optim_rng.pt paths as [pipeline stage][tensor rank]; every one must exist."""
    ranks = [m for m in map(RANK_DIR.match, sorted(os.listdir(folder))) if m]
    tp = 1 + max(int(m.group(1)) for m in ranks)
    pp = 1 + max(int(m.group(2) or 0) for m in ranks)
    name = (lambda t, p: f"mp_rank_{t:02d}_{p:03d}") if pp > 1 or ranks[0].group(2) else (
        lambda t, p: f"mp_rank_{t:02d}")
    files = [[os.path.join(folder, name(t, p), LEGACY_FILE) for t in range(tp)] for p in range(pp)]
    for path in (path for stage in files for path in stage):
        if not os.path.isfile(path):
            raise MissingFileError(f"{path} not found: the checkpoint has {tp} tensor x {pp} pipeline ranks.")
    return files


def _model_state(path: str, torch) -> tuple[dict[str, np.ndarray], dict]:
    saved = load_pickle(path, torch, path)
    if not isinstance(saved, dict) or "model" not in saved:
        chunks = sorted(k for k in saved if str(k).startswith("model")) if isinstance(saved, dict) else []
        what = (f"virtual pipeline chunks ({', '.join(chunks)}) are not supported" if chunks
                else "no 'model' entry")
        raise MegatronCheckpointError(f"{path}: {what}.")
    return {k: _numpy(v) for k, v in saved["model"].items()
            if not k.endswith("_extra_state") and hasattr(v, "shape")}, saved


def _merge_ranks(parts: list[dict[str, np.ndarray]], path: str) -> dict[str, np.ndarray]:
    """One pipeline stage's tensors from its tensor-parallel ranks' slices."""
    merged = {}
    for key, first in parts[0].items():
        values = []
        for i, part in enumerate(parts):
            if key not in part:
                raise MegatronCheckpointError(f"{path}: tensor rank {i} lacks {key} (rank 0 has it).")
            values.append(part[key])
        if key.endswith("linear_fc1.weight"):  # each rank: [its gate rows; its up rows]
            halves = [np.split(v, 2) for v in values]
            merged[key] = np.concatenate([h[0] for h in halves] + [h[1] for h in halves])
        elif key.endswith(COLUMN_PARALLEL):
            merged[key] = np.concatenate(values, axis=0)
        elif key.endswith(ROW_PARALLEL):
            merged[key] = np.concatenate(values, axis=1)
        else:
            merged[key] = first  # layer norms: replicated on every tensor rank
    return merged


def read_legacy(folder: str) -> tuple[dict[str, np.ndarray], dict]:
    """Every rank's model_optim_rng.pt merged into global tensors, layers stacked."""
    torch = _torch()
    layers: dict[str, list[np.ndarray]] = {}
    tensors, args = {}, {}
    for stage in _rank_files(folder):
        loaded = [_model_state(path, torch) for path in stage]
        args = args or _args_dict(loaded[0][1].get("args"))
        merged = _merge_ranks([state for state, _ in loaded], stage[0])
        stage_layers: dict[int, dict[str, np.ndarray]] = {}
        for key, value in merged.items():
            match = LAYER_KEY.match(key)
            if match:
                name = ALIASES.get(match.group(2), match.group(2))
                stage_layers.setdefault(int(match.group(1)), {})[name] = value
            else:
                tensors[key] = value
        for index in sorted(stage_layers):  # local indices within the stage
            for name, value in stage_layers[index].items():
                layers.setdefault(f"decoder.layers.{name}", []).append(value)
    for name, values in layers.items():
        tensors[name] = np.stack(values)
    return tensors, args
