"""The real train step compiled ahead of time for a target (a TPU slice, or simulated CPU devices),
and what its compiled plan says: per-chip memory, FLOPs, and the collectives it runs per step.

Nothing is allocated and no step runs; `llmjp-train --dry_run --target=...` and
benchmarks/aot.py print `plan(...)`.
"""

import math
import re
import time

import jax

from llmjp_jax.parallel.pipeline import schedule_from_config
from llmjp_jax.train.hlo import collectives

GIB = 2**30


def plan_for_target(cfg, name: str) -> dict:
    """plan() for a named target (parallel/targets.py: "v5p-8", "h100-80gb:32", ...). Call it before
    anything starts JAX's backends: this host's own backend then only traces (CPU), and the CUDA
    plugin loads without a GPU driver."""
    import os

    from llmjp_jax.parallel.gpu_targets import SKIP_CHECK
    from llmjp_jax.parallel.targets import parse_target

    target = parse_target(name)
    if not os.environ.get("JAX_PLATFORMS"):
        jax.config.update("jax_platforms", "cpu")
    os.environ.setdefault(SKIP_CHECK, "1")
    return plan(cfg, target.devices(), target.hbm_bytes, target=name)


def plan(cfg, devices, hbm_bytes: int | None = None, target: str | None = None) -> dict:
    """Compiles cfg's train step for `devices` and reports its per-chip plan (sizes in bytes)."""
    return compile_plan(cfg, devices, hbm_bytes, target)[0]


def compile_plan(cfg, devices, hbm_bytes: int | None = None, target: str | None = None):
    """(plan, compiled step); the compiled step is None when the compiler found it cannot fit
    the chip's memory (TPU: a compile-time out-of-memory error, whose figures the plan keeps)."""
    from llmjp_jax.train.loop import Run

    run = Run(cfg, workdir="", devices=devices)
    t, n = cfg.train, len(devices)
    degrees = {a: run.mesh.shape[a] for a in run.mesh.axis_names}
    abstract = run.spec.abstract
    report = {
        "target": target or f"{devices[0].platform}:{n}", "device_kind": devices[0].device_kind,
        "devices": n, "mesh": degrees, "attention": run.model_cfg.attention,
        "pipeline": _pipeline(cfg, degrees["pipeline"]),
        "global_batch": t.global_batch, "microbatches": t.microbatches, "seq_len": t.seq_len,
        "loss_chunk": t.loss_chunk, "dtype": run.model_cfg.dtype, "remat": run.model_cfg.remat,
        "params_bytes": _per_device(abstract["params"]),
        "optimizer_bytes": _per_device(abstract["opt_state"]),
        "hbm_bytes": hbm_bytes,
        "model_flops_per_device": run.model_cfg.flops_per_token(t.seq_len) * t.global_batch * t.seq_len / n,
    }
    start = time.perf_counter()
    compiled = None
    try:
        with run.context():
            compiled = run.compile_step()
    except Exception as e:  # noqa: BLE001 -- XLA's error types differ per backend
        oom = _compile_time_oom(e)
        if oom is None:
            raise
        report.update(oom)
    report["compile_s"] = round(time.perf_counter() - start, 1)
    if compiled is not None:
        report.update(_memory(compiled), xla_flops_per_device=_flops(compiled),
                      collectives=collectives(compiled.as_text()))
    report.update(_fit(report, cfg))
    return report, compiled


def _memory(compiled) -> dict:
    m = compiled.memory_analysis()
    return {"argument_bytes": m.argument_size_in_bytes, "output_bytes": m.output_size_in_bytes,
            "alias_bytes": m.alias_size_in_bytes, "temp_bytes": m.temp_size_in_bytes,
            "peak_bytes": (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
                           + m.temp_size_in_bytes)}


_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_OOM = re.compile(r"required for (?:HLO temporaries|[\w ]+?) \(([\d.]+)([KMGT])\) exceeds available HBM "
                  r"\(([\d.]+)([KMGT])\)")


def _compile_time_oom(error: Exception) -> dict | None:
    """The TPU compiler refuses a program that cannot fit HBM, saying how much it needed."""
    m = _OOM.search(str(error))
    if "RESOURCE_EXHAUSTED" not in str(error) or not m:
        return None
    need, have = float(m.group(1)) * _UNITS[m.group(2)], float(m.group(3)) * _UNITS[m.group(4)]
    return {"compile_error": str(error).splitlines()[0][:300], "temp_bytes": int(need),
            "peak_bytes": None, "compiler_hbm_bytes": int(have), "xla_flops_per_device": None,
            "collectives": {}}


def _flops(compiled) -> float | None:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if cost and "flops" in cost:
        return float(cost["flops"])
    from llmjp_jax.parallel.gpu_targets import hlo_flops

    return hlo_flops(compiled)  # compile-only GPU executables have no cost analysis


def _per_device(tree) -> int:
    """Bytes one device holds of a tree of sharded ShapeDtypeStructs."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def _pipeline(cfg, stages: int) -> dict | None:
    if stages == 1:
        return None
    s = schedule_from_config(cfg.mesh, stages)
    return {"repeats": s.repeats, "microbatches": s.microbatches,
            "bubble_fraction": round(s.bubble_fraction, 4)}


def _fit(report: dict, cfg) -> dict:
    """`fits`, and when it does not, by how much and which settings bring the peak down."""
    hbm = report.get("compiler_hbm_bytes") or report["hbm_bytes"]
    if not hbm:
        return {"fits": None}
    if report["peak_bytes"] is None:  # from a compile-time OOM: at least the temporaries it needed
        over = report["temp_bytes"] - hbm
    else:
        over = report["peak_bytes"] - hbm
    if over <= 0 and report["peak_bytes"] is not None:
        return {"fits": True, "headroom_bytes": -over}
    state = report["params_bytes"] + report["optimizer_bytes"]
    if state > hbm / 2:  # the state itself is the problem: shard it more widely
        advice = ["more chips (a bigger slice)", "mesh.fsdp or mesh.tensor or mesh.pipeline higher "
                  "(parameters and optimizer state are split over fsdp x tensor x pipeline)"]
    else:  # activations and temporaries
        advice = [f"train.microbatches higher (now {cfg.train.microbatches}: each holds fewer sequences)",
                  "model.remat='full'" if cfg.model.remat != "full" else None,
                  "train.loss_chunk > 0 (the logits in pieces)" if not cfg.train.loss_chunk else None,
                  "mesh.tensor higher (splits activations over heads and mlp)"]
    return {"fits": False, "over_bytes": over, "reduce_with": [a for a in advice if a]}


def table(report: dict) -> str:
    """The plan as a few readable lines (sizes in GiB per chip)."""
    g = lambda b: "-" if b is None else f"{b / GIB:.2f}"  # noqa: E731
    mesh = " ".join(f"{a}={d}" for a, d in report["mesh"].items())
    if report["peak_bytes"] is None:
        peak = f"the compiler stopped: it needs {g(report['temp_bytes'])} GiB of temporaries"
    else:
        peak = f"temporaries {g(report['temp_bytes'])} GiB, peak {g(report['peak_bytes'])} GiB"
    hbm = report.get("compiler_hbm_bytes") or report["hbm_bytes"]
    lines = [
        f"{report['target']} ({report['devices']} x {report['device_kind']}), mesh {mesh}, "
        f"attention={report['attention']}, compiled in {report['compile_s']} s",
        f"  per chip: parameters {g(report['params_bytes'])} GiB, optimizer state "
        f"{g(report['optimizer_bytes'])} GiB, {peak}" + (f" of {g(hbm)} GiB HBM" if hbm else ""),
        f"  FLOPs per chip per step: {report['xla_flops_per_device'] or 0:.3e} (compiler), "
        f"{report['model_flops_per_device']:.3e} (model formula)",
    ]
    coll = {k: v for k, v in report["collectives"].items() if isinstance(v, dict)}
    if coll:
        lines.append("  collectives per step: " + ", ".join(
            f"{k} {v['count']}x {g(v['bytes'])} GiB" for k, v in coll.items()))
    if report["fits"] is True:
        lines.append(f"  fits, {g(report['headroom_bytes'])} GiB to spare")
    elif report["fits"] is False:
        lines.append(f"  does NOT fit: {g(report['over_bytes'])} GiB over. Reduce it with: "
                     + "; ".join(report["reduce_with"]))
    return "\n".join(lines)
