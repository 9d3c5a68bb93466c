"""Vocabulary extension: old ids keep their logits; new rows start as means of old pieces."""

import glob
import os

import jax
import numpy as np
import sentencepiece as spm
from flax import nnx

from llmjp_jax.data.tokenizer import train_tokenizer
from llmjp_jax.interop.vocab import extend_hf
from llmjp_jax.model import Llama, LlamaConfig
from llmjp_jax.model.hf import load_hf, save_hf

from .conftest import SAMPLE


def test_extended_model_keeps_old_logits(tmp_path):
    ja = sorted(glob.glob(os.path.join(SAMPLE, "train", "ja.jsonl")))
    en = sorted(glob.glob(os.path.join(SAMPLE, "train", "[ec]*.jsonl")))
    old_tok = train_tokenizer(en, str(tmp_path / "old"), vocab_size=900)
    new_tok = train_tokenizer(ja, str(tmp_path / "new"), vocab_size=1500)
    cfg = LlamaConfig(vocab_size=900, num_layers=2, hidden=64, ffn=112, num_heads=4, num_kv_heads=2,
                      remat="none")
    params = jax.device_get(nnx.to_pure_dict(nnx.state(Llama(cfg, nnx.Rngs(0)))))
    save_hf(params, cfg, str(tmp_path / "hf"), max_positions=128)
    os.link(old_tok, tmp_path / "hf" / "tokenizer.model")
    added = extend_hf(str(tmp_path / "hf"), new_tok, str(tmp_path / "ext"))
    assert len(added) > 100
    ext_params, ext_cfg = load_hf(str(tmp_path / "ext"))
    assert ext_cfg.padded_vocab % 128 == 0 and ext_cfg.padded_vocab >= 900 + len(added)

    old_sp = spm.SentencePieceProcessor(model_file=old_tok)
    merged = spm.SentencePieceProcessor(model_file=str(tmp_path / "ext" / "tokenizer.model"))
    text = "The package is built from source with a small change to the rules file."
    ids = old_sp.encode(text)
    assert merged.encode(text) == ids  # old text keeps its ids
    ja_text = "天気予報によると、明日は晴れです。"
    assert len(merged.encode(ja_text)) < len(old_sp.encode(ja_text))

    def logits(p, c):
        return np.asarray(nnx.merge(nnx.graphdef(Llama(c, nnx.Rngs(0))), p)(np.asarray([ids])))

    before, after = logits(params, cfg), logits(ext_params, ext_cfg)
    np.testing.assert_allclose(after[..., :900], before[..., :900], rtol=1e-5, atol=1e-6)

    piece = added[0]
    row = merged.piece_to_id(piece)
    parts = [i for i in old_sp.encode(piece.replace("\u2581", " ")) if i != old_sp.piece_to_id("\u2581")]
    parts = parts or old_sp.encode(piece.replace("\u2581", " "))
    np.testing.assert_allclose(ext_params["embed"][row], np.asarray(params["embed"])[parts].mean(0),
                               rtol=1e-6, atol=1e-7)
