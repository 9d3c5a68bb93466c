"""Hugging Face interop: round trip is bit-identical; transformers' logits equal ours."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sentencepiece as spm
from flax import nnx

from llmjp_jax.model import Llama, LlamaConfig
from llmjp_jax.model.hf import load_hf, save_hf

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BASE = LlamaConfig(vocab_size=250, num_layers=2, hidden=64, ffn=112, num_heads=4, num_kv_heads=4,
                   remat="none", rope_theta=10_000.0, norm_eps=1e-5)
VARIANTS = {
    "mha_untied": {},
    "gqa_untied": {"num_kv_heads": 2},
    "gqa_tied": {"num_kv_heads": 1, "tie_embeddings": True},
    "head_dim_rope500k": {"head_dim": 24, "rope_theta": 500_000.0, "norm_eps": 1e-6},
}


def _random_params(cfg, seed=0):
    """A random model whose norm scales are not all ones, so every tensor's mapping is checked."""
    params = nnx.to_pure_dict(nnx.state(Llama(cfg, nnx.Rngs(seed))))
    rng = np.random.default_rng(seed)

    def perturb(path, p):
        is_norm = "scale" in jax.tree_util.keystr(path)
        return np.asarray(p) + (rng.normal(0, 0.3, p.shape).astype(np.float32) if is_norm else 0)

    return jax.tree_util.tree_map_with_path(perturb, params)


def _architecture(cfg):
    return (cfg.padded_vocab, cfg.dh, cfg.num_layers, cfg.hidden, cfg.ffn, cfg.num_heads,
            cfg.num_kv_heads, cfg.rope_theta, cfg.norm_eps, cfg.tie_embeddings)


def _hf_logits(folder, tokens):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(np.asarray(tokens))).logits.numpy()


@pytest.mark.parametrize("change", VARIANTS.values(), ids=VARIANTS.keys())
def test_export_matches_transformers_and_round_trips(tmp_path, change):
    cfg = dataclasses.replace(BASE, **change)
    params = _random_params(cfg)
    save_hf(params, cfg, str(tmp_path), max_positions=64)
    tokens = jax.random.randint(jax.random.key(7), (2, 17), 0, cfg.vocab_size)
    ours = nnx.merge(nnx.graphdef(Llama(cfg, nnx.Rngs(0))), params)(tokens)
    np.testing.assert_allclose(_hf_logits(str(tmp_path), tokens), ours, atol=1e-4, rtol=1e-4)
    loaded, loaded_cfg = load_hf(str(tmp_path))
    assert _architecture(loaded_cfg) == _architecture(cfg)
    flat, flat_loaded = jax.tree.leaves_with_path(params), jax.tree.leaves_with_path(loaded)
    assert [p for p, _ in flat] == [p for p, _ in flat_loaded]
    for (path, a), (_, b) in zip(flat, flat_loaded):
        assert np.array_equal(np.asarray(a), b), path


def test_sharded_export_has_an_index(tmp_path):
    params = _random_params(BASE)
    files = save_hf(params, BASE, str(tmp_path), max_positions=64, shard_bytes=200_000)
    assert len(files) > 1
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(files)
    loaded, _ = load_hf(str(tmp_path))
    assert np.array_equal(loaded["blocks"]["mlp"]["w_up"], np.asarray(params["blocks"]["mlp"]["w_up"]))
    tokens = jnp.arange(10)[None] % BASE.vocab_size
    np.testing.assert_allclose(_hf_logits(str(tmp_path), tokens),
                               nnx.merge(nnx.graphdef(Llama(BASE, nnx.Rngs(0))), params)(tokens),
                               atol=1e-4, rtol=1e-4)


def test_a_missing_or_misshapen_tensor_is_named(tmp_path):
    save_hf(_random_params(BASE), BASE, str(tmp_path), max_positions=64)
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(tmp_path / "model.safetensors"))
    name = "model.layers.1.self_attn.k_proj.weight"
    bad = {**tensors, name: tensors[name][:, :-1]}
    save_file(bad, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=rf"{name} has shape \(64, 63\), config.json implies \(64, 64\)"):
        load_hf(str(tmp_path))
    save_file({k: v for k, v in tensors.items() if k != name}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=f"{name} is missing"):
        load_hf(str(tmp_path))


def test_scaled_embedding_cannot_be_exported(tmp_path):
    cfg = dataclasses.replace(BASE, scaled_embed=True)
    with pytest.raises(ValueError, match="model.scaled_embed"):
        save_hf(_random_params(BASE), cfg, str(tmp_path), max_positions=64)


def test_trained_run_exports_through_the_cli(corpus, tmp_path):
    import os
    import subprocess
    import sys

    from llmjp_jax.interop.export import read_run
    from llmjp_jax.train.loop import train

    from .conftest import ROOT, small_config

    cfg = small_config(corpus, steps=3, checkpoint_every=3)
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    train(cfg, str(tmp_path / "run"), devices=jax.devices()[:1])
    out = subprocess.run([sys.executable, "-m", "llmjp_jax.cli.convert", "to-hf",
                          f"--workdir={tmp_path / 'run'}", f"--output={tmp_path / 'hf'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(os.listdir(tmp_path / "hf")) == [
        "config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
        "tokenizer.json", "tokenizer.model", "tokenizer_config.json"]
    text = "日本語の文章と English text, 12345."
    sp = spm.SentencePieceProcessor(model_file=corpus["tokenizer"])
    assert transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")(text).input_ids == [
        sp.bos_id(), *sp.encode(text)]
    params, saved_cfg, step = read_run(str(tmp_path / "run"))
    assert step == 3
    model_cfg = LlamaConfig.from_dict(saved_cfg.model)
    tokens = jnp.arange(24)[None] % 4000
    ours = nnx.merge(nnx.graphdef(Llama(model_cfg, nnx.Rngs(0))), params)(tokens)
    np.testing.assert_allclose(_hf_logits(str(tmp_path / "hf"), tokens), ours, atol=1e-4, rtol=1e-4)


def test_training_continues_from_an_exported_model(corpus, tmp_path):
    """A run initialised from a Hugging Face folder starts with exactly those parameters."""
    from llmjp_jax.data.loader import train_dataset
    from llmjp_jax.data.mixture import load_mixture
    from llmjp_jax.interop.export import export_hf, read_run
    from llmjp_jax.train.loop import train
    from llmjp_jax.train.loss import loss_sums

    from .conftest import read_metrics, small_config

    one = jax.devices()[:1]
    first = small_config(corpus, steps=3, checkpoint_every=3)
    first.mesh.update(data=1, fsdp=1, tensor=1)
    train(first, str(tmp_path / "first"), devices=one)
    export_hf(str(tmp_path / "first"), str(tmp_path / "hf"))
    params, _, _ = read_run(str(tmp_path / "first"))
    cont = small_config(corpus, steps=2, init_params_from=str(tmp_path / "hf"), seed=5)
    cont.mesh.update(data=1, fsdp=1, tensor=1)
    train(cont, str(tmp_path / "cont"), devices=one)
    subsets = load_mixture(cont.data)
    batch = next(iter(train_dataset(subsets, cont.train.seq_len, cont.train.global_batch, seed=5)))
    graphdef = nnx.graphdef(Llama(LlamaConfig.from_dict(cont.model), nnx.Rngs(0)))
    ce, _, count = loss_sums(graphdef, params, batch)
    assert read_metrics(tmp_path / "cont")[0]["loss"] == pytest.approx(float(ce / count), rel=1e-6)
    wrong = small_config(corpus, steps=2, init_params_from=str(tmp_path / "hf"))
    wrong.model.ffn = 256
    wrong.mesh.update(data=1, fsdp=1, tensor=1)
    with pytest.raises(ValueError, match="ffn=128, this config has 256"):
        train(wrong, str(tmp_path / "wrong"), devices=one)
    # Fields that change the function but not the shapes are compared too (they were not).
    wrong = small_config(corpus, steps=2, init_params_from=str(tmp_path / "hf"))
    wrong.model.rope_theta = 500_000.0
    wrong.mesh.update(data=1, fsdp=1, tensor=1)
    with pytest.raises(ValueError, match="rope_theta=10000.0, this config has 500000.0"):
        train(wrong, str(tmp_path / "wrong_rope"), devices=one)


@pytest.mark.parametrize("change", [{}, {"num_kv_heads": 2, "tie_embeddings": True}], ids=["mha", "gqa_tied"])
def test_greedy_generation_matches_transformers(tmp_path, change):
    from llmjp_jax.generate import Generator

    cfg = dataclasses.replace(BASE, init_std=0.15, **change)
    params = _random_params(cfg, seed=3)
    save_hf(params, cfg, str(tmp_path), max_positions=64)
    prompt = [1, 45, 12, 200, 7]
    ours = Generator(nnx.merge(nnx.graphdef(Llama(cfg, nnx.Rngs(0))), params)).generate(
        [prompt], 32, eos_id=2)[0]
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32)
    with torch.no_grad():
        theirs = model.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False,
                                attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    assert ours == theirs[0, len(prompt):].tolist()
    assert len(ours) == 32 or ours[-1] == 2
