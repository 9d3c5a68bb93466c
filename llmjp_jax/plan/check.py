"""--check: compile layouts with a real compiler and put the compiled per-device peak next to the
prediction. TPU hardware compiles with the TPU compiler (libtpu, train/aot.plan_for_target); GPUs
with XLA:GPU where the CUDA plugin is installed; anything else, or when that compiler is missing,
with XLA:CPU on simulated devices (then the prediction uses the XLA:CPU fit, memory.COEF["cpu"])."""

import copy

from llmjp_jax.parallel.targets import TargetError
from llmjp_jax.plan import hardware, planner

GIB = 2**30


def compile_layout(cfg, lay, hw, num_devices: int, cpu_devices=None) -> dict:
    """One row: predicted and compiled peak (GiB); compiled is None when the compiler refused it for
    lack of memory (`oom_gib`: the temporaries it asked for)."""
    from llmjp_jax.train import aot

    run_cfg = lay.apply(copy.deepcopy(cfg))
    name = hardware.target_name(hw, num_devices) if cpu_devices is None else None
    report, platform, note = None, "cpu", ""
    if name:
        try:
            report, platform = aot.plan_for_target(run_cfg, name), hw.platform
        except TargetError as e:
            note = f"{name} not available: {str(e)[:80]}"
    if report is None:
        import jax

        devices = list(cpu_devices or jax.devices("cpu"))[:num_devices]
        if len(devices) < num_devices:
            raise TargetError(f"--check on XLA:CPU needs {num_devices} CPU devices, {len(devices)} exist.")
        name = f"cpu:{num_devices}"
        report = aot.plan(run_cfg, devices, hw.hbm_bytes, target=name)
    pred = planner.evaluate(run_cfg, lay, hw, platform)
    peak = report.get("peak_bytes")
    return {"layout": lay.short(), "compiler": name, "platform": platform,
            "predicted_bytes": pred["memory"]["peak"], "compiled_bytes": peak,
            "predicted_gib": round(pred["memory"]["peak"] / GIB, 3),
            "predicted_with_margin_gib": round(pred["memory"]["with_margin"] / GIB, 3),
            "predicted_fits": pred["fits"], "compiled_gib": None if peak is None else round(peak / GIB, 3),
            "oom_gib": None if peak is not None else round(report["temp_bytes"] / GIB, 3),
            "compiled_fits": report.get("fits"), "hbm_gib": round(hw.hbm_bytes / GIB, 2),
            "compile_s": report.get("compile_s"), "note": note}


def check(cfg, rows: list[dict], hw, num_devices: int, cpu_devices=None) -> list[dict]:
    """compile_layout for each of `rows` (planner results)."""
    return [compile_layout(cfg, r["layout"], hw, num_devices, cpu_devices) for r in rows]
