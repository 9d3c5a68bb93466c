"""First-fit packing: documents stay whole, and a packed row trains exactly like its documents alone."""

import jax
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

from llmjp_jax.data.loader import eval_batches, train_dataset
from llmjp_jax.data.mixture import load_mixture
from llmjp_jax.model import Llama, LlamaConfig
from llmjp_jax.train.loop import train
from llmjp_jax.train.loss import model_outputs, token_losses

from .conftest import read_metrics, small_config

SEQ = 96


def _rows(corpus, n, seq):
    return eval_batches(corpus["eval"], seq, 1, n, packing="first_fit")


def test_rows_hold_whole_documents_with_segments_and_positions(corpus):
    subsets = load_mixture(ConfigDict({"train_dir": corpus["train"], "mixture": {}}))
    batch = next(iter(train_dataset(subsets, SEQ, 4, seed=0, packing="first_fit")))
    assert set(batch) == {"tokens", "segment_ids", "positions"}
    for tokens, segments, positions in zip(batch["tokens"], batch["segment_ids"], batch["positions"]):
        for s in set(segments.tolist()) - {0}:
            where = np.flatnonzero(segments == s)
            assert np.array_equal(where, np.arange(where[0], where[-1] + 1))  # contiguous
            assert np.array_equal(positions[where], np.arange(where.size))
        assert np.all(tokens[segments == 0] == 0)


def test_packed_row_losses_equal_each_document_alone(corpus):
    cfg = LlamaConfig(vocab_size=4000, num_layers=2, hidden=64, ffn=128, num_heads=4, num_kv_heads=2,
                      remat="none")
    model = Llama(cfg, nnx.Rngs(0))
    rows = [r for r in _rows(corpus, 8, 1024) if len(set(r["segment_ids"][0].tolist()) - {0}) >= 2]
    assert rows, "expected rows holding several documents"
    for row in rows[:2]:
        logits, targets, mask = model_outputs(model, row)
        packed_ce = np.asarray(token_losses(logits, targets)[0])[0]
        mask = np.asarray(mask)[0]
        segments = row["segment_ids"][0]
        for s in set(segments.tolist()) - {0}:
            where = np.flatnonzero(segments == s)
            alone = row["tokens"][:, where]
            ce_alone = np.asarray(token_losses(model(alone[:, :-1]), alone[:, 1:])[0])[0]
            counted = where[:-1]  # targets inside the document
            assert mask[counted].all()
            if where[-1] < mask.size:
                assert not mask[where[-1]]  # the next document's first token is not a target
            np.testing.assert_allclose(packed_ce[counted], ce_alone, rtol=2e-5, atol=2e-5)
        assert mask.sum() == sum(np.count_nonzero(segments == s) - 1 for s in set(segments.tolist()) - {0})


def test_first_fit_training_is_sharding_invariant_and_resumes_exactly(corpus, tmp_path):
    def config(steps):
        cfg = small_config(corpus, steps=steps, checkpoint_every=5, eval_every=5)
        cfg.data.packing = "first_fit"
        cfg.optim.schedule = "constant"  # so a 5-step run is the first half of a 10-step one
        return cfg

    one = config(10)
    one.mesh.update(data=1, fsdp=1, tensor=1)
    train(one, str(tmp_path / "one"), devices=jax.devices()[:1])
    mesh = config(10)
    mesh.mesh.update(data=2, fsdp=2, tensor=2)
    train(mesh, str(tmp_path / "mesh"), devices=jax.devices())
    half = config(5)
    half.mesh.update(data=2, fsdp=2, tensor=2)
    train(half, str(tmp_path / "resumed"), devices=jax.devices())
    train(mesh, str(tmp_path / "resumed"), devices=jax.devices())
    losses = {k: [r["loss"] for r in read_metrics(tmp_path / k)] for k in ("one", "mesh", "resumed")}
    np.testing.assert_allclose(losses["mesh"], losses["one"], rtol=1e-5)
    assert losses["resumed"] == losses["mesh"]
    evals = [r.get("eval_loss") for r in read_metrics(tmp_path / "mesh")]
    assert evals[4] is not None and np.isfinite(evals[4])
