"""Each run's response: one number per run of the plan, in plan order.

From the run folder: the last value of a metric in its metrics.jsonl (eval_loss by default; any
key a row holds, e.g. a per-subset loss or a task accuracy). From a score table made elsewhere
(llm-jp-eval's output, a spreadsheet), mapped by run name:
  CSV   a header with the run column (--run_column, default "run") and the metric's column;
  JSON  {run: number}, {run: {metric: number}}, {run: {"scores": {metric: number}}},
        or a list of objects with the run column and the metric.
"""

import csv
import dataclasses
import json
import math
import os

from llmjp_jax.ablate.errors import MissingResultError, ResultError
from llmjp_jax.train import rundir


@dataclasses.dataclass
class Responses:
    metric: str
    source: str
    values: list[float]
    notes: list[str] = dataclasses.field(default_factory=list)


def metrics_responses(plan: dict, metric: str, runs_dir: str | None = None) -> Responses:
    """The last `metric` of each run's metrics.jsonl (its workdir, or <runs_dir>/<run name>)."""
    values, steps = [], {}
    for run in plan["runs"]:
        workdir = os.path.join(runs_dir, run["name"]) if runs_dir else run["workdir"]
        step, value = _last_value(os.path.join(workdir, rundir.METRICS), metric, run["name"])
        values.append(value)
        steps[run["name"]] = step
    return Responses(metric, rundir.METRICS, values, _step_notes(steps))


def _last_value(path: str, metric: str, run: str) -> tuple[int, float]:
    if not os.path.isfile(path):
        raise MissingResultError(f"{run}: {path} does not exist: the run has not trained yet, or its "
                                 "folder is elsewhere (--runs_dir).")
    try:
        rows = rundir.read_rows(path)
    except ValueError as e:
        raise ResultError(str(e)) from None
    hits = [(row.get("step", 0), row[metric]) for row in rows if _is_number(row.get(metric))]
    if not hits:
        seen = sorted({key for row in rows for key in row if _is_number(row[key])})
        raise ResultError(f"{run}: {path} has no row with {metric!r} (--metric; its rows have "
                          f"{', '.join(seen) or 'no numbers'}).")
    step, value = hits[-1]
    _check_finite(value, f"{run}: {path}, {metric!r} at step {step}")
    return int(step), float(value)


def _step_notes(steps: dict[str, int]) -> list[str]:
    """A warning when runs were read at different steps (one stopped early or is still training)."""
    last = max(steps.values())
    early = [f"{name} at step {step}" for name, step in steps.items() if step != last]
    return [f"runs read at different steps: {', '.join(early)}; the others at {last}."] if early else []


def table_responses(plan: dict, path: str, metric: str, run_column: str = "run") -> Responses:
    """Each run's score in a CSV or JSON table, found by the run's name."""
    if not os.path.isfile(path):
        raise MissingResultError(f"--scores={path} does not exist.")
    read = _read_csv if path.endswith(".csv") else _read_json
    scores = read(path, metric, run_column)
    missing = [run["name"] for run in plan["runs"] if scores.get(run["name"]) is None]
    if missing:
        raise ResultError(f"--scores={path} has no {metric!r} for run(s) {', '.join(missing)} (it has "
                          f"{', '.join(sorted(scores)) or 'none'}).")
    values = []
    for run in plan["runs"]:
        value = scores[run["name"]]
        if not _is_number(value):
            raise ResultError(f"--scores={path}: {run['name']}'s {metric!r} is {value!r}, not a number.")
        _check_finite(value, f"--scores={path}: {run['name']}'s {metric!r}")
        values.append(float(value))
    return Responses(metric, path, values)


def _read_csv(path: str, metric: str, run_column: str) -> dict:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for column, flag in ((run_column, "--run_column"), (metric, "--metric")):
            if column not in (reader.fieldnames or []):
                raise ResultError(f"--scores={path} has no column {column!r} ({flag}; its columns: "
                                  f"{', '.join(reader.fieldnames or [])}).")
        return {row[run_column]: _number(row[metric]) for row in reader}


def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _read_json(path: str, metric: str, run_column: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultError(f"--scores={path} is not JSON or CSV ({e}).") from None
    if isinstance(data, list):
        rows = [row for row in data if isinstance(row, dict) and run_column in row]
        return {row[run_column]: row.get(metric) for row in rows}
    if isinstance(data, dict):
        return {run: _score(entry, metric) for run, entry in data.items()}
    raise ResultError(f"--scores={path} is neither {{run: score}} nor a list of rows.")


def _score(entry, metric: str):
    if isinstance(entry, dict):
        entry = entry.get("scores", entry) if metric not in entry else entry
        return entry.get(metric) if isinstance(entry, dict) else entry
    return entry


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_finite(value: float, where: str):
    if not math.isfinite(value):
        raise ResultError(f"{where} is {value}: a run that diverged has no response to analyze.")
