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


def test_cli_generates_from_a_run_and_prints_ids(corpus, tmp_path):
    import json
    import subprocess
    import sys

    import jax

    from llmjp_jax.data.tokenizer import Tokenizer
    from llmjp_jax.errors import MissingFileError
    from llmjp_jax.interop.export import read_run
    from llmjp_jax.train.loop import train

    from .conftest import ROOT, small_config

    cfg = small_config(corpus, steps=3, checkpoint_every=3)
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    out = subprocess.run([sys.executable, "-m", "llmjp_jax.cli.generate", f"--workdir={tmp_path}",
                          "--prompt=今日は", "--max_new_tokens=6", "--greedy", "--print_ids"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    params, saved, _ = read_run(str(tmp_path))
    with pytest.raises(MissingFileError, match="--step=2: .* has checkpoints at steps 3"):
        read_run(str(tmp_path), step=2)
    tok = Tokenizer(corpus["tokenizer"])
    model = nnx.merge(nnx.graphdef(Llama(LlamaConfig.from_dict(saved.model), nnx.Rngs(0))), params)
    expected = Generator(model).generate([[tok.bos_id, *tok.sp.encode("今日は")]], 6, tok.eos_id)
    assert ids == expected
    assert out.stdout.startswith("今日は")
    # The same run exported to a Hugging Face folder generates the same ids.
    from llmjp_jax.interop.export import export_hf

    export_hf(str(tmp_path), str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-m", "llmjp_jax.cli.generate", f"--hf_dir={tmp_path / 'hf'}",
                          "--prompt=今日は", "--max_new_tokens=6", "--greedy", "--print_ids"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected
