"""Architecture hyperparameters of a Llama-2 decoder, and the formulas derived from them."""

import dataclasses

import jax.numpy as jnp

from llmjp_jax.errors import ConfigError, require
from llmjp_jax.model.attention import IMPLEMENTATIONS, resolve

ATTENTION = IMPLEMENTATIONS

REMAT_POLICIES = ("none", "full", "save_dots")
# What two models must share for one's weights to compute the same function in the other: every
# import path (train.init_params_from, llmjp-convert from-hf --config) compares all of these.
ARCHITECTURE = ("num_layers", "hidden", "ffn", "num_heads", "num_kv_heads", "dh", "padded_vocab",
                "tie_embeddings", "rope_theta", "norm_eps", "scaled_embed")
# Set from the others for the devices a model runs on (for_platform), never by a preset.
DERIVED_FIELDS = ("interpret_kernels",)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
VOCAB_MULTIPLE = 128  # Embedding rows are padded to a multiple of this (tensor-parallel friendly).


def padded_rows(vocab_size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """Embedding rows for `vocab_size` ids: the next multiple of `multiple`."""
    return -(-vocab_size // multiple) * multiple


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    num_layers: int
    hidden: int
    ffn: int
    num_heads: int
    num_kv_heads: int
    head_dim: int = 0  # 0 means hidden // num_heads.
    vocab_multiple: int = VOCAB_MULTIPLE
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    init_std: float = 0.02
    scaled_embed: bool = False  # "Spike No More": multiply embeddings by sqrt(hidden).
    dtype: str = "float32"  # Compute dtype; parameters are always float32.
    remat: str = "full"
    scan: bool = True
    attention: str = "xla"  # One of model/attention.py's IMPLEMENTATIONS.
    interpret_kernels: bool = False  # Run Pallas kernels interpreted (set by for_platform on CPUs).

    @classmethod
    def from_dict(cls, d) -> "LlamaConfig":
        return cls(**dict(d))

    def for_platform(self, platform: str) -> "LlamaConfig":
        """This config with `attention` resolved for the devices it will run on ("auto" becomes
        that platform's fast kernel); ValueError naming model.attention if it cannot run there."""
        impl = resolve(self.attention, platform)
        interpret = impl == "splash" and platform != "tpu"
        return dataclasses.replace(self, attention=impl, interpret_kernels=interpret)

    @property
    def dh(self) -> int:
        return self.head_dim or self.hidden // self.num_heads

    @property
    def padded_vocab(self) -> int:
        return padded_rows(self.vocab_size, self.vocab_multiple)

    @property
    def compute_dtype(self):
        return DTYPES[self.dtype]

    def architecture_differences(self, other: "LlamaConfig") -> list[str]:
        """The ARCHITECTURE fields where `other` differs from this config."""
        return [name for name in ARCHITECTURE if getattr(other, name) != getattr(self, name)]

    def layer_params(self) -> int:
        attn = self.hidden * self.dh * (2 * self.num_heads + 2 * self.num_kv_heads)
        return attn + 3 * self.hidden * self.ffn + 2 * self.hidden

    def embedding_params(self) -> int:
        copies = 1 if self.tie_embeddings else 2
        return copies * self.padded_vocab * self.hidden

    def num_params(self) -> int:
        """All parameters, counted from the architecture (embeddings padded)."""
        return self.embedding_params() + self.num_layers * self.layer_params() + self.hidden

    def num_params_non_embedding(self) -> int:
        return self.num_params() - self.embedding_params()

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward = 3x forward), PaLM-style.

        Matmul FLOPs: 6 x parameters that take part in matmuls (all but the input
        embedding lookup and the norm scales), plus causal-agnostic attention
        scores and values: 12 x layers x heads x head_dim x seq_len.
        """
        matmul_params = self.num_layers * (self.layer_params() - 2 * self.hidden)
        matmul_params += self.padded_vocab * self.hidden  # output head (tied or not)
        attention = 12 * self.num_layers * self.num_heads * self.dh * seq_len
        return 6 * matmul_params + attention


def check(model_cfg) -> LlamaConfig:
    """The LlamaConfig of config.model; ConfigError naming the model.* setting that cannot work."""
    m = model_cfg
    try:
        mc = LlamaConfig.from_dict(m)
    except TypeError as e:
        raise ConfigError(f"config.model: {e}") from e
    require(m.dtype in DTYPES, f"model.dtype={m.dtype!r}: choose one of {tuple(DTYPES)}.")
    require(m.attention in ATTENTION, f"model.attention={m.attention!r}: choose one of {ATTENTION}.")
    require(m.remat in REMAT_POLICIES, f"model.remat={m.remat!r}: choose one of {REMAT_POLICIES}.")
    require(m.num_heads % m.num_kv_heads == 0,
            f"model.num_kv_heads={m.num_kv_heads} must divide model.num_heads={m.num_heads}.")
    require(m.head_dim or m.hidden % m.num_heads == 0,
            f"model.num_heads={m.num_heads} does not divide model.hidden={m.hidden}; set model.head_dim.")
    require(mc.dh % 2 == 0, f"head dimension {mc.dh} must be even for RoPE (model.head_dim).")
    return mc
