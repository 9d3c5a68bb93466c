"""Run metrics: `<workdir>/metrics.jsonl`, TensorBoard events, and a console progress line."""

import json
import os

from tensorboardX import SummaryWriter

from llmjp_jax.log import get_logger

log = get_logger()


def _format_eta(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class MetricsWriter:
    """Writes one JSON object per logged step. Only process 0 writes.

    On resume from step `resume_step`, rows after it (logged by a run that died
    before its next checkpoint) are dropped, so the file reads as one
    uninterrupted run.
    """

    def __init__(self, workdir: str, resume_step: int, total_steps: int, enabled: bool = True):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.total_steps, self.enabled = total_steps, enabled
        self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._truncate_after(resume_step)
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def _truncate_after(self, step: int):
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            rows = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        with open(self.path, "w", encoding="utf-8") as f:
            f.writelines(rows)

    def write(self, row: dict):
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                self._tb.add_scalar(key, value, row["step"])
        self._tb.flush()
        log.info(self._progress_line(row))

    def _progress_line(self, row: dict) -> str:
        parts = [f"step {row['step']}/{self.total_steps}"]
        if "loss" in row:
            parts += [f"loss {row['loss']:.4f}", f"lr {row['lr']:.2e}", f"gnorm {row['grad_norm']:.3f}",
                      f"{row['tokens_per_sec']:,.0f} tok/s", f"mfu {100 * row['mfu']:.1f}%",
                      f"{row['step_time']:.3f} s/step",
                      f"eta {_format_eta(row['step_time'] * (self.total_steps - row['step']))}"]
        if row.get("skipped_steps"):
            parts.append(f"skipped {row['skipped_steps']}")
        if "eval_loss" in row:
            parts.append(f"eval_loss {row['eval_loss']:.4f}")
        return " | ".join(parts)

    def close(self):
        if self._tb is not None:
            self._tb.close()
