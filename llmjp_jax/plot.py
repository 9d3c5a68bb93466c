"""Figures of runs' metrics (metrics.jsonl): loss and held-out loss, learning rate, gradient norm,
tokens/s and MFU against steps or tokens seen; several runs overlaid, skipped steps marked.

Built on matplotlib's object API (no pyplot state), so notebooks and the CLI share `figure()`.
"""

import math
import os

from llmjp_jax.errors import UserError
from llmjp_jax.train import rundir

# (panel title, metrics keys drawn in it, y-axis on a log scale)
PANELS = (
    ("loss", ("loss", "eval_loss"), False),
    ("learning rate", ("lr",), False),
    ("gradient norm", ("grad_norm",), True),
    ("tokens / s", ("tokens_per_sec",), False),
    ("MFU", ("mfu",), False),
)
# Rows count, per logging window, the steps whose update was skipped (non-finite or a loss spike).
SKIP_KEYS = ("skipped_steps", "spike_steps")


class PlotError(UserError):
    """A run that cannot be drawn; the message names its folder."""


def load_rows(workdir: str) -> list[dict]:
    """The run's metrics rows, one per step in step order (as a resumed run's history reads)."""
    path = os.path.join(workdir, rundir.METRICS)
    rows = rundir.read_rows(path)
    if not rows:
        raise PlotError(f"{path}: no metrics (is {workdir} a run folder, and has it logged a step?)")
    return rundir.timeline(rows, math.inf)


def series(rows: list[dict], key: str, x: str = "step") -> tuple[list, list]:
    """(x values, y values) of `key` over the rows that have it."""
    if x == "tokens" and any("tokens" not in r for r in rows):
        raise PlotError("these metrics have no tokens column (written before it existed): use --x=step")
    picked = [r for r in rows if r.get(key) is not None]
    return [r[x] for r in picked], [r[key] for r in picked]


def skipped(rows: list[dict], x: str = "step") -> list:
    """x of the logging rows whose window had a skipped update."""
    return [r[x] for r in rows if any(r.get(k, 0) for k in SKIP_KEYS)]


def labels(workdirs: list[str]) -> list[str]:
    """Short legend names: the folder names, or the whole paths where two would be equal."""
    names = [os.path.basename(os.path.normpath(w)) for w in workdirs]
    return names if len(set(names)) == len(names) else [os.path.normpath(w) for w in workdirs]


def figure(workdirs: list[str], x: str = "step", loss_only: bool = False):
    """A matplotlib Figure with one panel per metric and one colour per run."""
    from matplotlib.figure import Figure

    runs = [(name, load_rows(w)) for name, w in zip(labels(workdirs), workdirs)]
    panels = PANELS[:1] if loss_only else [p for p in PANELS if any(_has(rows, p[1]) for _, rows in runs)]
    fig = Figure(figsize=(7, 3.2) if loss_only else (11, 2.6 * math.ceil(len(panels) / 2)),
                 layout="constrained")
    columns = 1 if loss_only else 2
    for i, (title, keys, log_y) in enumerate(panels):
        ax = fig.add_subplot(math.ceil(len(panels) / columns), columns, i + 1)
        for colour, (name, rows) in enumerate(runs):
            _draw(ax, f"C{colour}", name, rows, keys, x, len(runs) > 1)
        ax.set_title(title)
        ax.set_xlabel("tokens seen" if x == "tokens" else "step")
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return fig


def _has(rows, keys) -> bool:
    return any(r.get(k) is not None for r in rows for k in keys)


def _draw(ax, colour: str, name: str, rows, keys, x: str, several: bool):
    for key in keys:
        xs, ys = series(rows, key, x)
        if not xs:
            continue
        held_out = key == "eval_loss"
        label = ("held-out" if held_out else "train") if key in ("loss", "eval_loss") else None
        if several:
            label = f"{name} {label}" if label else name
        ax.plot(xs, ys, color=colour, label=label, gid=f"{name}:{key}",
                linestyle="--" if held_out else "-", marker="o" if held_out else None, markersize=3)
    if "loss" in keys:
        for at in skipped(rows, x):  # a thin mark where a window skipped an update
            ax.axvline(at, color=colour, alpha=0.35, linewidth=0.8, gid=f"{name}:skipped")


def save_figure(workdirs: list[str], output: str, x: str = "step", loss_only: bool = False) -> str:
    """Draws the runs and writes the figure (PNG or SVG, by the file's suffix)."""
    if not output.lower().endswith((".png", ".svg")):
        raise PlotError(f"--output={output}: write a .png or .svg file")
    fig = figure(workdirs, x, loss_only)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=120)
    return output
