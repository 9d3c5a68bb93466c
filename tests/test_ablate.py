"""llmjp-ablate: designs are balanced and orthogonal with the alias structure their columns show,
defaults reach the maximum resolution, analyze recovers planted effects with statsmodels' F and p,
and the CLI goes design -> flag files -> analyze, with one-line errors for bad input."""

import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from llmjp_jax.ablate.aliases import alias_classes, alias_lines
from llmjp_jax.ablate.analyze import fit_main_effects
from llmjp_jax.ablate.design import DEFAULT_GENERATORS, default_design, make_design, search_design
from llmjp_jax.ablate.errors import AblateError, DesignError, FactorError, ResultError
from llmjp_jax.ablate.factors import make_factors, parse_factor_flag
from llmjp_jax.ablate.report import save_bar_chart
from llmjp_jax.ablate.results import table_responses
from llmjp_jax.ablate.words import spell
from llmjp_jax.errors import UserError

from .conftest import ROOT

# Known maximum resolution of a 2^(k-p) design (NIST/SEMATECH e-Handbook 5.3.3.4.7; Montgomery 8.14).
MAX_RESOLUTION = {
    (3, 4): 3, (4, 8): 4, (5, 8): 3, (6, 8): 3, (7, 8): 3,
    (5, 16): 5, (6, 16): 4, (7, 16): 4, (8, 16): 4, (9, 16): 3, (10, 16): 3,
    (6, 32): 6, (7, 32): 4, (8, 32): 4, (9, 32): 4, (7, 64): 7, (8, 64): 5,
}
MIXTURE = {"ja": 2.0, "en": 1.0, "code": 0.5, "math": 1.0, "par": 1.0}


def _column(matrix: np.ndarray, letters: str, word) -> np.ndarray:
    return np.prod([matrix[:, letters.index(a)] for a in word], axis=0)


# ---- designs ----------------------------------------------------------------------------------

def test_2_5_2_has_8_balanced_orthogonal_runs_with_its_generators():
    design = make_design(5, 8)
    x = design.matrix()
    assert x.shape == (8, 5)
    assert (x.sum(axis=0) == 0).all() and ((x == 1).sum(axis=0) == 4).all()  # each factor on in 4 runs
    np.testing.assert_array_equal(x.T @ x, 8 * np.eye(5))  # orthogonal main-effect columns
    assert [str(g) for g in design.generators] == ["D=AB", "E=AC"]
    np.testing.assert_array_equal(x[:, 3], x[:, 0] * x[:, 1])
    np.testing.assert_array_equal(x[:, 4], x[:, 0] * x[:, 2])
    assert sorted(spell(w) for _, w in design.defining_relation()) == ["ABD", "ACE", "BCDE"]
    assert design.resolution == 3
    assert len({tuple(row) for row in x.tolist()}) == 8  # no run repeated


def test_2_5_2_alias_structure():
    assert alias_lines(make_design(5, 8)) == [
        "A = BD = CE", "B = AD", "C = AE", "D = AB", "E = AC", "BC = DE", "BE = CD"]


@pytest.mark.parametrize("factors,runs,generators", [
    (5, 8, None), (5, 8, "D=-AB,E=BC"), (6, 16, None), (7, 16, None), (4, 8, "D=-ABC"), (7, 8, None),
    (5, 16, None), (8, 32, None), (3, 8, None)])
def test_alias_classes_are_the_equal_columns(factors, runs, generators):
    """Two low-order effects are aliased exactly when their columns are equal or opposite."""
    design = make_design(factors, runs, generators)
    x, letters = design.matrix(), design.letters
    assert (x.T @ x == runs * np.eye(factors)).all()
    for members in alias_classes(design):
        (_, first), *rest = members
        for sign, word in rest:
            np.testing.assert_array_equal(_column(x, letters, word), sign * _column(x, letters, first))
    effects = [w for order in (1, 2) for w in itertools.combinations(letters, order)]
    listed = {frozenset(w): i for i, members in enumerate(alias_classes(design)) for _, w in members}
    assert set(listed) == {frozenset(e) for e in effects}  # each effect in one class
    for a, b in itertools.combinations(effects, 2):
        product = _column(x, letters, a) * _column(x, letters, b)
        aliased = abs(product.sum()) == runs
        assert aliased == (listed[frozenset(a)] == listed[frozenset(b)]), (a, b)


def _resolution_from_columns(design) -> int | None:
    """The fewest factors whose column product is constant: the shortest word equal to +-I."""
    x, letters = design.matrix(), design.letters
    for size in range(1, design.factors + 1):
        for word in itertools.combinations(letters, size):
            if abs(_column(x, letters, word).sum()) == design.runs:
                return size
    return None


@pytest.mark.parametrize("factors,runs", sorted(MAX_RESOLUTION))
def test_default_designs_reach_the_maximum_resolution(factors, runs):
    design = default_design(factors, runs)
    assert design.resolution == MAX_RESOLUTION[factors, runs]
    assert _resolution_from_columns(design) == design.resolution
    x = design.matrix()
    assert (x.sum(axis=0) == 0).all() and (x.T @ x == runs * np.eye(factors)).all()


@pytest.mark.parametrize("factors,runs", sorted(DEFAULT_GENERATORS))
def test_tabulated_generators_have_minimum_aberration(factors, runs):
    """The table's word-length pattern equals the best over every set of generators."""
    searched = search_design(factors, runs)
    assert searched is not None
    assert default_design(factors, runs).word_length_pattern() == searched.word_length_pattern()


def test_full_factorial_and_user_generators():
    full = make_design(3, 8)
    assert full.resolution is None and full.generators == ()
    assert sorted(map(tuple, full.matrix().tolist())) == sorted(itertools.product((-1, 1), repeat=3))
    mine = make_design(6, 16, "E=ABC,F=ABD")
    assert [str(g) for g in mine.generators] == ["E=ABC", "F=ABD"] and mine.resolution == 4
    np.testing.assert_array_equal(mine.matrix()[:, 5], np.prod(mine.matrix()[:, [0, 1, 3]], axis=1))


@pytest.mark.parametrize("factors,runs,generators,message", [
    (5, 6, None, "--runs=6 is not a power of two"),
    (5, 4, None, "--runs=4 is too few for 5 factors"),
    (5, 64, None, "more than the full factorial"),
    (5, 8, "D=AB;E=AC", "is not of the form D=AB"),
    (5, 8, "D=AB,E=A C2", "is not of the form D=AB"),
    (5, 8, "D=AB,E=AX", "unknown factor X"),
    (5, 8, "D=AB,F=AC", "unknown factor F"),
    (5, 8, "D=AB", "must define exactly D, E"),
    (5, 8, "D=AB,E=A", "the same column as A"),
    (5, 8, "D=AB,E=AD", "base factors ABC only"),
    (5, 8, "D=AB,E=AAB", "repeats a letter"),
    (5, 8, "D=AB,E=AB", "defining word DE"),
    (5, 8, "D=AB,D=AC", "gives D twice"),
])
def test_bad_designs_are_refused(factors, runs, generators, message):
    with pytest.raises(DesignError, match=message.replace("(", r"\(")) as caught:
        make_design(factors, runs, generators)
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)


# ---- factors ----------------------------------------------------------------------------------

def test_factor_specs():
    flags = [parse_factor_flag(text) for text in ("ja=1,4", "code", "math=3")]
    swap = {"name": "swap", "low": {"en": 1, "par": 0}, "high": {"en": 0, "par": 2}}
    factors = make_factors([*flags, swap], "--factor", MIXTURE)
    assert [(f.low, f.high) for f in factors] == [
        ({"ja": 1.0}, {"ja": 4.0}), ({"code": 0.0}, {"code": 0.5}),  # in = the preset's repeats
        ({"math": 0.0}, {"math": 3.0}), ({"en": 1, "par": 0}, {"en": 0, "par": 2})]


@pytest.mark.parametrize("specs,message", [
    ([{"name": "ja", "low": 1, "high": 4}, {"name": "ja", "subset": "en"}], "two factors are named 'ja'"),
    ([{"name": "web", "low": 1, "high": 2}], "unknown subset 'web'"),
    ([{"name": "ja", "low": 1, "hihg": 2}], "unknown key"),
    ([{"name": "ja", "low": 2, "high": 2}], "same at both levels"),
    ([{"name": "ja", "low": -1, "high": 2}], "must be a number >= 0"),
    ([{"name": "ja", "low": 1}], "give both"),
    ([{"name": "a", "subset": "ja"}, {"name": "b", "subset": "ja", "low": 1, "high": 3}],
     "both set the repeats"),
    ([], "non-empty list"),
])
def test_bad_factors_are_refused(specs, message):
    with pytest.raises(FactorError, match=message):
        make_factors(specs, "--factors=f.json", MIXTURE)


@pytest.mark.parametrize("text", ["ja=1,2,3", "ja=one", "=1,2"])
def test_bad_factor_flags(text):
    with pytest.raises(FactorError, match="NAME=LOW,HIGH"):
        parse_factor_flag(text)


# ---- analysis ---------------------------------------------------------------------------------

PLANTED = np.array([-0.20, 0.10, 0.0, 0.05, -0.08])  # on - off of each factor


def _responses(x: np.ndarray, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 3.0 + x @ (PLANTED[:x.shape[1]] / 2) + rng.normal(0.0, noise, len(x))


def test_analyze_recovers_planted_effects():
    x = make_design(5, 16).matrix()
    result = fit_main_effects(x, _responses(x), list("ABCDE"), ["ja", "en", "code", "math", "par"])
    differences = np.array([e.difference for e in result.effects])
    np.testing.assert_allclose(differences, PLANTED, atol=0.02)  # noise sd of a difference: 0.005
    for e, planted in zip(result.effects, PLANTED):
        assert (e.p_value < 1e-3) if planted else (e.p_value > 0.01), e
        if planted:
            assert np.sign(e.difference) == np.sign(planted)
    assert result.residual_df == 10
    big, null = result.effects[0], result.effects[2]
    assert big.cohen_f > 5 > null.cohen_f


def _statsmodels_anova(x: np.ndarray, y: np.ndarray):
    import pandas as pd  # the test extra's reference implementation
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    letters = [chr(ord("A") + j) if j < 8 else f"F{j}" for j in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=letters).assign(y=y)
    fit = smf.ols("y ~ " + " + ".join(letters), data=frame).fit()
    return anova_lm(fit, typ=2), letters


@pytest.mark.parametrize("factors,runs,generators,seed", [
    (5, 8, None, 1), (5, 16, None, 2), (7, 16, None, 3), (6, 32, None, 4), (5, 8, "D=-AB,E=BC", 5)])
def test_f_and_p_equal_statsmodels(factors, runs, generators, seed):
    x = make_design(factors, runs, generators).matrix()
    y = _responses(x, seed, noise=0.03) if factors <= 5 else np.random.default_rng(seed).normal(3, 0.1, runs)
    table, letters = _statsmodels_anova(x, y)
    result = fit_main_effects(x, y, letters, letters)
    resid = table.loc["Residual"]
    assert result.residual_df == resid["df"]
    assert result.residual_sum_sq == pytest.approx(resid["sum_sq"], rel=1e-9)
    for e in result.effects:
        row = table.loc[e.letter]
        assert e.sum_sq == pytest.approx(row["sum_sq"], rel=1e-9)
        assert e.f_stat == pytest.approx(row["F"], rel=1e-9)
        assert e.p_value == pytest.approx(row["PR(>F)"], rel=1e-9, abs=1e-12)
        eta = row["sum_sq"] / (row["sum_sq"] + resid["sum_sq"])
        assert e.partial_eta_sq == pytest.approx(eta, rel=1e-9)
        assert e.cohen_f == pytest.approx(math.sqrt(eta / (1 - eta)), rel=1e-9)
        column = x[:, letters.index(e.letter)]
        assert e.mean_on == pytest.approx(y[column > 0].mean())
        assert e.mean_off == pytest.approx(y[column < 0].mean())


def test_saturated_design_has_no_f_test():
    x = make_design(7, 8).matrix()
    result = fit_main_effects(x, np.random.default_rng(0).normal(size=8), list("ABCDEFG"), list("ABCDEFG"))
    assert result.residual_df == 0
    assert all(math.isnan(e.p_value) and math.isnan(e.f_stat) for e in result.effects)
    assert any("no residual degrees of freedom" in n for n in result.notes)
    assert result.to_json()["effects"][0]["p_value"] is None  # plain JSON, no NaN
    assert all(math.isfinite(e.difference) for e in result.effects)


def test_missing_optional_libraries_name_their_install(monkeypatch, tmp_path):
    x = make_design(3, 8).matrix()
    fit = fit_main_effects(x, _responses(x), list("ABC"), list("ABC"))
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # importing it now raises ImportError
    with pytest.raises(AblateError, match="--png needs matplotlib: pip install matplotlib"):
        save_bar_chart(fit, str(tmp_path / "e.png"))
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(AblateError, match="pip install scipy"):
        fit_main_effects(x, _responses(x), list("ABC"), list("ABC"))


def test_dependent_levels_are_refused():
    x = make_design(3, 4).matrix()
    with pytest.raises(AblateError, match="do not separate the main effects"):
        fit_main_effects(np.column_stack([x, x[:, 0]]), np.zeros(4), list("ABCD"), list("ABCD"))


# ---- score tables -----------------------------------------------------------------------------

PLAN2 = {"runs": [{"name": "run01"}, {"name": "run02"}]}


@pytest.mark.parametrize("name,text", [
    ("s.csv", "model,run,AVG\nm1,run02,0.5\nm0,run01,0.25\n"),
    ("s.json", '{"run01": 0.25, "run02": 0.5}'),
    ("s.json", '{"run01": {"AVG": 0.25, "x": 1}, "run02": {"scores": {"AVG": 0.5}}}'),
    ("s.json", '[{"run": "run02", "AVG": 0.5}, {"run": "run01", "AVG": 0.25}]'),
])
def test_score_tables(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert table_responses(PLAN2, str(tmp_path / name), "AVG").values == [0.25, 0.5]


@pytest.mark.parametrize("text,metric,message", [
    ("run,AVG\nrun01,0.25\n", "AVG", "no 'AVG' for run\\(s\\) run02"),
    ("run,AVG\nrun01,0.25\nrun02,n/a\n", "AVG", "not a number"),
    ("run,AVG\nrun01,0.25\nrun02,0.5\n", "acc", "no column 'acc'"),
])
def test_bad_score_tables(tmp_path, text, metric, message):
    (tmp_path / "s.csv").write_text(text)
    with pytest.raises(ResultError, match=message):
        table_responses(PLAN2, str(tmp_path / "s.csv"), metric)


# ---- the CLI ----------------------------------------------------------------------------------

PRESET = '''from ml_collections import ConfigDict


def get_config():
    c = ConfigDict()
    c.data = dict(mixture={s: {"dir": "data/" + s, "repeats": r} for s, r in %r.items()})
    return c
''' % MIXTURE


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "llmjp_jax.cli.ablate", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def setup(tmp_path):
    preset = tmp_path / "preset.py"
    preset.write_text(PRESET)
    factors = tmp_path / "factors.json"
    factors.write_text(json.dumps({"factors": [
        {"name": "ja", "low": 1, "high": 4}, {"name": "en", "low": 0.5, "high": 1}, {"name": "code"},
        {"name": "math"}, {"name": "par", "repeats": 2}]}))
    return {"preset": str(preset), "factors": str(factors), "out": str(tmp_path / "ablate")}


def _design(setup, *extra):
    return _cli("design", f"--config={setup['preset']}", f"--factors={setup['factors']}", "--runs=8",
                f"--out={setup['out']}", *extra)


def _write_metrics(plan: dict, seed: int = 0) -> np.ndarray:
    x = np.array([[run["levels"][f["letter"]] for f in plan["factors"]] for run in plan["runs"]])
    y = _responses(x, seed)
    for run, value in zip(plan["runs"], y):
        os.makedirs(run["workdir"], exist_ok=True)
        with open(os.path.join(run["workdir"], "metrics.jsonl"), "w") as f:
            f.write(json.dumps({"step": 50, "loss": 4.0, "eval_loss": 9.9}) + "\n")
            f.write(json.dumps({"step": 100, "loss": 3.5}) + "\n")
            f.write(json.dumps({"step": 100, "eval_loss": float(value)}) + "\n")
    return y


def test_cli_design_files_and_analyze_round_trip(setup, tmp_path):
    proc = _design(setup)
    assert proc.returncode == 0, proc.stderr
    assert "generators D=AB, E=AC" in proc.stdout and "A = BD = CE" in proc.stdout
    assert "note: resolution III" in proc.stdout and "saturated" not in proc.stdout
    out = setup["out"]
    assert sorted(os.listdir(out)) == ["plan.json"] + [f"run0{i}.flags" for i in range(1, 9)]
    plan = json.load(open(os.path.join(out, "plan.json")))
    assert plan["resolution"] == "III" and plan["generators"] == ["D=AB", "E=AC"]
    assert plan["aliases"] == alias_lines(make_design(5, 8))
    first = plan["runs"][0]  # all base factors low: D = AB and E = AC high
    assert first["levels"] == {"A": -1, "B": -1, "C": -1, "D": 1, "E": 1}
    assert open(first["flagfile"]).read().splitlines()[1:] == [
        f"--config={setup['preset']}", f"--workdir={out}/run01",
        "--config.data.mixture.ja.repeats=1.0", "--config.data.mixture.en.repeats=0.5",
        "--config.data.mixture.code.repeats=0.0", "--config.data.mixture.math.repeats=1.0",
        "--config.data.mixture.par.repeats=2.0"]
    y = _write_metrics(plan)
    png, report = tmp_path / "effects.png", tmp_path / "analysis.json"
    proc = _cli("analyze", f"--plan={out}/plan.json", f"--png={png}", f"--json={report}")
    assert proc.returncode == 0, proc.stderr
    assert "mean on" in proc.stdout and "cohen f" in proc.stdout and "A ja" in proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    analysis = json.load(open(report))
    expected = fit_main_effects(make_design(5, 8).matrix(), y, list("ABCDE"), list("ABCDE"))
    for got, want in zip(analysis["effects"], expected.effects):
        assert got["difference"] == pytest.approx(want.difference, rel=1e-12)
        assert got["p_value"] == pytest.approx(want.p_value, rel=1e-9)
    assert [e["name"] for e in analysis["effects"]] == ["ja", "en", "code", "math", "par"]


def test_flag_file_sets_the_preset_repeats(setup):
    """llmjp-train's config flag (ml_collections, locked) reads a run's flag file as intended."""
    assert _design(setup).returncode == 0
    plan = json.load(open(os.path.join(setup["out"], "plan.json")))
    code = ("from absl import app, flags; from ml_collections import config_flags\n"
            "c = config_flags.DEFINE_config_file('config', None, '', lock_config=True)\n"
            "flags.DEFINE_string('workdir', None, '')\n"
            "app.run(lambda argv: print({k: v.repeats for k, v in c.value.data.mixture.items()}))")
    run = plan["runs"][5]
    proc = subprocess.run([sys.executable, "-c", code, f"--flagfile={run['flagfile']}"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert eval(proc.stdout.strip()) == run["repeats"]


def test_analyze_reads_runs_dir_and_notes_uneven_steps(setup, tmp_path):
    assert _design(setup).returncode == 0
    plan = json.load(open(os.path.join(setup["out"], "plan.json")))
    moved = tmp_path / "moved"
    for run in plan["runs"]:
        run["workdir"] = str(moved / run["name"])
    _write_metrics(plan)
    with open(moved / "run03" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 120, "eval_loss": 3.0}) + "\n")
    proc = _cli("analyze", f"--plan={setup['out']}/plan.json", f"--runs_dir={moved}")
    assert proc.returncode == 0, proc.stderr
    assert "runs read at different steps: run01 at step 100" in proc.stdout


def _one_line_error(proc, expected: str):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if expected in line]
    assert len(errors) == 1 and len(lines) == 1, lines


@pytest.mark.parametrize("extra,expected", [
    (["--factor=ja=1,4", "--factor=web"], "unknown subset 'web'"),
    (["--factor=ja=1,4", "--factor=en=1,2", "--runs=6"], "--runs=6 is not a power of two"),
    (["--factor=ja=1,4", "--factor=en=1,2", "--factor=code", "--factor=math", "--runs=4"],
     "--runs=4 is too few for 4 factors"),
    (["--factor=ja=1,4", "--factor=en=1,2", "--factor=code", "--factor=math", "--generators=D=A*B,C"],
     "is not of the form D=AB"),
    (["--factor=ja=1,x"], "--factor=ja=1,x: write NAME"),
    (["--factor=ja=1,4", "--runs=0"], "--runs=0 is not a power of two"),
    ([], "either --factors=FILE or --factor"),
])
def test_cli_design_mistakes_are_one_line(setup, extra, expected):
    _one_line_error(_cli("design", f"--config={setup['preset']}", f"--out={setup['out']}", *extra), expected)


def test_design_keeps_another_plan(setup):
    assert _design(setup).returncode == 0
    assert _design(setup).returncode == 0  # the same plan again is fine
    _one_line_error(_design(setup, "--generators=D=AB,E=BC"), "already holds another plan.json")


def test_cli_analyze_mistakes_are_one_line(setup, tmp_path):
    _one_line_error(_cli("analyze", f"--plan={tmp_path}/none.json"), "none.json does not exist")
    assert _design(setup).returncode == 0
    plan = f"--plan={setup['out']}/plan.json"
    _one_line_error(_cli("analyze", plan), "run01: " + os.path.join(setup["out"], "run01", "metrics.jsonl")
                    + " does not exist")
    _write_metrics(json.load(open(os.path.join(setup["out"], "plan.json"))))
    _one_line_error(_cli("analyze", plan, "--metric=eval_loss/ja"), "has no row with 'eval_loss/ja'")
    _one_line_error(_cli("analyze", plan, f"--scores={tmp_path}/s.csv"), "s.csv does not exist")
    _one_line_error(_cli("frobnicate"), "name one subcommand")
