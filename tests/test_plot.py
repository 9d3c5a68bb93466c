"""llmjp-plot: the curves drawn are the rows of metrics.jsonl (a resumed run's history), runs
overlay, skipped steps are marked, and the files are real PNG / SVG."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from llmjp_jax.plot import PlotError, figure, save_figure  # noqa: E402

from .conftest import ROOT  # noqa: E402


def _write_run(folder, rows):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def _row(step, loss, **extra):
    return {"step": step, "tokens": step * 4096, "loss": loss, "grad_norm": 1.0 / step, "lr": 1e-3,
            "tokens_per_sec": 1000.0 + step, "mfu": 0.3, "skipped_steps": 0, "spike_steps": 0, **extra}


@pytest.fixture
def two_runs(tmp_path):
    a, b = str(tmp_path / "base"), str(tmp_path / "ablation")
    # Run a was resumed after step 20: step 20 is written twice (the second row wins), and the
    # window ending at step 30 skipped a spiking update.
    _write_run(a, [_row(10, 5.0), _row(20, 4.5), _row(20, 4.4, eval_loss=4.6), _row(30, 4.0, spike_steps=1),
                   _row(40, 3.5, eval_loss=3.7)])
    _write_run(b, [_row(10, 5.1), _row(20, 4.8, eval_loss=4.9)])
    return a, b


def _lines(fig):
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}


def test_curves_are_the_metrics_rows_and_runs_overlay(two_runs):
    lines = _lines(figure(list(two_runs)))
    assert list(lines["base:loss"].get_xdata()) == [10, 20, 30, 40]
    assert list(lines["base:loss"].get_ydata()) == [5.0, 4.4, 4.0, 3.5]
    assert list(lines["base:eval_loss"].get_ydata()) == [4.6, 3.7]
    assert list(lines["ablation:loss"].get_ydata()) == [5.1, 4.8]
    assert list(lines["ablation:grad_norm"].get_ydata()) == [0.1, 0.05]
    assert list(lines["base:skipped"].get_xdata()) == [30, 30]  # a vertical mark at step 30
    assert "ablation:skipped" not in lines
    by_tokens = _lines(figure(list(two_runs), x="tokens", loss_only=True))
    assert list(by_tokens["base:loss"].get_xdata()) == [40960, 81920, 122880, 163840]
    assert "base:lr" not in by_tokens


def test_cli_writes_png_and_svg(two_runs, tmp_path):
    for name, magic in (("loss.png", b"\x89PNG"), ("loss.svg", b"<?xml")):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, "-m", "llmjp_jax.cli.plot", *two_runs, f"--output={out}"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes().startswith(magic)


def test_a_folder_without_metrics_is_named(tmp_path):
    with pytest.raises(PlotError, match="empty_run.*no metrics"):
        save_figure([str(tmp_path / "empty_run")], str(tmp_path / "x.png"))
    _write_run(str(tmp_path / "old"), [{"step": 10, "loss": 5.0}])
    with pytest.raises(PlotError, match="--x=step"):
        figure([str(tmp_path / "old")], x="tokens")
    with pytest.raises(PlotError, match="png or .svg"):
        save_figure([str(tmp_path / "old")], str(tmp_path / "x.jpg"))
