"""What llmjp-ablate prints and draws: the design table with its aliases, and the analysis table
and bar chart (matplotlib, an optional dependency)."""

import math

from llmjp_jax.ablate.analyze import Analysis
from llmjp_jax.ablate.errors import AblateError

SIGNIFICANT = 0.05  # bars with p below this are drawn dark


def design_text(plan: dict) -> str:
    """Factors, generators, resolution, the run table (+/-) and the alias structure."""
    factors = plan["factors"]
    generators = ", ".join(plan["generators"]) or "none (full factorial)"
    lines = [f"{len(factors)} factors in {len(plan['runs'])} runs, resolution {plan['resolution']}; "
             f"generators {generators}"]
    if plan["defining_relation"]:
        lines.append("defining relation: I = " + " = ".join(plan["defining_relation"]))
    lines += [f"  {f['letter']} {f['name']}: {_levels(f)}" for f in factors]
    width = max(len(f["name"]) for f in factors)
    lines.append("")
    lines.append(f"{'run':<8}" + " ".join(f"{f['letter'] + ' ' + f['name']:>{width + 2}}" for f in factors))
    for run in plan["runs"]:
        cells = ("+" if run["levels"][f["letter"]] > 0 else "-" for f in factors)
        lines.append(f"{run['name']:<8}" + " ".join(f"{c:>{width + 2}}" for c in cells))
    lines += ["", "aliases (main effects and two-factor interactions):"]
    lines += [f"  {line}" for line in plan["aliases"] if "=" in line]
    clear = [line for line in plan["aliases"] if "=" not in line]
    if clear:
        lines.append("  aliased with no other of them: " + ", ".join(clear))
    return "\n".join(lines + _design_notes(plan))


def _design_notes(plan: dict) -> list[str]:
    notes = []
    if plan["resolution"] == "III":
        notes.append("note: resolution III: each main effect is read together with the two-factor "
                     "interactions aliased with it (above), taken to be small.")
    if len(plan["runs"]) == len(plan["factors"]) + 1:
        notes.append("note: saturated design (runs = factors + 1): no residual degrees of freedom, so "
                     "analyze gives the differences but no F, p or Cohen's f; add runs for them.")
    return notes


def _levels(factor: dict) -> str:
    parts = []
    for subset in sorted(factor["low"]):
        low, high = factor["low"][subset], factor["high"][subset]
        parts.append(f"{subset} repeats {low:g} (-) / {high:g} (+)")
    return ", ".join(parts)


def analysis_text(analysis: Analysis) -> str:
    """One row per factor: mean on, mean off, on - off, Cohen's f, F and p."""
    header = (f"{'factor':<20} {'mean on':>10} {'mean off':>10} {'on - off':>10} {'cohen f':>9} "
              f"{'F':>10} {'p':>9}")
    lines = [f"{analysis.metric}: main effects over {analysis.runs} runs (on = +, off = -)", header]
    for e in analysis.effects:
        lines.append(f"{e.letter + ' ' + e.name:<20} {e.mean_on:>10.4f} {e.mean_off:>10.4f} "
                     f"{e.difference:>+10.4f} {_num(e.cohen_f, 9, '.3f')} {_num(e.f_stat, 10, '.3f')} "
                     f"{_num(e.p_value, 9, '.4f' if e.p_value >= 1e-4 else '.1e')}")
    lines.append(f"residual: {analysis.residual_df} df, sum of squares {analysis.residual_sum_sq:.4g}; "
                 f"R^2 {analysis.r_squared:.4f}")
    lines.append("Cohen's f = sqrt(eta_p^2 / (1 - eta_p^2)), partial eta_p^2 = SS_factor / "
                 "(SS_factor + SSE).")
    lines += [f"note: {note}" for note in analysis.notes]
    return "\n".join(lines)


def _num(value: float, width: int, spec: str) -> str:
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:>{width}{spec}}"


def save_bar_chart(analysis: Analysis, path: str) -> str:
    """A horizontal bar per factor, its length on - off, dark when p < 0.05, labelled with p."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise AblateError("--png needs matplotlib: pip install matplotlib (or pip install -e '.[plot]')"
                          ) from None
    effects = analysis.effects
    figure = Figure(figsize=(7, 0.5 * len(effects) + 1.5))
    axes = figure.add_subplot()
    labels = [f"{e.letter} {e.name}" for e in effects]
    colors = ["#1f4e79" if e.p_value < SIGNIFICANT else "#9dc3e6" for e in effects]
    bars = axes.barh(labels, [e.difference for e in effects], color=colors)
    for bar, e in zip(bars, effects):
        axes.annotate("" if math.isnan(e.p_value) else f"p={e.p_value:.3g}", (bar.get_width(), bar.get_y()
                      + bar.get_height() / 2), xytext=(4 if e.difference >= 0 else -4, 0),
                      textcoords="offset points", va="center", ha="left" if e.difference >= 0 else "right")
    axes.axvline(0, color="black", linewidth=0.8)
    axes.invert_yaxis()
    axes.set_xlabel(f"{analysis.metric}: mean on - mean off")
    axes.set_title(f"Main effects over {analysis.runs} runs (dark: p < {SIGNIFICANT})")
    axes.margins(x=0.25)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
