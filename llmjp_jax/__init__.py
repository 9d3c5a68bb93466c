"""llmjp-jax: LLM-jp style Llama-2 pretraining in JAX/Flax."""

__version__ = "0.1.0"
