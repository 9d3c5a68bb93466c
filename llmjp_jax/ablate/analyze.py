"""The main-effects model of a two-level design: per factor, on - off, Cohen's f, F and p.

y = b0 + sum_j b_j x_j + e with x_j = -1 (off, low) / +1 (on, high), fitted by least squares. Each
factor's sum of squares is b_j^2 / [(X'X)^-1]_jj: the rise in the residual sum of squares when it is
dropped (type II = type III here; n b_j^2 for an orthogonal design). Then, with the residual sum of
squares SSE on n - k - 1 degrees of freedom:
  F = SS_j / (SSE / df), p = P(F(1, df) > F);
  partial eta^2 = SS_j / (SS_j + SSE), Cohen's f = sqrt(eta^2 / (1 - eta^2)) = sqrt(SS_j / SSE).
A saturated design (df = 0) has no error estimate: F, p and f are NaN, the differences stand.
"""

import dataclasses
import math

import numpy as np

from llmjp_jax.ablate.errors import AblateError


@dataclasses.dataclass(frozen=True)
class Effect:
    letter: str
    name: str
    mean_on: float
    mean_off: float
    difference: float  # mean on - mean off = 2 b_j
    sum_sq: float
    partial_eta_sq: float
    cohen_f: float
    f_stat: float
    p_value: float


@dataclasses.dataclass(frozen=True)
class Analysis:
    metric: str
    runs: int
    effects: list[Effect]
    residual_df: int
    residual_sum_sq: float
    r_squared: float
    notes: list[str]

    def to_json(self) -> dict:
        """The analysis as plain JSON (NaN, where there is no error estimate, as null)."""
        return _without_nan(dataclasses.asdict(self))


def _without_nan(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def fit_main_effects(levels: np.ndarray, y: np.ndarray, letters: list[str], names: list[str],
                     metric: str = "response", notes: list[str] | None = None) -> Analysis:
    """The main-effects analysis of responses `y` (n) at `levels` (n x k of -1 / +1)."""
    levels, y = np.asarray(levels, dtype=float), np.asarray(y, dtype=float)
    n, k = levels.shape
    model = np.column_stack([np.ones(n), levels])
    if np.linalg.matrix_rank(model) < k + 1:
        raise AblateError("The plan's runs do not separate the main effects (its level columns are "
                          "dependent); make the plan again with llmjp-ablate design.")
    inverse = np.linalg.inv(model.T @ model)
    beta = inverse @ model.T @ y
    residual = y - model @ beta
    df = n - k - 1
    sse = float(residual @ residual) if df else 0.0
    f_dist = _f_distribution() if df else None
    effects = [_effect(levels[:, j], y, beta[j + 1] ** 2 / inverse[j + 1, j + 1], sse, df, f_dist,
                       letters[j], names[j]) for j in range(k)]
    total = float(((y - y.mean()) ** 2).sum())
    r_squared = 1.0 - sse / total if total else math.nan
    notes = list(notes or [])
    if not df:
        notes.append(f"{n} runs for {k} factors leave no residual degrees of freedom: F, p and Cohen's f "
                     "cannot be estimated (use more runs).")
    return Analysis(metric, n, effects, df, sse, r_squared, notes)


def _effect(column, y, sum_sq, sse, df, f_dist, letter, name) -> Effect:
    on, off = float(y[column > 0].mean()), float(y[column < 0].mean())
    sum_sq = float(sum_sq)
    if df:
        eta = sum_sq / (sum_sq + sse) if sum_sq + sse else math.nan
        f_stat = sum_sq / (sse / df) if sse else math.inf
        cohen = math.sqrt(sum_sq / sse) if sse else math.inf
        p = float(f_dist.sf(f_stat, 1, df))
    else:
        eta = cohen = f_stat = p = math.nan
    return Effect(letter, name, on, off, on - off, sum_sq, eta, cohen, f_stat, p)


def _f_distribution():
    """scipy's F distribution (p-values), imported only here: analyze is an optional tool."""
    try:
        from scipy.stats import f
    except ImportError:
        raise AblateError("analyze needs scipy for the p-values: pip install scipy") from None
    return f


def analyze_plan(plan: dict, values: list[float], metric: str, notes: list[str] | None = None) -> Analysis:
    """The analysis of one response per run of `plan`, in plan order."""
    letters = [f["letter"] for f in plan["factors"]]
    names = [f["name"] for f in plan["factors"]]
    levels = np.array([[run["levels"][a] for a in letters] for run in plan["runs"]])
    return fit_main_effects(levels, np.array(values), letters, names, metric, notes)
