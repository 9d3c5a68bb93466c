"""llmjp-convert from-hf: a Hugging Face folder -> a run that exports back bit-identically and
that training starts from (--config.train.init_from) exactly as from the folder itself."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from llmjp_jax.interop.export import export_hf
from llmjp_jax.interop.from_hf import import_hf
from llmjp_jax.interop.hf_tokenizer import save_hf_tokenizer, special_ids
from llmjp_jax.model import Llama, LlamaConfig
from llmjp_jax.model.hf import save_hf

from .conftest import ROOT, read_metrics, small_config


def _hf_folder(corpus, folder, seed=0) -> str:
    """A random model of small_config's architecture (norm scales perturbed), with the tokenizer."""
    cfg = LlamaConfig.from_dict(small_config(corpus).model)
    params = nnx.to_pure_dict(nnx.state(Llama(cfg, nnx.Rngs(seed))))
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: np.asarray(x) + ("scale" in jax.tree_util.keystr(p)) * rng.normal(0, 0.3, x.shape)
        .astype(np.float32), params)
    save_hf(params, cfg, str(folder), max_positions=64, special_ids=special_ids(corpus["tokenizer"]))
    save_hf_tokenizer(corpus["tokenizer"], str(folder), max_length=64)
    return str(folder)


def _convert(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmjp_jax.cli.convert", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_round_trip_is_bit_identical(corpus, tmp_path):
    hf = _hf_folder(corpus, tmp_path / "hf")
    out = _convert("from-hf", f"--hf_dir={hf}", f"--workdir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert export_hf(str(tmp_path / "run"), str(tmp_path / "back")) == 0
    names = sorted(os.listdir(hf))
    assert sorted(os.listdir(tmp_path / "back")) == names
    for name in names:  # weights, config.json, tokenizer files: all byte for byte
        assert (tmp_path / "back" / name).read_bytes() == (tmp_path / "hf" / name).read_bytes(), name


def test_folder_saved_by_transformers(corpus, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(_hf_folder(corpus, tmp_path / "hf"),
                                                              dtype=torch.float32)
    model.save_pretrained(tmp_path / "saved", max_shard_size="300KB")
    assert (tmp_path / "saved" / "model.safetensors.index.json").exists()
    import_hf(str(tmp_path / "saved"), str(tmp_path / "run"), seq_len=64)
    export_hf(str(tmp_path / "run"), str(tmp_path / "back"), shard_bytes=300_000)
    ours, theirs = _tensors(tmp_path / "back"), _tensors(tmp_path / "saved")
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        assert value.dtype == ours[name].dtype == np.float32 and np.array_equal(value, ours[name]), name


def _tensors(folder) -> dict:
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            out.update(load_file(os.path.join(folder, name)))
    return out


def test_training_starts_from_the_converted_run(corpus, tmp_path):
    """init_from=RUN trains exactly as init_params_from=HF_DIR (same parameters, fresh optimizer,
    data from the start)."""
    from llmjp_jax.train.loop import train

    hf = _hf_folder(corpus, tmp_path / "hf", seed=3)
    import_hf(hf, str(tmp_path / "run"), base=small_config(corpus))
    losses = {}
    for name, init in (("converted", {"init_from": str(tmp_path / "run")}),
                       ("folder", {"init_params_from": hf})):
        cfg = small_config(corpus, steps=2, **init)
        cfg.mesh.update(data=1, fsdp=1, tensor=1)
        train(cfg, str(tmp_path / name), devices=jax.devices()[:1])
        rows = read_metrics(tmp_path / name)
        assert [row["step"] for row in rows] == [1, 2]
        losses[name] = [row[key] for row in rows for key in ("loss", "grad_norm")]
    assert losses["converted"] == pytest.approx(losses["folder"], rel=1e-6)


def test_config_must_match_the_folder(corpus, tmp_path):
    hf = _hf_folder(corpus, tmp_path / "hf")
    base = small_config(corpus)
    base.model.ffn = 256
    with pytest.raises(ValueError, match=r"ffn=128 \(config: 256\)"):
        import_hf(hf, str(tmp_path / "run"), base=base)
    import_hf(hf, str(tmp_path / "run"))
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        import_hf(hf, str(tmp_path / "run"))


def _break(folder, how: str):
    path = os.path.join(folder, "config.json")
    if how == "no_config":
        os.remove(path)
    elif how == "bad_json":
        with open(path, "w") as f:
            f.write("{not json")
    elif how == "not_llama":
        with open(path) as f:
            hf = json.load(f)
        with open(path, "w") as f:
            json.dump({**hf, "model_type": "gpt2"}, f)
    elif how == "no_weights":
        os.remove(os.path.join(folder, "model.safetensors"))
    elif how == "bad_weights":
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    elif how == "missing_tensor":
        tensors = load_file(os.path.join(folder, "model.safetensors"))
        del tensors["model.layers.1.mlp.up_proj.weight"]
        save_file(tensors, os.path.join(folder, "model.safetensors"))


BROKEN = {
    "no_config": "config.json not found", "bad_json": "config.json is not valid JSON",
    "not_llama": "model_type='gpt2'", "no_weights": "neither model.safetensors nor",
    "bad_weights": "model.safetensors is not a readable safetensors file",
    "missing_tensor": "model.layers.1.mlp.up_proj.weight is missing",
}


@pytest.mark.parametrize("how", BROKEN)
def test_broken_folders_are_named(corpus, tmp_path, how):
    hf = _hf_folder(corpus, tmp_path / "hf")
    _break(hf, how)
    with pytest.raises((FileNotFoundError, ValueError), match=BROKEN[how]) as e:
        import_hf(hf, str(tmp_path / "run"))
    assert hf in str(e.value)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_cli_reports_a_missing_folder(tmp_path):
    out = _convert("from-hf", f"--hf_dir={tmp_path / 'nowhere'}", f"--workdir={tmp_path / 'run'}")
    assert out.returncode == 2
    assert f"{tmp_path / 'nowhere'} does not exist" in out.stdout + out.stderr
