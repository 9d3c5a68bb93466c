"""Llama-2 model in Flax NNX (logical axis names only; no mesh knowledge)."""

from llmjp_jax.model.config import LlamaConfig
from llmjp_jax.model.llama import Llama

__all__ = ["Llama", "LlamaConfig"]
