r"""llmjp-ablate: corpus ablations as two-level fractional factorial designs, planned and analyzed.

  llmjp-ablate design --config=configs/tiny_mixture.py --factor=ja=1,4 --factor=en=0.5,1 \
      --factor=code=0.5,2 --runs=4 --out=runs/ablate
  llmjp-ablate design --config=PRESET --factors=factors.json --runs=8 --generators=D=AB,E=AC --out=DIR
  llmjp-ablate analyze --plan=runs/ablate/plan.json --metric=eval_loss --png=effects.png
  llmjp-ablate analyze --plan=runs/ablate/plan.json --scores=scores.csv --metric=AVG

design prints the runs (+/- per factor), the generators, resolution and alias structure, and writes
into --out one flag file per run (train it with `llmjp-train --flagfile=<out>/<run>.flags`) and
plan.json. analyze reads each run's response (the last --metric in <workdir>/metrics.jsonl, or
the --scores table by run name) and prints per factor mean on, mean off, on - off, Cohen's f, F
and p of the main-effects model. analyze needs scipy; --png needs matplotlib.

A factor changes subset repeats of the preset's data.mixture between a low (-) and a high (+) level
(repeats 0 leaves a subset out). --factors=FILE: JSON (a list or {"factors": [...]}) or a .py
file defining FACTORS, each e.g. {"name": "megamath"} (in/out, in at the preset's repeats, or
"repeats": 2), {"name": "fineweb", "low": 0.5, "high": 1} ("subset": ... if not the name), or
{"name": "stack_v2", "low": {"stack_v1": 1, "stack_v2": 0}, "high": {"stack_v1": 0, "stack_v2": 1}}.
How designs are chosen, and the formulas: llmjp_jax/ablate/README.md.
"""

import json

from absl import flags

from llmjp_jax.cli.common import run
from llmjp_jax.errors import UserError
from llmjp_jax.log import get_logger

log = get_logger()

_CONFIG = flags.DEFINE_string("config", None, "design: the preset whose data.mixture the factors change.")
_FACTORS = flags.DEFINE_string("factors", None, "design: a .json or .py file of factors (format: --help).")
_FACTOR = flags.DEFINE_multi_string("factor", [], "design: NAME (in/out), NAME=REPEATS (in/out at those "
                                    "repeats) or NAME=LOW,HIGH (two repeat counts); repeatable.")
_RUNS = flags.DEFINE_integer("runs", None, "design: number of runs, a power of two (default: the fewest "
                             "that separate the main effects).")
_GENERATORS = flags.DEFINE_string("generators", None, "design: e.g. D=AB,E=AC (default: maximum resolution).")
_OUT = flags.DEFINE_string("out", "runs/ablate", "design: folder for the flag files and plan.json.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", None, "design: the runs' workdirs go under it (default --out); "
                                "analyze: read <runs_dir>/<run>/metrics.jsonl, not the plan's workdirs.")
_PLAN = flags.DEFINE_string("plan", None, "analyze: the plan.json that design wrote.")
_METRIC = flags.DEFINE_string("metric", "eval_loss", "analyze: the response: a metrics.jsonl key or a "
                              "--scores column.")
_SCORES = flags.DEFINE_string("scores", None, "analyze: a CSV or JSON score table by run name, instead of "
                              "the runs' metrics.jsonl.")
_RUN_COLUMN = flags.DEFINE_string("run_column", "run", "analyze: the --scores column holding run names.")
_PNG = flags.DEFINE_string("png", None, "analyze: also draw the effects as a bar chart into this PNG.")
_JSON = flags.DEFINE_string("json", None, "analyze: also write the analysis as JSON into this file.")

COMMANDS = ("design", "analyze")


class UsageError(UserError):
    """No or an unknown subcommand, or stray arguments."""


def _main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        given = " ".join(argv[1:]) or "none"
        raise UsageError(f"name one subcommand, {' or '.join(COMMANDS)} (got {given}): e.g. "
                         "llmjp-ablate design --config=PRESET --factor=ja=1,4 ... (see --help).")
    {"design": design, "analyze": analyze}[argv[1]]()


def design():
    from llmjp_jax.ablate.design import make_design
    from llmjp_jax.ablate.factors import load_preset_mixture, make_factors
    from llmjp_jax.ablate.plan import build_plan, write_plan
    from llmjp_jax.ablate.report import design_text

    if not _CONFIG.value:
        raise UsageError("design needs --config=PRESET: the preset whose data.mixture the factors change.")
    mixture = load_preset_mixture(_CONFIG.value)
    specs, source = _factor_specs()
    factors = make_factors(specs, source, mixture)
    runs = 1 << len(factors).bit_length() if _RUNS.value is None else _RUNS.value
    chosen = make_design(len(factors), runs, _GENERATORS.value)
    plan = build_plan(chosen, factors, _CONFIG.value, _RUNS_DIR.value or _OUT.value, _OUT.value)
    path = write_plan(plan, _OUT.value)
    print(design_text(plan))
    log.info("Wrote %d flag files and %s; train each run with: %s", len(plan["runs"]), path,
             plan["runs"][0]["command"])


def _factor_specs() -> tuple[list, str]:
    from llmjp_jax.ablate.factors import load_factor_file, parse_factor_flag

    if bool(_FACTORS.value) == bool(_FACTOR.value):
        raise UsageError("design needs the factors: either --factors=FILE or --factor flags "
                         "(one or the other).")
    if _FACTORS.value:
        return load_factor_file(_FACTORS.value), f"--factors={_FACTORS.value}"
    return [parse_factor_flag(text) for text in _FACTOR.value], "--factor"


def analyze():
    from llmjp_jax.ablate.analyze import analyze_plan
    from llmjp_jax.ablate.plan import load_plan
    from llmjp_jax.ablate.report import analysis_text, save_bar_chart
    from llmjp_jax.ablate.results import metrics_responses, table_responses

    if not _PLAN.value:
        raise UsageError("analyze needs --plan=PLAN.json (written by llmjp-ablate design).")
    plan = load_plan(_PLAN.value)
    if _SCORES.value:
        responses = table_responses(plan, _SCORES.value, _METRIC.value, _RUN_COLUMN.value)
    else:
        responses = metrics_responses(plan, _METRIC.value, _RUNS_DIR.value)
    result = analyze_plan(plan, responses.values, responses.metric, responses.notes)
    print(analysis_text(result))
    if _JSON.value:
        with open(_JSON.value, "w", encoding="utf-8") as f:
            json.dump(result.to_json(), f, indent=1)
        log.info("Wrote %s", _JSON.value)
    if _PNG.value:
        log.info("Wrote %s", save_bar_chart(result, _PNG.value))


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
