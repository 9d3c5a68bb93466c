"""Generation: KV cache equals recomputation; batched rows equal single rows; sampling options."""

import dataclasses

import numpy as np
import pytest
from flax import nnx

from llmjp_jax.generate import Generator, Sampling
from llmjp_jax.model import Llama, LlamaConfig

CFG = LlamaConfig(vocab_size=250, num_layers=2, hidden=64, ffn=112, num_heads=4, num_kv_heads=2,
                  remat="none", init_std=0.15)
PROMPTS = [[1, 17, 99, 5, 42, 7, 8], [1, 200, 3], [1, 50, 60, 70, 80]]


@pytest.fixture(scope="module")
def generator():
    return Generator(Llama(CFG, nnx.Rngs(0)))


def test_cache_equals_recomputation_and_rows_are_independent(generator):
    cached = generator.generate(PROMPTS, 12, eos_id=2)
    full = generator.generate(PROMPTS, 12, eos_id=2, use_cache=False)
    assert cached == full
    assert all(len(row) == 12 or row[-1] == 2 for row in cached)
    for prompt, row in zip(PROMPTS, cached):
        assert generator.generate([prompt], 12, eos_id=2) == [row]


def test_stops_at_eos(generator):
    first = generator.generate([PROMPTS[0]], 8, eos_id=-5)[0]
    stop = next(i for i in range(1, 8) if first[i] not in first[:i])  # a token not seen before
    assert generator.generate([PROMPTS[0]], 8, eos_id=first[stop])[0] == first[:stop + 1]


def test_sampling_options(generator):
    greedy = generator.generate(PROMPTS, 8, eos_id=2)
    assert generator.generate(PROMPTS, 8, 2, Sampling(greedy=False, top_k=1), seed=3) == greedy
    assert generator.generate(PROMPTS, 8, 2, Sampling(greedy=False, top_p=1e-6), seed=3) == greedy
    hot = Sampling(greedy=False, temperature=5.0)
    a = generator.generate(PROMPTS, 8, 2, hot, seed=1)
    assert a == generator.generate(PROMPTS, 8, 2, hot, seed=1)
    assert a != greedy
    top5 = generator.generate([PROMPTS[0]], 1, 2, dataclasses.replace(hot, top_k=5), seed=4)[0][0]
    logits = nnx.merge(generator.graphdef, generator.params)(
        np.asarray([PROMPTS[0]]))[0, -1, :CFG.vocab_size]
    assert top5 in np.argsort(np.asarray(logits))[-5:]
