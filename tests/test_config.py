"""Config validation names the setting to change; presets parse; the dry run reports sizes."""

import glob
import json
import math
import os
import subprocess
import sys

import pytest

from llmjp_jax.config import ConfigError, default_config, validate

from .conftest import ROOT


def _cfg(**sections):
    c = default_config()
    for section, values in sections.items():
        c[section].update(values)
    return c


@pytest.mark.parametrize("sections, devices, setting", [
    (dict(mesh=dict(tensor=3), model=dict(num_heads=4, num_kv_heads=4)), 3, "model.num_heads"),
    (dict(mesh=dict(tensor=2, fsdp=1), model=dict(num_heads=4, num_kv_heads=1)), 2, "model.num_kv_heads"),
    (dict(mesh=dict(data=4, fsdp=1), train=dict(global_batch=6)), 4, "train.global_batch"),
    (dict(train=dict(global_batch=8, microbatches=3)), 1, "train.microbatches"),
    (dict(mesh=dict(data=3, fsdp=1)), 8, "mesh.data"),
    (dict(mesh=dict(data=-1, fsdp=-1)), 8, "mesh.data"),
    (dict(model=dict(remat="some")), 1, "model.remat"),
    (dict(optim=dict(schedule="wsd", decay_steps=0)), 1, "optim.decay_steps"),
    (dict(optim=dict(schedule="wsd", decay_steps=990, warmup_steps=20), train=dict(steps=1000)), 1,
     "optim.warmup_steps"),
    (dict(optim=dict(schedule="linear")), 1, "optim.schedule"),
])
def test_invalid_settings_are_named(sections, devices, setting):
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        validate(_cfg(**sections), devices)


def test_minus_one_takes_the_rest():
    assert validate(_cfg(mesh=dict(data=2, fsdp=-1, tensor=2)), 8) == {
        "data": 2, "pipeline": 1, "fsdp": 2, "tensor": 2}


PRESETS = [p for p in sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True))
           if not p.endswith("__init__.py")]


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "llmjp_jax.cli.train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_preset_validates(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("preset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = module.get_config()
    degrees = [cfg.mesh[a] for a in ("data", "pipeline", "fsdp", "tensor")]
    devices = (256 if cfg.model.hidden > 8192 else 16) if -1 in degrees else math.prod(degrees)
    validate(cfg, devices)
    assert cfg.optim.eps == 1e-8


def test_dry_run_prints_sizes_without_allocating():
    out = _cli("--config=configs/llmjp3/172b.py", "--dry_run", "--devices=256")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["params"] == report["params_formula"] > 170e9
    assert report["params_non_embedding"] == report["params"] - 2 * 99_584 * 12_288
    # fp32 params + two AdamW moments. Layers are sharded over pipeline=16 x fsdp=4 x tensor=4;
    # the embedding and head over fsdp x tensor only (norm scales replicated, negligible).
    assert report["pipeline"] == {"stages": 16, "repeats": 6, "microbatches": 16,
                                  "bubble_fraction": round(15 / (16 * 6 + 15), 4)}
    embedding = report["params"] - report["params_non_embedding"]
    assert report["bytes_per_device_params_and_optimizer"] == pytest.approx(
        12 * (report["params_non_embedding"] / 256 + embedding / 16), rel=0.01)


def test_command_line_override_and_config_error_exit_code():
    out = _cli("--config=configs/tiny.py", "--dry_run", "--config.mesh.tensor=3")
    assert out.returncode == 2
    assert "mesh.tensor" in out.stdout + out.stderr
    out = _cli("--config=configs/tiny.py", "--dry_run", "--config.optim.peak_lr=1e-4")
    assert out.returncode == 0, out.stderr
