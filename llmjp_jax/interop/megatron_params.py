"""Megatron-Core GPT tensors -> our Llama parameters, and llmjp-convert megatron-to-run.

Megatron's Llama (RMSNorm, SwiGLU, rotate-half RoPE, GQA) is ours up to layout: Linear weights
are [out, in]; linear_qkv holds, per query group, that group's query heads then its key and
its value head ([groups, heads/groups + 2, head_dim, hidden]; query head h is in group
h // (heads/groups), as in our attention); linear_fc1 is [gate; up]. The architecture comes from
the checkpoint's args (Megatron-LM records them) or, when it has none, from --config; the tensor
shapes are checked against it either way.
"""

import numpy as np
from ml_collections import ConfigDict

from llmjp_jax.interop.from_hf import refuse_existing, run_config, write_step0_run
from llmjp_jax.interop.megatron_ckpt import MegatronCheckpointError, read_checkpoint
from llmjp_jax.model import LlamaConfig

EMBED, OUTPUT = "embedding.word_embeddings.weight", "output_layer.weight"
FINAL_NORM = "decoder.final_layernorm.weight"
QKV = "decoder.layers.self_attention.linear_qkv.weight"
PROJ = "decoder.layers.self_attention.linear_proj.weight"
FC1, FC2 = "decoder.layers.mlp.linear_fc1.weight", "decoder.layers.mlp.linear_fc2.weight"
ATTN_NORM = "decoder.layers.self_attention.linear_qkv.layer_norm_weight"
MLP_NORM = "decoder.layers.mlp.linear_fc1.layer_norm_weight"
# args that must hold for the model to be a Llama (value Megatron-LM's default has when absent).
LLAMA_ARGS = {"normalization": ("RMSNorm", "LayerNorm"), "swiglu": (True, False),
              "position_embedding_type": ("rope", "learned_absolute"), "add_bias_linear": (False, True),
              "apply_layernorm_1p": (False, False), "rotary_interleaved": (False, False),
              "rotary_percent": (1.0, 1.0), "qk_layernorm": (False, False), "num_experts": (None, None)}


def expected_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a Llama-style GPT model of `cfg` has, with its global shape."""
    L, d, f, v = cfg.num_layers, cfg.hidden, cfg.ffn, cfg.padded_vocab
    shapes = {EMBED: (v, d), QKV: (L, (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.dh, d),
              PROJ: (L, d, cfg.num_heads * cfg.dh), FC1: (L, 2 * f, d), FC2: (L, d, f),
              ATTN_NORM: (L, d), MLP_NORM: (L, d), FINAL_NORM: (d,)}
    return shapes if cfg.tie_embeddings else {**shapes, OUTPUT: (v, d)}


def check_llama(args: dict, tensors: dict[str, np.ndarray], where: str):
    """A Llama-style GPT model (RMSNorm, SwiGLU, RoPE, no biases, no MoE) or a MegatronCheckpointError."""
    for name, (wanted, default) in LLAMA_ARGS.items():
        if args and args.get(name, default) != wanted:
            raise MegatronCheckpointError(f"{where}: args.{name}={args.get(name, default)!r}; only "
                                          f"Llama-style GPT models ({name}={wanted!r}) can be imported.")
    for key in tensors:
        if key.endswith(("bias", "layer_norm_bias")):
            raise MegatronCheckpointError(f"{where}: tensor {key}: biases (LayerNorm or Linear) are not part "
                                          "of a Llama model; only RMSNorm, bias-free models can be imported.")
    if FC1 in tensors and FC2 in tensors and tensors[FC1].shape[1] != 2 * tensors[FC2].shape[2]:
        raise MegatronCheckpointError(f"{where}: {FC1} has {tensors[FC1].shape[1]} rows for ffn "
                                      f"{tensors[FC2].shape[2]}: the MLP is not SwiGLU ([gate; up]).")


def config_from_args(args: dict, tensors: dict[str, np.ndarray], where: str) -> LlamaConfig:
    """Our architecture from Megatron-LM's args; the vocabulary is the embedding's (padded) rows."""
    try:
        heads = int(args["num_attention_heads"])
        return LlamaConfig(
            vocab_size=int(tensors[EMBED].shape[0]), vocab_multiple=1, num_layers=int(args["num_layers"]),
            hidden=int(args["hidden_size"]), ffn=int(args["ffn_hidden_size"]), num_heads=heads,
            num_kv_heads=int(args["num_query_groups"]) if args.get("group_query_attention") else heads,
            head_dim=int(args.get("kv_channels") or args["hidden_size"] // heads),
            rope_theta=float(args.get("rotary_base", 10_000)), norm_eps=float(args.get("norm_epsilon", 1e-5)),
            tie_embeddings=not args.get("untie_embeddings_and_output_weights", False))
    except (KeyError, TypeError, ValueError) as e:
        raise MegatronCheckpointError(f"{where}: the checkpoint's args lack or garble {e}; pass --config "
                                      "with the model.* settings instead.") from e


def check_shapes(tensors: dict[str, np.ndarray], cfg: LlamaConfig, where: str):
    """Every tensor is there with the shape `cfg` implies, and there is no other; errors name it."""
    shapes = expected_shapes(cfg)
    for key, shape in shapes.items():
        if key not in tensors:
            raise MegatronCheckpointError(f"{where}: tensor {key} is missing.")
        if tuple(tensors[key].shape) != shape:
            raise MegatronCheckpointError(f"{where}: tensor {key} has shape {tuple(tensors[key].shape)}; the "
                                          f"model config implies {shape}.")
    unknown = sorted(set(tensors) - set(shapes))
    if unknown:
        raise MegatronCheckpointError(f"{where}: unknown tensor {unknown[0]}"
                                      f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}; "
                                      "only Llama-style GPT models (no MoE, no QK norm) can be imported.")


def to_params(tensors: dict[str, np.ndarray], cfg: LlamaConfig) -> dict:
    """Megatron global tensors (checked by check_shapes) -> our parameter dict (float32)."""
    L, d, h, kv, dh, f = cfg.num_layers, cfg.hidden, cfg.num_heads, cfg.num_kv_heads, cfg.dh, cfg.ffn
    qkv = tensors[QKV].reshape(L, kv, h // kv + 2, dh, d)
    wq = qkv[:, :, : h // kv].reshape(L, h, dh, d).transpose(0, 3, 1, 2)
    wk, wv = (qkv[:, :, i].transpose(0, 3, 1, 2) for i in (h // kv, h // kv + 1))
    params = {
        "embed": tensors[EMBED],
        "blocks": {
            "attn": {"wq": wq, "wk": wk, "wv": wv,
                     "wo": tensors[PROJ].reshape(L, d, h, dh).transpose(0, 2, 3, 1)},
            "mlp": {"w_gate": tensors[FC1][:, :f].transpose(0, 2, 1),
                    "w_up": tensors[FC1][:, f:].transpose(0, 2, 1),
                    "w_down": tensors[FC2].transpose(0, 2, 1)},
            "attn_norm": {"scale": tensors[ATTN_NORM]}, "mlp_norm": {"scale": tensors[MLP_NORM]}},
        "final_norm": {"scale": tensors[FINAL_NORM]},
    }
    if not cfg.tie_embeddings:
        params["head"] = tensors[OUTPUT].T
    return _contiguous_float32(params)


def _contiguous_float32(tree):
    if isinstance(tree, dict):
        return {k: _contiguous_float32(v) for k, v in tree.items()}
    return np.ascontiguousarray(tree, np.float32)


def load_megatron(path: str, base: ConfigDict | None = None) -> tuple[dict, LlamaConfig, dict, str]:
    """(our params, their config, the checkpoint's args, the folder read) from a Megatron checkpoint;
    the architecture from its args, else from `base` (a run config)."""
    tensors, args, folder = read_checkpoint(path)
    check_llama(args, tensors, folder)
    if args:
        cfg = config_from_args(args, tensors, folder)
    elif base is not None:
        cfg = LlamaConfig.from_dict(base.model)
    else:
        raise MegatronCheckpointError(f"{folder} records no args (the architecture); pass --config with "
                                      "the model.* settings.")
    check_shapes(tensors, cfg, folder)
    return to_params(tensors, cfg), cfg, args, folder


def import_megatron(path: str, workdir: str, seq_len: int | None = None, base: ConfigDict | None = None
                    ) -> ConfigDict:
    """Writes the step-0 run directory `workdir` from the Megatron checkpoint `path`; returns its config."""
    refuse_existing(workdir)
    params, model, args, folder = load_megatron(path, base)
    cfg = run_config(model, f"The Megatron checkpoint {folder}", seq_len, base, args.get("init_method_std"),
                     args.get("seq_length"))
    write_step0_run(params, cfg, workdir)
    return cfg
