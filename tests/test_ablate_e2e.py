"""llmjp-ablate end to end on the bundled sample corpus (issue 16): three factors (ja, en, code
repeats, each at two levels) in a 2^(3-1) design, its 4 runs trained on the tiny model from their
flag files, per-language held-out losses, and analyze's table: the factor that adds Japanese
data lowers eval_loss/ja, more than either other factor changes it."""

import ast
import importlib.util
import json
import os
import subprocess
import sys

import jax
import pytest

from llmjp_jax.data.tokenize import tokenize_files
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.train.loop import train

from .conftest import ROOT, SAMPLE

LANGUAGES = ("ja", "en", "code")
FACTORS = ("--factor=ja=0.25,2", "--factor=en=0.5,1", "--factor=code=0.5,1")
STEPS = 40

PRESET = '''"""The tiny model shrunk as in tests/conftest.py's small_config, on a per-language mixture."""

from llmjp_jax.presets import tiny


def get_config():
    c = tiny()
    c.model.update(vocab_size=4000, num_layers=2, hidden=64, ffn=128, num_heads=4, num_kv_heads=2)
    c.train.update(steps=%(steps)d, global_batch=8, seq_len=64, log_every=10, eval_every=%(steps)d,
                   eval_batches=8, checkpoint_every=1000, keep_last=1)
    c.optim.warmup_steps = 4
    c.mesh.update(data=1, fsdp=1, tensor=1, pipeline=1)
    c.data.mixture = {s: {"dir": d, "repeats": 1.0} for s, d in %(train)r.items()}
    c.data.eval = %(heldout)r
    return c
'''


@pytest.fixture(scope="module")
def subsets(corpus, tmp_path_factory):
    """The sample's train and held-out files tokenized into one folder per language each."""
    root, tok = tmp_path_factory.mktemp("subsets"), Tokenizer(corpus["tokenizer"])
    folders = {"train": {}, "heldout": {}}
    for split, named in folders.items():
        for lang in LANGUAGES:
            named[lang] = str(root / split / lang)
            tokenize_files([os.path.join(SAMPLE, split, f"{lang}.jsonl")], named[lang], tok,
                           language=lang, num_workers=1)
    return folders


def _python_module(*args, check=True):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _design(preset: str, out: str) -> dict:
    proc = _python_module("llmjp_jax.cli.ablate", "design", f"--config={preset}", *FACTORS, "--runs=4",
                          f"--out={out}")
    assert "C=AB" in proc.stdout, proc.stdout
    with open(os.path.join(out, "plan.json"), encoding="utf-8") as f:
        return json.load(f)


def _config_from_flagfile(path: str):
    """The config llmjp-train --flagfile=PATH trains: the preset, then each --config.X=V line."""
    lines = [line.strip() for line in open(path, encoding="utf-8") if line.startswith("--")]
    flags = dict(line[2:].split("=", 1) for line in lines)
    spec = importlib.util.spec_from_file_location("_ablate_e2e_preset", flags.pop("config"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg, workdir = module.get_config(), flags.pop("workdir")
    for key, value in flags.items():
        *parents, leaf = key.removeprefix("config.").split(".")
        node = cfg
        for name in parents:
            node = node[name]
        node[leaf] = ast.literal_eval(value)
    return cfg, workdir


def _analyze(plan_path: str, report: str) -> tuple[str, dict]:
    proc = _python_module("llmjp_jax.cli.ablate", "analyze", f"--plan={plan_path}", "--metric=eval_loss/ja",
                          f"--json={report}")
    with open(report, encoding="utf-8") as f:
        return proc.stdout, json.load(f)


def test_more_japanese_data_lowers_the_japanese_eval_loss(subsets, tmp_path):
    preset, out = tmp_path / "preset.py", str(tmp_path / "ablate")
    preset.write_text(PRESET % {"steps": STEPS, "train": subsets["train"], "heldout": subsets["heldout"]})
    plan = _design(str(preset), out)
    assert [f["name"] for f in plan["factors"]] == list(LANGUAGES) and len(plan["runs"]) == 4
    for run in plan["runs"]:
        cfg, workdir = _config_from_flagfile(run["flagfile"])
        assert {s: m.repeats for s, m in cfg.data.mixture.items()} == run["repeats"]
        train(cfg, workdir, devices=jax.devices()[:1])
    table, analysis = _analyze(os.path.join(out, "plan.json"), str(tmp_path / "analysis.json"))
    for letter, name in zip("ABC", LANGUAGES):
        assert f"{letter} {name}" in table, table
    differences = {e["name"]: e["difference"] for e in analysis["effects"]}
    print(table, differences)
    assert differences["ja"] < 0, differences
    assert abs(differences["ja"]) > max(abs(differences["en"]), abs(differences["code"])), differences
