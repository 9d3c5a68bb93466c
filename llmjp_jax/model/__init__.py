"""Llama-2 model in Flax NNX (logical axis names only; no mesh knowledge)."""

from flax import nnx

from llmjp_jax.model.config import LlamaConfig
from llmjp_jax.model.llama import Llama

# Parameters only carry logical names; `llmjp_jax.parallel` turns them into
# shardings. Flax's eager sharding would need a mesh at construction time.
nnx.use_eager_sharding(False)

__all__ = ["Llama", "LlamaConfig"]
