"""Loss spikes: a poisoned stretch of data is skipped and rolled back by itself, an LR blow-up
stops with advice, a resume makes the same decisions, and train.skip_steps drops data by hand."""

import jax
import numpy as np
import pytest

from llmjp_jax.train import rundir
from llmjp_jax.train.driver import LossSpikeError
from llmjp_jax.train.loop import Run, train

from .conftest import read_metrics, small_config, train_until

POISON = range(30, 35)  # batches 30..34 (0-based) are read by steps 31..35
STEPS = 70


def _config(corpus, **train_overrides):
    cfg = small_config(corpus, **{"steps": STEPS, "checkpoint_every": 5, "keep_last": 2, **train_overrides})
    cfg.train.spike.update(window=16, min_history=8)
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    return cfg


class _Poisoned:
    """The run's data iterator with random tokens in place of the batches at POISON; its
    position is part of its state, so rollbacks and resumes see the same stretch."""

    def __init__(self, inner, vocab: int):
        self.inner, self.vocab, self.position = inner, vocab, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.inner)
        if self.position in POISON:
            rng = np.random.default_rng(self.position)
            batch = {**batch, "tokens": rng.integers(4, self.vocab, batch["tokens"].shape, dtype=np.int32)}
        self.position += 1
        return batch

    def get_state(self):
        return {**self.inner.get_state(), "poison_position": self.position}

    def set_state(self, state):
        state = dict(state)
        self.position = state.pop("poison_position")
        self.inner.set_state(state)


@pytest.fixture
def poisoned(monkeypatch):
    original = Run._data_iter
    monkeypatch.setattr(Run, "_data_iter", lambda run: _Poisoned(original(run), 4000))


def _final_loss(workdir) -> float:
    return read_metrics(workdir)[-1]["loss"]


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("clean")
    train(_config(corpus), str(workdir), devices=jax.devices()[:1])
    return workdir


def test_poisoned_stretch_is_rolled_back_and_skipped(corpus, tmp_path, clean, poisoned):
    train(_config(corpus), str(tmp_path), devices=jax.devices()[:1])
    events = rundir.read_rows(str(tmp_path / "events.jsonl"))
    rollbacks = [e for e in events if e["event"] == "rollback"]
    assert [(e["step"], e["to_step"], e["skip"]) for e in rollbacks] == [(33, 30, [31, 33])]
    assert [e["step"] for e in events if e["event"] == "spike"] == [31, 32, 33, 34, 35]
    rows = {r["step"]: r for r in read_metrics(tmp_path)}
    assert sorted(rows) == list(range(1, STEPS + 1))  # one timeline: the abandoned rows are gone
    assert [s for s, r in rows.items() if r["data_skipped_steps"]] == [31, 32, 33]
    assert [s for s, r in rows.items() if r["spike_steps"]] == [34, 35]
    assert abs(_final_loss(tmp_path) / _final_loss(clean) - 1) < 0.02
    kept = (tmp_path / "checkpoints").iterdir()
    assert sorted(int(p.name) for p in kept) == [STEPS - 5, STEPS]


def test_unguarded_poisoned_run_is_what_the_guard_prevents(corpus, tmp_path, clean, poisoned):
    """The same poison with the guard off trains on it: right after it, the loss is >5% worse
    than the clean run's (the guarded run is within 2% there too)."""
    cfg = _config(corpus)
    cfg.train.spike.enabled = False
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    after = slice(35, 38)  # steps 36..38
    unguarded = [r["loss"] for r in read_metrics(tmp_path)[after]]
    reference = [r["loss"] for r in read_metrics(clean)[after]]
    assert min(u / c - 1 for u, c in zip(unguarded, reference)) > 0.05


def test_resume_after_a_rollback_makes_the_same_decisions(corpus, tmp_path, poisoned):
    cfg = _config(corpus)
    train(cfg, str(tmp_path / "straight"), devices=jax.devices()[:1])
    for stop in (32, 34, 41):  # mid-spikes (before the rollback), after it, and later
        train_until(cfg, tmp_path / "killed", jax.devices()[:1], stop_after=stop)
    train(cfg, str(tmp_path / "killed"), devices=jax.devices()[:1])
    fields = ("step", "loss", "grad_norm", "spike_steps", "data_skipped_steps")
    straight, killed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "killed")
    assert [[r.get(k) for k in fields] for r in killed] == [[r.get(k) for k in fields] for r in straight]


def test_learning_rate_blow_up_stops_with_advice(corpus, tmp_path):
    """Before: loss 8.3 -> 46 -> 119 with peak_lr=1.0, no warning, exit 0. Now a loss above the
    uniform guess's (ln 4000 + 1 nat) is a spike from the first step; rollbacks to step 5 skip
    data, which does not help, so the run stops naming optim.peak_lr."""
    cfg = _config(corpus, steps=60)
    cfg.optim.update(peak_lr=1.0, warmup_steps=40)
    with pytest.raises(LossSpikeError, match=r"again after 3 rollbacks.*lower optim\.peak_lr"):
        train(cfg, str(tmp_path), devices=jax.devices()[:1])
    events = rundir.read_rows(str(tmp_path / "events.jsonl"))
    assert len([e for e in events if e["event"] == "rollback"]) == 3
    uniform = np.log(4096) + 1
    rows = read_metrics(tmp_path)
    assert all(r["loss"] < uniform for r in rows if "loss" in r and not r["spike_steps"])


def test_skip_steps_by_hand_drops_those_batches(corpus, tmp_path, clean):
    from llmjp_jax.optim import make_schedule

    cfg = _config(corpus, steps=8, skip_steps="3-4,7")
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows if "loss" not in r] == [3, 4, 7]
    assert [r["data_skipped_steps"] for r in rows] == [0, 0, 1, 1, 0, 0, 1, 0]
    # The step counter moves on: step s uses the schedule's LR at s - 1, skipped steps included.
    schedule = make_schedule(cfg.optim, 8)
    np.testing.assert_allclose([r["lr"] for r in rows if "lr" in r],
                               [float(schedule(s - 1)) for s in (1, 2, 5, 6, 8)], rtol=1e-6)
    base = read_metrics(clean)
    assert rows[0]["loss"] == base[0]["loss"] and rows[1]["loss"] == base[1]["loss"]
