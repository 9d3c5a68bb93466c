"""The runs of a design: each run's mixture, its llmjp-train flag file, and plan.json for analyze.

A run's flag file (`<out>/<run>.flags`, read by `llmjp-train --flagfile=...`) holds the preset,
the run's workdir and one `--config.data.mixture.<subset>.repeats=<r>` line per subset a factor
sets; subsets no factor names keep the preset's repeats.
"""

import json
import os

from llmjp_jax.ablate.aliases import alias_lines
from llmjp_jax.ablate.design import Design, roman
from llmjp_jax.ablate.errors import AblateError
from llmjp_jax.ablate.factors import Factor
from llmjp_jax.ablate.words import spell_signed
from llmjp_jax.files import write_atomic, write_json

PLAN_FILE = "plan.json"
PLAN_VERSION = 1


def build_plan(design: Design, factors: list[Factor], preset: str, runs_dir: str, out: str) -> dict:
    """Everything analyze needs, and what each run trains: levels, repeats, flag file, command."""
    letters = design.letters
    runs = [_run(run_name(number, design.runs), levels, letters, factors, runs_dir, out)
            for number, levels in enumerate(design.matrix().tolist(), 1)]
    return {
        "version": PLAN_VERSION,
        "preset": preset,
        "factors": [{"letter": a, **f.to_json()} for a, f in zip(letters, factors)],
        "generators": [str(g) for g in design.generators],
        "defining_relation": [spell_signed(w) for w in design.defining_relation()],
        "resolution": roman(design.resolution),
        "aliases": alias_lines(design),
        "runs": runs,
    }


def run_name(number: int, runs: int) -> str:
    return f"run{number:0{max(2, len(str(runs)))}d}"


def _run(name, levels, letters, factors, runs_dir, out) -> dict:
    repeats = {}
    for level, factor in zip(levels, factors):
        repeats.update(factor.repeats(level))
    flagfile = os.path.join(out, f"{name}.flags")
    return {"name": name, "levels": dict(zip(letters, levels)), "repeats": repeats,
            "overrides": overrides(repeats), "workdir": os.path.join(runs_dir, name),
            "flagfile": flagfile, "command": f"llmjp-train --flagfile={flagfile}"}


def overrides(repeats: dict[str, float]) -> list[str]:
    """The llmjp-train flags that set each subset's repeats (0.0: the subset is left out)."""
    return [f"--config.data.mixture.{subset}.repeats={float(value)!r}" for subset, value in repeats.items()]


def flagfile_text(plan: dict, run: dict) -> str:
    levels = " ".join(f"{f['letter']}:{f['name']}={'+' if run['levels'][f['letter']] > 0 else '-'}"
                      for f in plan["factors"])
    lines = [f"# llmjp-ablate {run['name']} of {len(plan['runs'])}: {levels}",
             f"--config={plan['preset']}", f"--workdir={run['workdir']}", *run["overrides"]]
    return "\n".join(lines) + "\n"


def write_plan(plan: dict, out: str) -> str:
    """Writes each run's flag file and plan.json into `out`; returns plan.json's path."""
    path = os.path.join(out, PLAN_FILE)
    if os.path.isfile(path) and _read(path) != plan:
        raise AblateError(f"--out={out} already holds another {PLAN_FILE} (its runs may have trained): "
                          "choose another --out, or delete that plan first.")
    os.makedirs(out, exist_ok=True)
    for run in plan["runs"]:
        write_atomic(run["flagfile"], flagfile_text(plan, run))
    write_json(path, plan, indent=1)
    return path


def load_plan(path: str) -> dict:
    """plan.json as design wrote it; a mistake names the file."""
    if not os.path.isfile(path):
        raise AblateError(f"--plan={path} does not exist (llmjp-ablate design writes it into --out).")
    plan = _read(path)
    if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION or not plan.get("runs"):
        raise AblateError(f"--plan={path} is not a plan.json of llmjp-ablate design "
                          f"(version {PLAN_VERSION}).")
    return plan


def _read(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AblateError(f"{path} is not JSON ({e}).") from None
