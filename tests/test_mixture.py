"""Mixtures: per-pass token shares equal tokens x repeats; release levels and tokenizers are enforced."""

import json
import os

import numpy as np
import pytest
from ml_collections import ConfigDict

from llmjp_jax.data.loader import train_dataset
from llmjp_jax.data.manifest import MANIFEST
from llmjp_jax.data.mixture import load_mixture, mixture_table
from llmjp_jax.data.shards import ShardWriter

# Each subset's documents use their own token id range, so a batch token tells its subset.
RANGES = {"a": (10, 100), "b": (100, 200), "c": (200, 300)}


def _write_subset(directory, name, docs, lengths, level="L1", tokenizer="same", seed=0):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    writer = ShardWriter(str(directory), docs_per_shard=50)
    lo, hi = RANGES[name]
    for _ in range(docs):
        body = rng.integers(lo, hi, rng.integers(*lengths))
        writer.write(np.concatenate([[1], body, [2]]).astype(np.int32))
    writer.close()
    manifest = {"documents": docs, "tokens": sum(s["tokens"] for s in writer.shards),
                "shards": writer.shards, "release_level": level, "language": name,
                "tokenizer": {"sha256": tokenizer, "vocab_size": 300}}
    with open(os.path.join(directory, MANIFEST), "w") as f:
        json.dump(manifest, f)
    return str(directory)


@pytest.fixture(scope="module")
def subsets_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixture")
    return {
        "a": _write_subset(root / "a", "a", 120, (5, 60), seed=1),
        "b": _write_subset(root / "b", "b", 40, (100, 400), seed=2),
        "c": _write_subset(root / "c", "c", 200, (3, 20), seed=3),
    }


def _data(mixture):
    return ConfigDict({"train_dir": "", "mixture": mixture})


def _count_pass(subsets, pass_tokens, seq_len=31):
    """Body tokens per subset in the rows that one pass of `pass_tokens` tokens fills."""
    it = iter(train_dataset(subsets, seq_len, 1, seed=3))
    counts = {n: 0 for n in RANGES}
    for _ in range(pass_tokens // (seq_len + 1)):
        row = next(it)["tokens"][0]
        for name, (lo, hi) in RANGES.items():
            counts[name] += int(((row >= lo) & (row < hi)).sum())
    return counts


def _body(subset):
    return subset.tokens - 2 * subset.manifest["documents"]  # without <s> and </s>


def test_one_pass_gives_each_subset_tokens_times_repeats(subsets_dir):
    repeats = {"a": 1.0, "b": 2.0, "c": 3.0}
    subsets = load_mixture(_data({n: {"dir": d, "repeats": repeats[n]} for n, d in subsets_dir.items()}))
    counts = _count_pass(subsets, int(sum(s.tokens * s.repeats for s in subsets)))
    for s in subsets:
        assert abs(counts[s.name] - s.repeats * _body(s)) <= 32, (s.name, counts, s.repeats * _body(s))


def test_fractional_repeats_take_that_share_of_documents(subsets_dir):
    subsets = load_mixture(_data({"a": {"dir": subsets_dir["a"], "repeats": 1.0},
                                  "c": {"dir": subsets_dir["c"], "repeats": 0.5}}))
    a, c = subsets
    counts = _count_pass(subsets, a.tokens + c.tokens // 2)
    assert abs(counts["a"] - _body(a)) <= 32 + 0.1 * _body(c)
    assert abs(counts["c"] - 0.5 * _body(c)) <= 32 + 0.1 * _body(c)


def test_levels_are_enforced(tmp_path, subsets_dir):
    lx = _write_subset(tmp_path / "lx", "a", 5, (3, 6), level="LX")
    lz = _write_subset(tmp_path / "lz", "a", 5, (3, 6), level="LZ")
    with pytest.raises(ValueError, match=r"'held'.*LX.*evaluation only"):
        load_mixture(_data({"held": {"dir": lx}}))
    with pytest.raises(ValueError, match=r"'secret'.*LZ"):
        load_mixture(_data({"secret": {"dir": lz}, "a": {"dir": subsets_dir["a"]}}))
    with pytest.raises(ValueError, match="data.mixture.a.level='L2'"):
        load_mixture(_data({"a": {"dir": subsets_dir["a"], "level": "L2"}}))


def test_subsets_must_share_a_tokenizer(tmp_path, subsets_dir):
    other = _write_subset(tmp_path / "o", "c", 5, (3, 6), tokenizer="other")
    with pytest.raises(ValueError, match="different tokenizers"):
        load_mixture(_data({"a": {"dir": subsets_dir["a"]}, "o": {"dir": other}}))


def test_missing_subset_and_bad_repeats_are_named(tmp_path, subsets_dir):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mixture(_data({"a": {"dir": str(tmp_path / "nowhere")}}))
    with pytest.raises(ValueError, match=r"data.mixture.a.repeats=0"):
        load_mixture(_data({"a": {"dir": subsets_dir["a"], "repeats": 0.0}}))


def test_mixture_table_shows_effective_shares(subsets_dir):
    subsets = load_mixture(_data({"a": {"dir": subsets_dir["a"], "repeats": 3.0},
                                  "b": {"dir": subsets_dir["b"]}}))
    table = mixture_table(subsets)
    ta, tb = subsets[0].tokens, subsets[1].tokens
    assert f"{100 * 3 * ta / (3 * ta + tb):.2f}%" in table
    assert f"{3 * ta:,}" in table and "total" in table


def test_repeats_zero_leaves_a_subset_out(tmp_path, subsets_dir):
    """An ablation's "off" level: repeats=0 drops the subset (its folder is not even read)."""
    subsets = load_mixture(_data({"a": {"dir": subsets_dir["a"]},
                                  "gone": {"dir": str(tmp_path / "nowhere"), "repeats": 0}}))
    assert [s.name for s in subsets] == ["a"]
    with pytest.raises(ValueError, match=r"data.mixture.a.repeats=-1.0 must be positive"):
        load_mixture(_data({"a": {"dir": subsets_dir["a"], "repeats": -1}}))


def test_a_missing_subset_names_its_setting(tmp_path, subsets_dir):
    """The error names data.mixture.<name>.dir, the setting to change (it named only the folder)."""
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"data\.mixture\.b\.dir"):
        load_mixture(_data({"a": {"dir": subsets_dir["a"]}, "b": {"dir": missing}}))
