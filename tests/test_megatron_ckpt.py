"""Megatron-Core checkpoints -> our params and a step-0 run (llmjp-convert megatron-to-run).

megatron_gpt_writer.py builds a Llama-style GPTModel with megatron-core on CPU with tensor
parallelism 2 (two gloo processes), runs Megatron's own forward and saves it as torch_dist and as
legacy per-rank model_optim_rng.pt; our logits must equal Megatron's for both layouts.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx
from flax.traverse_util import flatten_dict

from llmjp_jax.interop.megatron_params import import_megatron, load_megatron
from llmjp_jax.model import Llama

from .conftest import ROOT

torch = pytest.importorskip("torch")
pytest.importorskip("megatron.core")

WRITER = os.path.join(os.path.dirname(__file__), "megatron_gpt_writer.py")
LEGACY_ITER = os.path.join("legacy", "iter_0000000")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("megatron")
    done = subprocess.run([sys.executable, WRITER, str(out), "2"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return str(out)


def _logits(params, cfg, tokens) -> np.ndarray:
    model = Llama(cfg, nnx.Rngs(0))
    state = nnx.state(model)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(model, state)
    return np.asarray(model(tokens))


@pytest.mark.parametrize("layout", ["torch_dist", "legacy"])
def test_logits_equal_megatrons_forward(saved, layout):
    params, cfg, args, folder = load_megatron(os.path.join(saved, layout))
    assert folder.endswith("iter_0000000") and args["attention_backend"] is not None  # a Megatron enum
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.dh, cfg.ffn, cfg.padded_vocab) == (4, 2, 16, 96, 128)
    theirs = np.load(os.path.join(saved, "logits.npy"))
    ours = _logits(params, cfg, np.load(os.path.join(saved, "tokens.npy")))
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def _copy_legacy(saved, tmp_path) -> str:
    shutil.copytree(os.path.join(saved, LEGACY_ITER), tmp_path / "iter")
    return str(tmp_path / "iter")


def _rewrite(path, change):
    saved = torch.load(path, weights_only=False)
    change(saved)
    torch.save(saved, path)


def _split_pipeline(folder: str):
    """TP=2 -> TP=2 x PP=2 as Megatron-LM lays it out: mp_rank_TT_PPP, layer indices local to the stage,
    the embedding on the first stage, the final norm and output layer on the last."""
    for t in range(2):
        source = os.path.join(folder, f"mp_rank_{t:02d}", "model_optim_rng.pt")
        saved = torch.load(source, weights_only=False)
        for stage in range(2):
            model = {k.replace(f"layers.{stage}.", "layers.0."): v for k, v in saved["model"].items()
                     if (f"layers.{stage}." in k) or (k.startswith("embedding") if stage == 0 else
                                                       k.startswith(("output_layer", "decoder.final")))}
            os.makedirs(os.path.join(folder, f"mp_rank_{t:02d}_{stage:03d}"))
            torch.save({**saved, "model": model},
                       os.path.join(folder, f"mp_rank_{t:02d}_{stage:03d}", "model_optim_rng.pt"))
        shutil.rmtree(os.path.dirname(source))


def test_legacy_pipeline_stages_are_joined(saved, tmp_path):
    folder = _copy_legacy(saved, tmp_path)
    _split_pipeline(folder)
    params, cfg, _, _ = load_megatron(folder)
    reference, _, _, _ = load_megatron(os.path.join(saved, "torch_dist"))
    ours, theirs = flatten_dict(params), flatten_dict(reference)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert np.array_equal(ours[key], value), key


def test_cli_writes_a_step0_run(saved, tmp_path):
    from llmjp_jax.interop.export import export_hf
    from llmjp_jax.model.hf import load_hf

    out = subprocess.run([sys.executable, "-m", "llmjp_jax.cli.convert", "megatron-to-run",
                          f"--megatron_dir={saved}/torch_dist", f"--workdir={tmp_path / 'run'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    export_hf(str(tmp_path / "run"), str(tmp_path / "hf"))
    params, cfg = load_hf(str(tmp_path / "hf"))
    theirs = np.load(os.path.join(saved, "logits.npy"))
    np.testing.assert_allclose(_logits(params, cfg, np.load(os.path.join(saved, "tokens.npy"))), theirs,
                               atol=1e-4, rtol=0)


def test_config_is_checked(saved, tmp_path):
    from configs.tiny import get_config

    base = get_config()
    base.model.update(num_layers=2, hidden=64, ffn=128, num_heads=4, num_kv_heads=2, head_dim=16)
    with pytest.raises(ValueError, match=r"differs from --config in ffn=96 \(config: 128\)"):
        import_megatron(os.path.join(saved, "torch_dist"), str(tmp_path / "run"), base=base)


def _no_args(saved):
    saved.pop("args")


def _args(**changes):
    return lambda saved: [setattr(saved["args"], k, v) for k, v in changes.items()]


def _extra(key, shape):
    return lambda saved: saved["model"].__setitem__(key, torch.zeros(shape))


BROKEN = {
    "no_args": (_no_args, "records no args"),
    "layernorm": (_args(normalization="LayerNorm"), "args.normalization='LayerNorm'"),
    "not_swiglu": (_args(swiglu=False), "args.swiglu=False"),
    "bias": (_extra("decoder.layers.0.self_attention.linear_qkv.bias", (64,)), "linear_qkv.bias: biases"),
    "unknown": (_extra("decoder.layers.0.self_attention.q_layernorm.weight", (16,)),
                "unknown tensor decoder.layers.self_attention.q_layernorm.weight"),
    "wrong_shape": (_args(num_query_groups=1), r"linear_qkv.weight has shape \(2, 128, 64\); the model "
                                               r"config implies \(2, 96, 64\)"),
}


@pytest.mark.parametrize("how", BROKEN)
def test_broken_legacy_checkpoints_are_named(saved, tmp_path, how):
    folder = _copy_legacy(saved, tmp_path)
    change, message = BROKEN[how]
    for t in range(2):
        _rewrite(os.path.join(folder, f"mp_rank_{t:02d}", "model_optim_rng.pt"), change)
    with pytest.raises(ValueError, match=message) as e:
        load_megatron(folder)
    assert folder in str(e.value)


def test_missing_and_damaged_files_are_named(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        load_megatron(str(tmp_path / "nowhere"))
    folder = _copy_legacy(saved, tmp_path)
    rank1 = os.path.join(folder, "mp_rank_01", "model_optim_rng.pt")
    with open(rank1, "wb") as f:
        f.write(b"not a torch file")
    with pytest.raises(ValueError, match=f"{rank1} is not a readable torch file"):
        load_megatron(folder)
    os.remove(rank1)
    with pytest.raises(FileNotFoundError, match=f"{rank1} not found: the checkpoint has 2 tensor x 1"):
        load_megatron(folder)
    top = tmp_path / "top"
    os.makedirs(top)
    (top / "latest_checkpointed_iteration.txt").write_text("7")
    with pytest.raises(FileNotFoundError, match="names iteration '7'"):
        load_megatron(str(top))
