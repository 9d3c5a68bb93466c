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
    # What llmjp-plot draws of this run is its metrics.jsonl (the README's figure comes this way).
    from llmjp_jax.plot import figure

    drawn = {line.get_gid(): line for ax in figure([str(tmp_path)]).axes for line in ax.get_lines()}
    name = tmp_path.name
    assert list(drawn[f"{name}:loss"].get_xdata()) == [r["step"] for r in rows]
    assert list(drawn[f"{name}:loss"].get_ydata()) == [r["loss"] for r in rows]
    assert list(drawn[f"{name}:eval_loss"].get_ydata()) == [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert [r["tokens"] for r in rows] == [r["step"] * 16 * 256 for r in rows]  # batch x sequence
