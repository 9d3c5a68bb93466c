"""A 3-kill soak (benchmarks/soak.py; the 20-kill version is in benchmarks/RESULTS.md): SIGKILL and
SIGTERM at random moments, restarts until done, final metrics bitwise equal to an uninterrupted run."""

import importlib.util
import os

from .conftest import ROOT


def _soak_module():
    spec = importlib.util.spec_from_file_location("soak", os.path.join(ROOT, "benchmarks", "soak.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_three_random_kills_end_like_an_uninterrupted_run(corpus, tmp_path):
    result = _soak_module().soak(corpus, str(tmp_path), kills=3, steps=600, seed=3, max_delay=16)
    assert result["kills"] == 3, result
    assert result["bad_exit_codes"] == [], result
    assert result["equal"], result
