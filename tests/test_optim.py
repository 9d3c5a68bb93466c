"""Learning-rate schedules against their closed-form formulas, and the optimizer's settings."""

import math

import jax
import jax.numpy as jnp
import pytest
from ml_collections import ConfigDict

from llmjp_jax.config import default_config
from llmjp_jax.optim import decay_mask, make_optimizer, make_schedule

PEAK, WARMUP, TOTAL = 3e-4, 100, 1000


def _optim(**kw) -> ConfigDict:
    o = default_config().optim
    o.update({"peak_lr": PEAK, "warmup_steps": WARMUP, "min_lr_ratio": 0.1, **kw})
    return o


def cosine_formula(step):
    if step < WARMUP:
        return PEAK * step / WARMUP
    progress = min((step - WARMUP) / (TOTAL - WARMUP), 1.0)
    return PEAK * 0.1 + (PEAK - PEAK * 0.1) * 0.5 * (1 + math.cos(math.pi * progress))


def wsd_formula(step, shape, start, length, end_ratio=0.1):
    end = PEAK * end_ratio
    if step < WARMUP:
        return PEAK * step / WARMUP
    if step < start:
        return PEAK
    frac = min((step - start) / length, 1.0)
    shaped = {"linear": 1 - frac, "cosine": 0.5 * (1 + math.cos(math.pi * frac)),
              "minus_sqrt": 1 - math.sqrt(frac)}[shape]
    return end + (PEAK - end) * shaped


CHECK_STEPS = [0, 1, 50, WARMUP, 101, 400, 700, 799, 800, 850, 900, 975, 999, TOTAL]


def test_cosine_matches_formula():
    schedule = make_schedule(_optim(schedule="cosine"), TOTAL)
    for step in CHECK_STEPS:
        assert float(schedule(step)) == pytest.approx(cosine_formula(step), rel=1e-5, abs=1e-12), step
    assert float(schedule(550)) == pytest.approx(PEAK * 0.55, rel=1e-5)  # decay midpoint


@pytest.mark.parametrize("shape", ["linear", "cosine", "minus_sqrt"])
def test_wsd_matches_formula(shape):
    schedule = make_schedule(_optim(schedule="wsd", decay_shape=shape, decay_steps=200), TOTAL)
    for step in CHECK_STEPS:
        assert float(schedule(step)) == pytest.approx(wsd_formula(step, shape, 800, 200),
                                                      rel=1e-5, abs=1e-12), (shape, step)


def test_wsd_minus_sqrt_to_zero_from_a_chosen_start():
    """LLM-jp-4: decay from a stable checkpoint (here step 600) over 100 steps to 0."""
    optim = _optim(schedule="wsd", decay_shape="minus_sqrt", decay_steps=100, decay_start=600,
                   min_lr_ratio=0.0)
    schedule = make_schedule(optim, 700)
    assert float(schedule(599)) == pytest.approx(PEAK)
    assert float(schedule(625)) == pytest.approx(PEAK * (1 - math.sqrt(0.25)), rel=1e-5)
    assert float(schedule(650)) == pytest.approx(PEAK * (1 - math.sqrt(0.5)), rel=1e-5)
    assert float(schedule(700)) == pytest.approx(0.0, abs=1e-12)


def test_constant_after_warmup():
    schedule = make_schedule(_optim(schedule="constant"), TOTAL)
    assert [float(schedule(s)) for s in (0, 50, 100, 999)] == pytest.approx([0, PEAK / 2, PEAK, PEAK])


def test_large_eps_warns_loudly(caplog):
    import logging

    logger = logging.getLogger("llmjp_jax")
    logger.addHandler(caplog.handler)
    try:
        make_optimizer(_optim(eps=1e-5), TOTAL)
    finally:
        logger.removeHandler(caplog.handler)
    assert "eps=1e-05" in caplog.text and "1e-8" in caplog.text


def test_default_eps_is_1e_8_and_norms_are_not_decayed():
    assert default_config().optim.eps == 1e-8
    params = {"w": jnp.ones((2, 2)), "scale": jnp.ones(2)}
    assert decay_mask(params) == {"w": True, "scale": False}
    tx = make_optimizer(_optim(schedule="constant", warmup_steps=0, weight_decay=0.5), TOTAL)
    state = tx.init(params)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, state, params)
    assert float(jnp.abs(updates["scale"]).max()) == 0.0
    assert float(updates["w"][0, 0]) == pytest.approx(-PEAK * 0.5)
