"""Tokenization of a corpus into shards: plan (work units), state (resumption), unit, pool, run."""

from llmjp_jax.data.tokenize.plan import Settings, cpu_count
from llmjp_jax.data.tokenize.run import ON_BAD_INPUT, RELEASE_LEVELS, Options, tokenize_files
from llmjp_jax.data.tokenize.state import PLAN, STATE_DIR, ResumeMismatch

__all__ = ["ON_BAD_INPUT", "PLAN", "RELEASE_LEVELS", "STATE_DIR", "Options", "ResumeMismatch", "Settings",
           "cpu_count", "tokenize_files"]
