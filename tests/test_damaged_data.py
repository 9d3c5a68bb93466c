"""Damaged inputs and shards are named before (or, at the latest, when) they are read.

Before: a truncated .jsonl.gz raised a bare EOFError and left a state folder; a truncated or
overwritten shard raised a Riegeli RuntimeError naming no shard (overwritten bytes only
mid-training); an edited manifest was accepted; an empty input tokenized to 0 documents."""

import gzip
import json
import os
import shutil

import jax
import pytest

from llmjp_jax.data.manifest import ShardError, load_manifest
from llmjp_jax.data.readers import BadInputError
from llmjp_jax.data.tokenize import tokenize_files
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.train.loop import train

from .conftest import SAMPLE, small_config

SAMPLE_FILE = os.path.join(SAMPLE, "train", sorted(os.listdir(os.path.join(SAMPLE, "train")))[0])


@pytest.fixture(scope="module")
def shards(corpus, tmp_path_factory):
    """Shards of one sample file (323 documents), 2 of them."""
    out = tmp_path_factory.mktemp("shards") / "good"
    tokenize_files([SAMPLE_FILE], str(out), Tokenizer(corpus["tokenizer"]), docs_per_shard=200)  # 2 shards
    return out


def _copy(shards, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(shards, target)
    return target


def test_truncated_gzip_input_is_named_and_leaves_nothing(corpus, tmp_path):
    data = gzip.compress(open(SAMPLE_FILE, "rb").read())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match=rf"{path}: the compressed data is truncated or damaged"):
        tokenize_files([str(path)], str(tmp_path / "out"), Tokenizer(corpus["tokenizer"]))
    assert os.listdir(tmp_path / "out") == []


def test_empty_input_is_listed_and_all_empty_is_an_error(corpus, tmp_path, caplog):
    tok = Tokenizer(corpus["tokenizer"])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    manifest = tokenize_files([str(empty), SAMPLE_FILE], str(tmp_path / "out"), tok)
    assert manifest["empty_inputs"] == [str(empty)] and manifest["documents"] > 0
    assert f"Input {empty} holds no document" in caplog.text
    with pytest.raises(BadInputError, match=rf"No documents in {empty}: every input is empty or blank"):
        tokenize_files([str(empty)], str(tmp_path / "none"), tok)


def test_truncated_shard_is_named_at_start(shards, tmp_path):
    copy = _copy(shards, tmp_path)
    shard = copy / "shard-00001.array_record"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(ShardError, match=rf"Shard {shard} holds 1000 bytes, its manifest says \d+"):
        load_manifest(str(copy))


def test_overwritten_shard_is_found_by_its_sha256_at_start(shards, tmp_path):
    copy = _copy(shards, tmp_path)
    shard = copy / "shard-00000.array_record"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    load_manifest(str(copy), verify="size")  # same size and record count: only the hash tells
    with pytest.raises(ShardError, match=rf"Shard {shard} was changed after llmjp-tokenize wrote it"):
        load_manifest(str(copy), verify="auto")


def test_overwritten_shard_read_during_training_is_named(corpus, shards, tmp_path):
    """Unverified at start (data.verify_shards='size'): Riegeli finds the damage when it reads."""
    copy = _copy(shards, tmp_path)
    for name in sorted(os.listdir(copy)):
        if name.endswith(".array_record"):
            data = bytearray((copy / name).read_bytes())
            for start in (len(data) // 4, len(data) // 2):  # records, not the index at the end
                for i in range(start, start + 100):
                    data[i] ^= 0x5A
            (copy / name).write_bytes(bytes(data))
    cfg = small_config(corpus, steps=400, log_every=50)  # more than one pass over the documents
    cfg.data.update(train_dir=str(copy), eval_dir=None, verify_shards="size")
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    with pytest.raises(ShardError, match=rf"Shard {copy}/shard-\d+\.array_record: record \d+ cannot be read"):
        train(cfg, str(tmp_path / "run"), devices=jax.devices()[:1])


@pytest.mark.parametrize("edit", ["total", "shard"])
def test_edited_token_counts_are_refused(shards, tmp_path, edit):
    copy = _copy(shards, tmp_path)
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    if edit == "total":
        manifest["tokens"] += 1000
    else:
        manifest["shards"][1]["tokens"] += 1000
    path.write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="manifest.json was edited after llmjp-tokenize wrote it"):
        load_manifest(str(copy))
    del manifest["checksum"]  # as an older manifest, without one: the totals still disagree
    path.write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"tokens = \d+, but its shards hold \d+"):
        load_manifest(str(copy))
