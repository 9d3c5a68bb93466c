"""Our Llama parameters <-> a Hugging Face `LlamaForCausalLM` folder (config.json + safetensors).

Our layout already follows Hugging Face's conventions (rotate-half RoPE, q/k/v
heads laid out as [head, head_dim]), so conversion is reshapes and transposes:
our kernels are [in, out] (split into heads), HF Linear weights are [out, in].
Only numpy and safetensors are needed; torch and transformers are not.
"""

import json
import os

import numpy as np
from safetensors.numpy import load_file, save_file

from llmjp_jax.model.config import LlamaConfig

INDEX = "model.safetensors.index.json"


def _layer_tensors(blocks: dict, i: int, cfg: LlamaConfig) -> dict[str, np.ndarray]:
    d, dh = cfg.hidden, cfg.dh
    a, m = blocks["attn"], blocks["mlp"]
    p = f"model.layers.{i}."
    return {
        p + "self_attn.q_proj.weight": a["wq"][i].reshape(d, -1).T,
        p + "self_attn.k_proj.weight": a["wk"][i].reshape(d, -1).T,
        p + "self_attn.v_proj.weight": a["wv"][i].reshape(d, -1).T,
        p + "self_attn.o_proj.weight": a["wo"][i].reshape(cfg.num_heads * dh, d).T,
        p + "mlp.gate_proj.weight": m["w_gate"][i].T,
        p + "mlp.up_proj.weight": m["w_up"][i].T,
        p + "mlp.down_proj.weight": m["w_down"][i].T,
        p + "input_layernorm.weight": blocks["attn_norm"]["scale"][i],
        p + "post_attention_layernorm.weight": blocks["mlp_norm"]["scale"][i],
    }


def to_hf_tensors(params: dict, cfg: LlamaConfig):
    """Yields (name, array) in Hugging Face naming, one tensor at a time."""
    yield "model.embed_tokens.weight", np.asarray(params["embed"])
    blocks = params["blocks"]
    for i in range(cfg.num_layers):
        for name, value in _layer_tensors(blocks, i, cfg).items():
            yield name, np.ascontiguousarray(np.asarray(value))
    yield "model.norm.weight", np.asarray(params["final_norm"]["scale"])
    if not cfg.tie_embeddings:
        yield "lm_head.weight", np.ascontiguousarray(np.asarray(params["head"]).T)


def hf_config(cfg: LlamaConfig, max_positions: int, dtype: str = "float32") -> dict:
    if cfg.scaled_embed:
        raise ValueError("model.scaled_embed=True has no Hugging Face Llama equivalent; "
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
        "bos_token_id": 1, "eos_token_id": 2, "dtype": dtype, "use_cache": True,
    }


def save_hf(params: dict, cfg: LlamaConfig, out_dir: str, max_positions: int,
            shard_bytes: int = 5 * 2**30) -> list[str]:
    """Writes config.json, generation_config.json and safetensors (sharded above `shard_bytes`)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(cfg, max_positions), f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "do_sample": False}, f, indent=2)
    shards, current, size = [], {}, 0
    for name, value in to_hf_tensors(params, cfg):
        if current and size + value.nbytes > shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = value.astype(np.float32)
        size += value.nbytes
    shards.append(current)
    return _write_shards(shards, out_dir)


def _write_shards(shards: list[dict], out_dir: str) -> list[str]:
    if len(shards) == 1:
        save_file(shards[0], os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
        return ["model.safetensors"]
    names, weight_map = [], {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(out_dir, name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
        names.append(name)
    total = sum(v.nbytes for s in shards for v in s.values())
    with open(os.path.join(out_dir, INDEX), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return names


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


def load_hf(folder: str) -> tuple[dict, LlamaConfig]:
    """Reads a Hugging Face Llama folder into our parameter dict (float32) and config."""
    with open(os.path.join(folder, "config.json")) as f:
        hf = json.load(f)
    if hf.get("model_type") != "llama":
        raise ValueError(f"{folder}/config.json has model_type={hf.get('model_type')!r}, not 'llama'.")
    cfg = config_from_hf(hf)
    tensors = _read_tensors(folder)
    return from_hf_tensors(tensors, cfg), cfg


def _read_tensors(folder: str) -> dict[str, np.ndarray]:
    index = os.path.join(folder, INDEX)
    files = ["model.safetensors"]
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    tensors = {}
    for name in files:
        tensors.update(load_file(os.path.join(folder, name)))
    return tensors


def from_hf_tensors(t: dict[str, np.ndarray], cfg: LlamaConfig) -> dict:
    d, dh, h, kv = cfg.hidden, cfg.dh, cfg.num_heads, cfg.num_kv_heads
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731

    def stack(suffix, fn):
        return np.stack([fn(f32(t[f"model.layers.{i}.{suffix}"])) for i in range(cfg.num_layers)])

    params = {
        "embed": f32(t["model.embed_tokens.weight"]),
        "final_norm": {"scale": f32(t["model.norm.weight"])},
        "blocks": {
            "attn": {
                "wq": stack("self_attn.q_proj.weight", lambda w: w.T.reshape(d, h, dh)),
                "wk": stack("self_attn.k_proj.weight", lambda w: w.T.reshape(d, kv, dh)),
                "wv": stack("self_attn.v_proj.weight", lambda w: w.T.reshape(d, kv, dh)),
                "wo": stack("self_attn.o_proj.weight", lambda w: w.T.reshape(h, dh, d)),
            },
            "mlp": {
                "w_gate": stack("mlp.gate_proj.weight", lambda w: w.T),
                "w_up": stack("mlp.up_proj.weight", lambda w: w.T),
                "w_down": stack("mlp.down_proj.weight", lambda w: w.T),
            },
            "attn_norm": {"scale": stack("input_layernorm.weight", lambda w: w)},
            "mlp_norm": {"scale": stack("post_attention_layernorm.weight", lambda w: w)},
        },
    }
    if not cfg.tie_embeddings:
        params["head"] = f32(t["lm_head.weight"]).T.copy()
    return params
