"""The planner's output: a table of the best fitting layouts, their --config.* overrides, the
rejection counts, and the same as JSON for scripts."""

from llmjp_jax.plan.planner import distinct_meshes

GIB = 2**30


def _row(i: int, r: dict) -> str:
    lay, m, t = r["layout"], r["memory"], r["time"]
    return (f"{i:>3}  {lay.short():<48} {m['with_margin'] / GIB:7.1f} {r['headroom_bytes'] / GIB:7.1f} "
            f"{t['step_s']:8.2f} {t['tokens_per_s']:11,.0f} {t['mfu']:5.1%} {t['bubble']:6.1%}  "
            f"{t['main_comm']} {t['main_comm_s']:.2f} s")


def text(result: dict, hw, num_devices: int, top: int = 10, by_mesh: bool = True) -> str:
    """The human-readable report."""
    rows = distinct_meshes(result) if by_mesh else result["fitting"]
    lines = [f"{num_devices} x {hw.name} ({hw.hbm_bytes / GIB:.1f} GiB HBM, {hw.peak_flops / 1e12:.0f} "
             f"TFLOP/s bf16, {hw.per_node} per node, {result['processes']} processes): "
             f"{result['candidates']} layouts, {result['valid']} valid, {len(result['fitting'])} fit; "
             f"planned in {result['seconds']} s",
             f"{'#':>3}  {'layout':<48} {'mem GiB':>7} {'free':>7} {'step s':>8} {'tokens/s':>11} "
             f"{'MFU':>5} {'bubble':>6}  main communication"]
    lines += [_row(i, r) for i, r in enumerate(rows[:top], 1)]
    if not rows:
        lines.append("  (no layout fits: the rejections below say which settings to change)")
    if by_mesh:
        lines.append("(the best layout of each mesh; mem = predicted peak + margin, free = HBM - mem)")
    lines.append("\nOverrides:")
    for i, r in enumerate(rows[:top], 1):
        lines.append(f"{i:>3}  " + " ".join(r["layout"].overrides()))
    lines.append("\nRejected:")
    lines += [f"{n:>8}  {why}" for why, n in result["rejected"].most_common()]
    return "\n".join(lines)


def row_json(r: dict) -> dict:
    lay, mem = r["layout"], r["memory"]
    return {"layout": lay.short(), "mesh": {a: lay.degree(a) for a in ("data", "fsdp", "tensor", "pipeline")},
            "overrides": lay.overrides(),
            "memory_gib": {k: round(b / GIB, 3) for k, b in mem["parts"].items()},
            "peak_gib": round(mem["peak"] / GIB, 3), "with_margin_gib": round(mem["with_margin"] / GIB, 3),
            "headroom_gib": round(r["headroom_bytes"] / GIB, 3), "fits": r["fits"],
            "time": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in r["time"].items()}}


def as_dict(result: dict, hw, num_devices: int, top: int = 10, by_mesh: bool = True) -> dict:
    """What --json prints."""
    rows = distinct_meshes(result) if by_mesh else result["fitting"]
    return {"hardware": hw.name, "devices": num_devices, "processes": result["processes"],
            "hbm_gib": round(hw.hbm_bytes / GIB, 2),
            "candidates": result["candidates"], "valid": result["valid"], "fitting": len(result["fitting"]),
            "seconds": result["seconds"], "top": [row_json(r) for r in rows[:top]],
            "rejected": dict(result["rejected"])}


def check_table(rows: list[dict]) -> str:
    """Predicted vs compiled per-device peak, for --check ("OOM": the compiler refused the layout)."""
    lines = [f"{'layout':<48} {'predicted':>9} {'compiled':>9} {'ratio':>6}  compiler"]
    for c in rows:
        got = c["compiled_bytes"]
        shown = f"{c['compiled_gib']:9.2f}" if got is not None else f"OOM {c['oom_gib']:.1f}"
        ratio = f"{c['predicted_bytes'] / got:6.2f}" if got else "-"
        compiler = c["compiler"] + (f" ({c['note']})" if c.get("note") else "")
        lines.append(f"{c['layout']:<48} {c['predicted_gib']:9.2f} {shown:>9} {ratio:>6}  {compiler}")
    return "\n".join(lines)
