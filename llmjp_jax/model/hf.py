"""Our Llama parameters <-> a Hugging Face `LlamaForCausalLM` folder (config.json + safetensors).

Our layout already follows Hugging Face's conventions (rotate-half RoPE, q/k/v
heads laid out as [head, head_dim]), so conversion is reshapes and transposes:
our kernels are [in, out] (split into heads), HF Linear weights are [out, in].
Only numpy and safetensors are needed; torch and transformers are not. It lives with the model
because it is the model's parameter tree written in Hugging Face's names (training reads it for
train.init_params_from; interop/ builds the run exports and imports on it).

`hf_tensors` lists every HF tensor with the parameter (and layer) it comes from, so
the shards can be planned from shapes alone and filled one at a time (export.py
streams them from a checkpoint; `save_hf` takes parameters in memory).
"""

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from llmjp_jax.errors import MissingFileError, UserError
from llmjp_jax.files import with_default_mode
from llmjp_jax.model.config import LlamaConfig

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer.model"  # the SentencePiece model, beside the weights
SHARD_BYTES = 5 * 2**30
DEFAULT_SPECIAL_IDS = {"bos_token_id": 1, "eos_token_id": 2}


class HFFolderError(UserError):
    """A Hugging Face folder (or a model) that cannot be read or written as LlamaForCausalLM."""


@dataclasses.dataclass(frozen=True)
class HFTensor:
    """One Hugging Face tensor: `to_hf(our_param[layer])` (the whole parameter if layer is None),
    its shape in the HF folder, and `from_hf`, the inverse of `to_hf`."""
    name: str
    path: tuple[str, ...]
    layer: int | None
    shape: tuple[int, ...]
    to_hf: Callable[[np.ndarray], np.ndarray]
    from_hf: Callable[[np.ndarray], np.ndarray]


def _same(x):
    return x


def _transposed(x):
    return x.T


def _heads(d: int, heads: int, dh: int):
    """q/k/v: ours [hidden, heads, head_dim], HF [heads * head_dim, hidden]."""
    return (heads * dh, d), lambda w: w.reshape(d, -1).T, lambda w: w.T.reshape(d, heads, dh)


def _layer_rows(cfg: LlamaConfig) -> list[tuple]:
    """(HF name within a layer, our path within blocks, HF shape, to_hf, from_hf): the one table."""
    d, h, kv, dh, f = cfg.hidden, cfg.num_heads, cfg.num_kv_heads, cfg.dh, cfg.ffn
    out_proj = ((d, h * dh), lambda w: w.reshape(h * dh, d).T, lambda w: w.T.reshape(h, dh, d))
    return [
        ("self_attn.q_proj", ("attn", "wq"), *_heads(d, h, dh)),
        ("self_attn.k_proj", ("attn", "wk"), *_heads(d, kv, dh)),
        ("self_attn.v_proj", ("attn", "wv"), *_heads(d, kv, dh)),
        ("self_attn.o_proj", ("attn", "wo"), *out_proj),
        ("mlp.gate_proj", ("mlp", "w_gate"), (f, d), _transposed, _transposed),
        ("mlp.up_proj", ("mlp", "w_up"), (f, d), _transposed, _transposed),
        ("mlp.down_proj", ("mlp", "w_down"), (d, f), _transposed, _transposed),
        ("input_layernorm", ("attn_norm", "scale"), (d,), _same, _same),
        ("post_attention_layernorm", ("mlp_norm", "scale"), (d,), _same, _same),
    ]


def hf_tensors(cfg: LlamaConfig) -> list[HFTensor]:
    """Every tensor of the HF model, in the order they are written."""
    v, d = cfg.padded_vocab, cfg.hidden
    out = [HFTensor("model.embed_tokens.weight", ("embed",), None, (v, d), _same, _same)]
    rows = _layer_rows(cfg)
    for i in range(cfg.num_layers):
        out += [HFTensor(f"model.layers.{i}.{name}.weight", ("blocks", *path), i, shape, to_hf, from_hf)
                for name, path, shape, to_hf, from_hf in rows]
    out.append(HFTensor("model.norm.weight", ("final_norm", "scale"), None, (d,), _same, _same))
    if not cfg.tie_embeddings:
        out.append(HFTensor("lm_head.weight", ("head",), None, (v, d), _transposed, _transposed))
    return out


def convert(t: HFTensor, value: np.ndarray) -> np.ndarray:
    """Our parameter slice -> the contiguous HF tensor."""
    return np.ascontiguousarray(t.to_hf(np.asarray(value)))


def _get(params: dict, path: tuple[str, ...]):
    for key in path:
        params = params[key]
    return params


def to_hf_tensors(params: dict, cfg: LlamaConfig) -> Iterator[tuple[str, np.ndarray]]:
    """Yields (name, array) in Hugging Face naming, one tensor at a time."""
    for t in hf_tensors(cfg):
        value = _get(params, t.path)
        yield t.name, convert(t, value if t.layer is None else value[t.layer])


def plan_shards(sizes: Iterable[tuple[str, int]], shard_bytes: int) -> list[list[str]]:
    """Names grouped into shards in order, a new shard when the next tensor would pass shard_bytes."""
    shards, current, size = [], [], 0
    for name, nbytes in sizes:
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    shards.append(current)
    return shards


def shard_file(i: int, count: int) -> str:
    return SINGLE if count == 1 else f"model-{i + 1:05d}-of-{count:05d}.safetensors"


def write_metadata(cfg: LlamaConfig, out_dir: str, max_positions: int, special_ids: dict | None = None):
    """config.json and generation_config.json (token ids from the tokenizer when given)."""
    ids = {**DEFAULT_SPECIAL_IDS, **{k: v for k, v in (special_ids or {}).items()
                                     if k in DEFAULT_SPECIAL_IDS and v is not None}}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, CONFIG), "w") as f:
        json.dump({**hf_config(cfg, max_positions), **ids}, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({**ids, "do_sample": False}, f, indent=2)


def write_shards(shards: Iterable[dict[str, np.ndarray]], count: int, out_dir: str) -> list[str]:
    """Writes each shard as it arrives (float32), then the index when there are several."""
    names, weight_map, total = [], {}, 0
    for shard in shards:  # not enumerate(): its cached result tuple would keep the last shard alive
        name = shard_file(len(names), count)
        shard = {k: v.astype(np.float32, copy=False) for k, v in shard.items()}
        save_file(shard, os.path.join(out_dir, name), metadata={"format": "pt"})
        with_default_mode(os.path.join(out_dir, name))  # safetensors writes 0600
        weight_map.update(dict.fromkeys(shard, name))
        total += sum(v.nbytes for v in shard.values())
        names.append(name)
        del shard  # before the next shard is built
    if len(names) != count:
        raise RuntimeError(f"Planned {count} safetensors shards but wrote {len(names)}.")
    if count > 1:
        with open(os.path.join(out_dir, INDEX), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return names


def hf_config(cfg: LlamaConfig, max_positions: int, dtype: str = "float32") -> dict:
    if cfg.scaled_embed:
        raise HFFolderError("model.scaled_embed=True has no Hugging Face Llama equivalent; "
                         "a model trained with it cannot be exported as LlamaForCausalLM.")
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.padded_vocab, "hidden_size": cfg.hidden, "intermediate_size": cfg.ffn,
        "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.dh, "hidden_act": "silu",
        "max_position_embeddings": max_positions, "initializer_range": cfg.init_std,
        "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "tie_word_embeddings": cfg.tie_embeddings, "attention_bias": False, "mlp_bias": False,
        **DEFAULT_SPECIAL_IDS, "dtype": dtype, "use_cache": True,
    }


def save_hf(params: dict, cfg: LlamaConfig, out_dir: str, max_positions: int,
            shard_bytes: int = SHARD_BYTES, special_ids: dict | None = None) -> list[str]:
    """Writes config.json, generation_config.json and safetensors (sharded above `shard_bytes`)."""
    write_metadata(cfg, out_dir, max_positions, special_ids)
    tensors = dict(to_hf_tensors(params, cfg))
    plan = plan_shards(((k, v.nbytes) for k, v in tensors.items()), shard_bytes)
    return write_shards(({k: tensors[k] for k in names} for names in plan), len(plan), out_dir)


def config_from_hf(hf: dict, **overrides) -> LlamaConfig:
    """Our architecture config from a Hugging Face Llama config.json."""
    rope = hf.get("rope_parameters") or {}
    heads = hf["num_attention_heads"]
    return LlamaConfig(
        vocab_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"], hidden=hf["hidden_size"],
        ffn=hf["intermediate_size"], num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10_000.0))),
        norm_eps=hf.get("rms_norm_eps", 1e-6), tie_embeddings=hf.get("tie_word_embeddings", False),
        vocab_multiple=1, **overrides)


def read_hf_config(folder: str) -> dict:
    """config.json of a Hugging Face Llama folder; errors name the file and what is wrong."""
    path = os.path.join(folder, CONFIG)
    if not os.path.isdir(folder):
        raise MissingFileError(f"Hugging Face folder {folder} does not exist.")
    if not os.path.isfile(path):
        raise MissingFileError(f"{path} not found: a Hugging Face model folder needs its config.json.")
    try:
        with open(path, encoding="utf-8") as f:
            hf = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HFFolderError(f"{path} is not valid JSON ({e}).") from e
    if not isinstance(hf, dict) or hf.get("model_type") != "llama":
        kind = hf.get("model_type") if isinstance(hf, dict) else None
        raise HFFolderError(f"{path} has model_type={kind!r}, not 'llama'.")
    missing = [k for k in ("vocab_size", "num_hidden_layers", "hidden_size", "intermediate_size",
                           "num_attention_heads") if k not in hf]
    if missing:
        raise HFFolderError(f"{path} lacks {', '.join(missing)}.")
    return hf


def load_hf(folder: str) -> tuple[dict, LlamaConfig]:
    """Reads a Hugging Face Llama folder into our parameter dict (float32) and config."""
    cfg = config_from_hf(read_hf_config(folder))
    return from_hf_tensors(_read_tensors(folder), cfg, folder), cfg


def _weight_files(folder: str) -> list[str]:
    index = os.path.join(folder, INDEX)
    if os.path.exists(index):
        try:
            with open(index, encoding="utf-8") as f:
                return sorted(set(json.load(f)["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise HFFolderError(f"{index} is not a valid safetensors index ({e!r}).") from e
    if not os.path.exists(os.path.join(folder, SINGLE)):
        raise MissingFileError(f"{folder} has neither {SINGLE} nor {INDEX}: no weights to read "
                                "(only safetensors are supported).")
    return [SINGLE]


def _read_tensors(folder: str) -> dict[str, np.ndarray]:
    tensors = {}
    for name in _weight_files(folder):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise MissingFileError(f"{path} not found (listed in {INDEX}).")
        try:
            tensors.update(load_file(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise HFFolderError(f"{path} is not a readable safetensors file ({e}).") from e
    return tensors


def check_tensors(t: dict[str, np.ndarray], cfg: LlamaConfig, folder: str = "the Hugging Face folder"):
    """Every tensor the config needs is there with its shape; errors name the tensor."""
    for want in hf_tensors(cfg):
        if want.name not in t:
            raise HFFolderError(f"{folder}: tensor {want.name} is missing from the safetensors files.")
        if tuple(t[want.name].shape) != want.shape:
            raise HFFolderError(f"{folder}: tensor {want.name} has shape {tuple(t[want.name].shape)}, "
                             f"config.json implies {want.shape}.")


def from_hf_tensors(t: dict[str, np.ndarray], cfg: LlamaConfig,
                    folder: str = "the Hugging Face folder") -> dict:
    """HF tensors -> our parameter dict (float32), each converted by its table row's `from_hf`."""
    check_tensors(t, cfg, folder)
    layers: dict[tuple[str, ...], list[np.ndarray]] = {}
    params: dict = {}
    for want in hf_tensors(cfg):
        value = np.ascontiguousarray(want.from_hf(np.asarray(t[want.name], np.float32)))
        if want.layer is None:
            _put(params, want.path, value)
        else:
            layers.setdefault(want.path, []).append(value)
    for path, values in layers.items():
        _put(params, path, np.stack(values))
    return params


def _put(params: dict, path: tuple[str, ...], value: np.ndarray):
    for key in path[:-1]:
        params = params.setdefault(key, {})
    params[path[-1]] = value
