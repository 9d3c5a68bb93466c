"""The model: parameter counts against the architecture formula, and equivalent execution modes."""

import dataclasses
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llmjp_jax.model import Llama, LlamaConfig

from .conftest import ROOT

PRESETS = sorted(glob.glob(os.path.join(ROOT, "configs", "llmjp*", "*.py")))
PRESETS = [p for p in PRESETS if not p.endswith("__init__.py")]


def _load(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("preset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _count(cfg: LlamaConfig) -> int:
    abstract = nnx.state(nnx.eval_shape(lambda: Llama(cfg, nnx.Rngs(0))))
    return sum(x.size for x in jax.tree.leaves(abstract))


def _formula(m) -> int:
    """Written out independently of LlamaConfig.num_params."""
    vocab = -(-m.vocab_size // m.vocab_multiple) * m.vocab_multiple
    dh = m.head_dim or m.hidden // m.num_heads
    per_layer = (m.hidden * dh * (m.num_heads * 2 + m.num_kv_heads * 2)
                 + 3 * m.hidden * m.ffn + 2 * m.hidden)
    return (1 if m.tie_embeddings else 2) * vocab * m.hidden + m.num_layers * per_layer + m.hidden


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: os.path.relpath(p, ROOT))
def test_preset_parameter_count_matches_formula(path):
    model = _load(path).model
    assert _count(LlamaConfig.from_dict(model)) == _formula(model)


def test_llmjp3_440m_matches_published_count():
    cfg = _load(os.path.join(ROOT, "configs", "llmjp3", "440m.py"))
    assert cfg.model.vocab_size == 99_487
    assert _count(LlamaConfig.from_dict(cfg.model)) == 447_251_456


TINY = LlamaConfig(vocab_size=300, num_layers=3, hidden=64, ffn=96, num_heads=4, num_kv_heads=2,
                   remat="none", scan=True)


def _logits_and_grad(cfg, tokens):
    model = Llama(cfg, nnx.Rngs(0))
    graphdef, params = nnx.split(model)

    def loss(p):
        logits = nnx.merge(graphdef, p)(tokens)
        return jnp.mean(jax.nn.logsumexp(logits, -1)), logits

    (_, logits), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return logits, grads


@pytest.mark.parametrize("change", [dict(scan=False), dict(remat="full"), dict(remat="save_dots")])
def test_execution_modes_agree(change):
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 300)
    ref_logits, ref_grads = _logits_and_grad(TINY, tokens)
    logits, grads = _logits_and_grad(dataclasses.replace(TINY, **change), tokens)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_causal_prefix_logits_do_not_see_the_future():
    tokens = jax.random.randint(jax.random.key(2), (1, 12), 0, 300)
    model = Llama(TINY, nnx.Rngs(0))
    full = model(tokens)
    prefix = model(tokens[:, :7])
    np.testing.assert_allclose(full[:, :7], prefix, rtol=1e-5, atol=1e-6)


def test_gqa_equals_mha_with_repeated_kv_heads():
    """A GQA model equals an MHA model whose K/V weights repeat each KV head."""
    tokens = jax.random.randint(jax.random.key(3), (2, 10), 0, 300)
    gqa = Llama(TINY, nnx.Rngs(0))
    mha_cfg = dataclasses.replace(TINY, num_kv_heads=TINY.num_heads)
    mha = Llama(mha_cfg, nnx.Rngs(0))
    groups = TINY.num_heads // TINY.num_kv_heads
    graphdef, state = nnx.split(mha)
    params = nnx.to_pure_dict(nnx.state(gqa))
    for name in ("wk", "wv"):
        params["blocks"]["attn"][name] = jnp.repeat(params["blocks"]["attn"][name], groups, axis=2)
    mha = nnx.merge(graphdef, params)
    np.testing.assert_allclose(mha(tokens), gqa(tokens), rtol=1e-5, atol=1e-6)


def test_tied_embeddings_drop_the_head():
    tied = dataclasses.replace(TINY, tie_embeddings=True)
    assert _count(tied) == _count(TINY) - TINY.padded_vocab * TINY.hidden
    tokens = jnp.zeros((1, 4), jnp.int32)
    assert Llama(tied, nnx.Rngs(0))(tokens).shape == (1, 4, TINY.padded_vocab)


def test_document_masks_make_a_packed_row_equal_separate_documents():
    model = Llama(TINY, nnx.Rngs(0))
    a = jax.random.randint(jax.random.key(4), (1, 5), 0, 300)
    b = jax.random.randint(jax.random.key(5), (1, 7), 0, 300)
    packed = jnp.concatenate([a, b], axis=1)
    segments = jnp.asarray([[1] * 5 + [2] * 7])
    positions = jnp.asarray([list(range(5)) + list(range(7))])
    logits = model(packed, positions, segments)
    np.testing.assert_allclose(logits[:, :5], model(a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits[:, 5:], model(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("length", [256, 512, 1024])
@pytest.mark.parametrize("packed", [False, True])
def test_block_causal_attention_equals_full_masked_attention(length, packed):
    """The query blocks that skip all-masked key blocks give the full masked softmax's result."""
    from llmjp_jax.model.attention import attend, causal_attention, same_document
    from llmjp_jax.model.attention import causal_block as _causal_block

    assert length // _causal_block(length) > 1  # more than one block, or nothing is tested
    keys = jax.random.split(jax.random.key(0), 4)
    q = jax.random.normal(keys[0], (2, length, 4, 16))
    k, v = (jax.random.normal(key, (2, length, 2, 16)) for key in keys[1:3])
    segments = jnp.sort(jax.random.randint(keys[3], (2, length), 1, 5), axis=1) if packed else None
    visible = jnp.tril(jnp.ones((length, length), bool))[None]
    if packed:
        visible = visible & same_document(segments)
    np.testing.assert_allclose(causal_attention(q, k, v, segments), attend(q, k, v, visible),
                               rtol=1e-5, atol=1e-6)


def test_head_backward_keeps_the_logit_gradient_in_place():
    """The output head's weight gradient reads the [tokens, vocab] logit gradient as it is.

    Written as `x_BxTxD @ head` (a 3-D dot), XLA:CPU transposed that whole gradient into a
    [vocab, tokens] copy before the weight-gradient matmul: about 0.4 s of a 2.7 s step on
    the cpu_small benchmark. The head goes through `dense` (one 2-D matmul) instead.
    """
    from llmjp_jax.train.loss import loss_sums

    cfg = dataclasses.replace(TINY, vocab_size=1024)
    graphdef, params = nnx.split(Llama(cfg, nnx.Rngs(0)), nnx.Param)
    tokens = {"tokens": jnp.zeros((2, 49), jnp.int32)}
    grad = jax.jit(jax.grad(lambda p: loss_sums(graphdef, p, tokens)[0]))
    hlo = grad.lower(params).compile().as_text()
    assert "f32[2,48,1024]" in hlo  # the logits are there, in [B, T, V] order
    assert "f32[1024,96]" not in hlo, "the logit gradient is transposed to [vocab, tokens]"
