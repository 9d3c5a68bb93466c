"""Text generation: greedy, temperature, top-k and top-p sampling, with or without a KV cache.

Prompts of different lengths are left-padded into one batch; padding is never
attended to and positions start at 0 at each prompt's first token, so a row's
output does not depend on the other rows.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llmjp_jax.model import Llama
from llmjp_jax.model.llama import KVCache


@dataclasses.dataclass(frozen=True)
class Sampling:
    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0  # 0: no limit
    top_p: float = 1.0


def sample(logits_BxV, key, s: Sampling):
    """Next token ids [B] from the last position's logits."""
    if s.greedy:
        return jnp.argmax(logits_BxV, axis=-1)
    logits_BxV = logits_BxV / s.temperature
    if s.top_k:
        kth_B = jax.lax.top_k(logits_BxV, s.top_k)[0][:, -1:]
        logits_BxV = jnp.where(logits_BxV < kth_B, -jnp.inf, logits_BxV)
    if s.top_p < 1.0:
        sorted_BxV = jnp.sort(logits_BxV, axis=-1)[:, ::-1]
        mass_BxV = jnp.cumsum(jax.nn.softmax(sorted_BxV, axis=-1), axis=-1)
        # Keep the smallest set of top tokens whose mass reaches top_p.
        keep = jnp.sum(mass_BxV - jax.nn.softmax(sorted_BxV, axis=-1) < s.top_p, axis=-1, keepdims=True)
        cutoff_B = jnp.take_along_axis(sorted_BxV, keep - 1, axis=-1)
        logits_BxV = jnp.where(logits_BxV < cutoff_B, -jnp.inf, logits_BxV)
    return jax.random.categorical(key, logits_BxV, axis=-1)


class Generator:
    """Jitted prefill and decode steps for one model."""

    def __init__(self, model: Llama):
        self.cfg = model.cfg
        self.graphdef, self.params = nnx.split(model)
        self._cached = jax.jit(self._cached_step, static_argnames="sampling")
        self._full = jax.jit(self._full_step, static_argnames="sampling")

    def _last_logits(self, logits_BxTxV):
        # Never sample the padding rows of the embedding.
        logits_BxV = logits_BxTxV[:, -1]
        return jnp.where(jnp.arange(logits_BxV.shape[-1]) < self.cfg.vocab_size, logits_BxV, -jnp.inf)

    def _cached_step(self, params, tokens_BxT, cache, key, sampling):
        logits, cache = nnx.merge(self.graphdef, params).decode(tokens_BxT, cache)
        return sample(self._last_logits(logits), key, sampling), cache

    def _full_step(self, params, tokens_BxT, start_B, key, sampling):
        t = tokens_BxT.shape[1]
        index_BxT = jnp.arange(t)[None]
        real_BxT = (index_BxT >= start_B[:, None]).astype(jnp.int32)  # padding is segment 0
        positions_BxT = jnp.maximum(index_BxT - start_B[:, None], 0)
        logits = nnx.merge(self.graphdef, params)(tokens_BxT, positions_BxT, real_BxT)
        return sample(self._last_logits(logits), key, sampling)

    def generate(self, prompts: list[list[int]], max_new_tokens: int, eos_id: int,
                 sampling: Sampling = Sampling(), seed: int = 0, use_cache: bool = True,
                 on_step: Callable[[np.ndarray], None] | None = None) -> list[list[int]]:
        """New token ids per prompt, stopping at EOS (included) or after max_new_tokens."""
        width = max(len(p) for p in prompts)
        start_B = np.asarray([width - len(p) for p in prompts], np.int32)
        tokens = np.zeros((len(prompts), width), np.int32)
        for row, prompt in enumerate(prompts):
            tokens[row, start_B[row]:] = prompt
        keys = jax.random.split(jax.random.key(seed), max_new_tokens)
        cache = KVCache.empty(self.cfg, start_B, width + max_new_tokens) if use_cache else None
        out, done, step_input = [], np.zeros(len(prompts), bool), jnp.asarray(tokens)
        for i in range(max_new_tokens):
            if use_cache:
                next_B, cache = self._cached(self.params, step_input, cache, keys[i], sampling)
                step_input = next_B[:, None]
            else:
                next_B = self._full(self.params, jnp.asarray(tokens), jnp.asarray(start_B), keys[i],
                                    sampling)
                tokens = np.concatenate([tokens, np.asarray(next_B)[:, None]], axis=1)
            next_B = np.where(done, -1, np.asarray(next_B))
            out.append(next_B)
            if on_step:
                on_step(next_B)
            done |= next_B == eos_id
            if done.all():
                break
        steps = np.stack(out, axis=1)
        return [[int(t) for t in row if t >= 0] for row in steps]
