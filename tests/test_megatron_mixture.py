"""A Megatron dataset as a mixture subset (data.mixture.<name>.megatron): the same batches, resume and
process splits as the same documents in ArrayRecord shards, and its settings checked."""

import json

import numpy as np
import pytest
from ml_collections import ConfigDict

from llmjp_jax.data.loader import train_dataset
from llmjp_jax.data.megatron import to_shards
from llmjp_jax.data.megatron_subset import open_megatron
from llmjp_jax.data.mixture import load_mixture
from llmjp_jax.data.tokenizer import Tokenizer, train_tokenizer
from llmjp_jax.errors import UserError
from tests.conftest import SAMPLE

pytest.importorskip("megatron.core.datasets.indexed_dataset", reason="megatron-core is not installed")
from tests.test_megatron import build, random_documents  # noqa: E402

SEQ, BATCH = 64, 8


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two Megatron datasets (int32; uint16 with multi-sequence documents), their shards, a tokenizer."""
    root = tmp_path_factory.mktemp("mix")
    tok = Tokenizer(train_tokenizer([f"{SAMPLE}/train/en.jsonl"], str(root / "spm"), vocab_size=600,
                                    max_sentences=2000))
    out = {"tokenizer": tok, "root": root}
    for name, dtype, split in [("a", np.int32, False), ("b", np.uint16, True)]:
        docs = random_documents(ord(name), 700, 600)
        prefix = build(str(root / f"{name}_text_document"), docs, dtype, split)
        to_shards([prefix], str(root / f"{name}_shards"), tok, docs_per_shard=200)
        out[name] = prefix
    return out


def _mixture(data, from_megatron: bool, verify: str = "auto", **a_spec) -> list:
    """Subset a (x1.5) from its Megatron dataset or its shards, and subset b from its shards."""
    first = ({"megatron": data["a"], "tokenizer": data["tokenizer"].path, "level": "L1"} if from_megatron
             else {"dir": str(data["root"] / "a_shards")})
    mixture = {"a": {**first, "repeats": 1.5, **a_spec}, "b": {"dir": str(data["root"] / "b_shards")}}
    return load_mixture(ConfigDict({"train_dir": "", "mixture": mixture, "verify_shards": verify}), 640)


def _batches(subsets, count: int, **kw) -> list[dict]:
    it = iter(train_dataset(subsets, SEQ, BATCH, seed=3, **kw))
    return [next(it) for _ in range(count)]


def _equal(left: list[dict], right: list[dict]) -> bool:
    return len(left) == len(right) and all(
        a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) for a, b in zip(left, right))


@pytest.mark.parametrize("packing", ["concat", "first_fit"])
def test_megatron_subset_gives_the_batches_of_its_shards(data, packing):
    megatron, shards = _mixture(data, True), _mixture(data, False)
    assert megatron[0].megatron and not shards[0].megatron
    assert [s.tokens for s in megatron] == [s.tokens for s in shards]
    got, expected = _batches(megatron, 40, packing=packing), _batches(shards, 40, packing=packing)
    assert _equal(got, expected)
    assert not _equal(got, _batches(megatron, 40, packing=packing, shards=4))  # a different split differs


def test_megatron_subset_resumes_exactly(data):
    subsets = _mixture(data, True)
    it = iter(train_dataset(subsets, SEQ, BATCH, seed=3))
    for _ in range(7):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    expected = [next(it) for _ in range(6)]
    resumed = iter(train_dataset(_mixture(data, True), SEQ, BATCH, seed=3))
    resumed.set_state(state)
    assert _equal([next(resumed) for _ in range(6)], expected)


@pytest.mark.parametrize("processes", [2, 4, 8])
def test_megatron_subset_global_batch_is_the_same_for_any_process_count(data, processes):
    subsets = _mixture(data, True)
    whole = _batches(subsets, 5, shards=8)
    parts = [_batches(subsets, 5, shards=8, process_index=p, process_count=processes)
             for p in range(processes)]
    joined = [{"tokens": np.concatenate([part[i]["tokens"] for part in parts])} for i in range(5)]
    assert parts[0][0]["tokens"].shape[0] == BATCH // processes and _equal(joined, whole)


def test_megatron_subset_settings_are_checked(data, tmp_path):
    for spec, says in [({"tokenizer": ""}, "needs data.mixture.a.tokenizer"),
                       ({"level": ""}, "needs data.mixture.a.level"),
                       ({"tokenizer": str(tmp_path / "none.model")}, "none.model (set by data.mixture.a"),
                       ({"megatron": str(tmp_path / "gone")}, "gone.idx")]:
        with pytest.raises(UserError) as raised:
            _mixture(data, True, **spec)
        assert says in str(raised.value), str(raised.value)
    with pytest.raises(ValueError, match="LZ"):
        _mixture(data, True, level="LZ")
    small = train_tokenizer([f"{SAMPLE}/train/en.jsonl"], str(tmp_path / "small"), vocab_size=400,
                            max_sentences=2000)
    with pytest.raises(UserError, match=r"a_text_document\.bin holds token ids .*outside the 400 pieces"):
        _mixture(data, True, tokenizer=small, verify="sha256")
    spec = {"megatron": data["a"], "tokenizer": small, "level": "L1"}
    assert open_megatron("a", spec, 640, "size")[0]["tokens"]  # "size" checks the dtype only
    with pytest.raises(UserError, match="600 pieces but the model has 500 embedding rows"):
        open_megatron("a", {**spec, "tokenizer": data["tokenizer"].path}, 500, "size")


def _train_config(data, steps: int, mesh: dict):
    from configs.tiny import get_config

    cfg = get_config()
    cfg.model.update(num_layers=2, hidden=64, ffn=128, num_heads=4, num_kv_heads=2)
    cfg.train.update(steps=steps, global_batch=BATCH, seq_len=SEQ, log_every=1, eval_every=0,
                     checkpoint_every=4, keep_last=2)
    cfg.optim.warmup_steps = 2
    cfg.mesh.update(mesh)
    cfg.data.mixture = {"a": {"megatron": data["a"], "tokenizer": data["tokenizer"].path, "level": "L1",
                              "repeats": 1.5}, "b": {"dir": str(data["root"] / "b_shards")}}
    return cfg


def test_training_on_a_megatron_subset_one_device_equals_eight_after_a_resume(data, tmp_path):
    """8 steps on one device == 4 steps on 8 devices, a restart, 4 more (data order included)."""
    import jax

    from llmjp_jax.train.loop import train
    from tests.conftest import read_metrics, train_until

    one, eight = tmp_path / "one", tmp_path / "eight"
    train(_train_config(data, 8, dict(data=1, fsdp=1, tensor=1)), str(one), devices=jax.devices()[:1])
    mesh = dict(data=2, fsdp=4, tensor=1)
    train_until(_train_config(data, 8, mesh), str(eight), jax.devices(), stop_after=4)
    assert [r["step"] for r in read_metrics(eight)] == [1, 2, 3, 4]
    train(_train_config(data, 8, mesh), str(eight), devices=jax.devices())
    losses = [[r["loss"] for r in read_metrics(run)] for run in (one, eight)]
    assert len(losses[0]) == 8 and len(jax.devices()) == 8
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
