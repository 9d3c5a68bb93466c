"""The main job: the tiny preset, unchanged but for its length, learns the sample corpus."""

import jax

from configs.tiny import get_config
from llmjp_jax.train.loop import train

from .conftest import read_metrics


def test_tiny_preset_loss_falls_well_below_its_start(corpus, tmp_path):
    cfg = get_config()
    cfg.train.update(steps=100, log_every=1, eval_every=100, checkpoint_every=100)
    cfg.data.update(train_dir=corpus["train"], eval_dir=corpus["eval"])
    last = train(cfg, str(tmp_path), devices=jax.devices()[:1])
    rows = read_metrics(tmp_path)
    first_loss = rows[0]["loss"]
    assert first_loss > 7.5  # about log(4000) = 8.3 at initialisation
    assert last["loss"] < first_loss - 2.0
    assert last["eval_loss"] < first_loss - 2.0
