"""Run metrics: `<workdir>/metrics.jsonl`, TensorBoard events, and a console progress line."""

import os

from tensorboardX import SummaryWriter

from llmjp_jax.log import get_logger
from llmjp_jax.train import rundir

log = get_logger()


def _format_eta(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class MetricsWriter:
    """Writes one JSON object per logged step. Only process 0 writes.

    metrics.jsonl reads as one uninterrupted run: on resume from step `resume_step` (and
    after a rollback) the rows after it, logged by a timeline that was abandoned, are
    dropped, as are duplicates and a torn last line.
    """

    def __init__(self, workdir: str, resume_step: int, total_steps: int, enabled: bool = True):
        self.path = os.path.join(workdir, rundir.METRICS)
        self.total_steps, self.enabled = total_steps, enabled
        self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self.truncate_after(resume_step)
        self._tb = SummaryWriter(os.path.join(workdir, rundir.TENSORBOARD))

    def truncate_after(self, step: int):
        """Keeps the rows up to `step`, one per step, in order."""
        if not self.enabled or not os.path.exists(self.path):
            return
        rows = rundir.read_rows(self.path)
        kept = rundir.timeline(rows, step)
        if kept != rows:
            rundir.write_rows(self.path, kept)

    def write(self, row: dict):
        if not self.enabled:
            return
        rundir.append_row(self.path, row)
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                self._tb.add_scalar(key, value, row["step"])
        self._tb.flush()
        log.info(self._progress_line(row))

    def _progress_line(self, row: dict) -> str:
        parts = [f"step {row['step']}/{self.total_steps}"]
        if "loss" in row:
            parts += [f"loss {row['loss']:.4f}", f"lr {row['lr']:.2e}", f"gnorm {row['grad_norm']:.3f}"]
        if "step_time" in row:
            parts += [f"{row['tokens_per_sec']:,.0f} tok/s", f"mfu {100 * row['mfu']:.1f}%",
                      f"{row['step_time']:.3f} s/step",
                      f"eta {_format_eta(row['step_time'] * (self.total_steps - row['step']))}"]
        for key, label in (("skipped_steps", "skipped"), ("spike_steps", "spikes"),
                           ("data_skipped_steps", "data skipped")):
            if row.get(key):
                parts.append(f"{label} {row[key]}")
        parts += [f"{key} {value:.4f}" for key, value in row.items()
                  if key.startswith(("eval_loss", "mc_acc/"))]
        return " | ".join(parts)

    def close(self):
        if self._tb is not None:
            self._tb.close()
