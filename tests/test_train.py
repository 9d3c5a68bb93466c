"""Training equivalences: sharded vs one device, resumed vs uninterrupted, accumulated vs whole batch."""

import jax
import numpy as np
import pytest

from llmjp_jax.train.loop import train

from .conftest import read_metrics, small_config, train_until

MESHES = {
    "data8": dict(data=8, fsdp=1, tensor=1),
    "fsdp8": dict(data=1, fsdp=8, tensor=1),
    "data2_fsdp2_tensor2": dict(data=2, fsdp=2, tensor=2),
}


def _losses(workdir):
    return [row["loss"] for row in read_metrics(workdir) if "loss" in row]


@pytest.fixture(scope="module")
def one_device_losses(corpus, tmp_path_factory):
    cfg = small_config(corpus)
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    workdir = str(tmp_path_factory.mktemp("one_device"))
    train(cfg, workdir, devices=jax.devices()[:1])
    return _losses(workdir)


@pytest.mark.parametrize("mesh", MESHES.values(), ids=MESHES.keys())
def test_sharded_losses_equal_one_device(corpus, tmp_path, one_device_losses, mesh):
    assert len(jax.devices()) == 8
    cfg = small_config(corpus)
    cfg.mesh.update(mesh)
    train(cfg, str(tmp_path), devices=jax.devices())
    losses = _losses(tmp_path)
    assert len(losses) == 5
    np.testing.assert_allclose(losses, one_device_losses, rtol=1e-5)
    assert all(0 < row["mfu"] < 1 for row in read_metrics(tmp_path))


@pytest.mark.parametrize("mesh", [MESHES["data2_fsdp2_tensor2"], dict(data=1, fsdp=1, tensor=1)],
                         ids=["data2_fsdp2_tensor2", "one_device"])
def test_chunked_loss_equals_whole_sequence_loss(corpus, tmp_path, one_device_losses, mesh):
    """train.loss_chunk runs the head and loss over 16 of the 64 positions at a time."""
    cfg = small_config(corpus, loss_chunk=16)
    cfg.mesh.update(mesh)
    devices = jax.devices() if mesh["data"] > 1 else jax.devices()[:1]
    train(cfg, str(tmp_path), devices=devices)
    np.testing.assert_allclose(_losses(tmp_path), one_device_losses, rtol=1e-5)


def test_gradient_accumulation_equals_whole_batch(corpus, tmp_path, one_device_losses):
    cfg = small_config(corpus, microbatches=4)
    cfg.mesh.update(data=1, fsdp=2, tensor=1)
    train(cfg, str(tmp_path), devices=jax.devices()[:2])
    np.testing.assert_allclose(_losses(tmp_path), one_device_losses, rtol=1e-5)


def test_resume_is_bitwise_exact(corpus, tmp_path):
    """20 steps in one go == 10 steps, a new process-like restart, 10 more (data order included)."""
    cfg = small_config(corpus, steps=20, checkpoint_every=10, eval_every=10)
    cfg.mesh.update(data=2, fsdp=2, tensor=1)
    devices = jax.devices()[:4]
    train(cfg, str(tmp_path / "straight"), devices=devices)
    half = small_config(corpus, steps=20, checkpoint_every=10, eval_every=10)
    half.mesh.update(data=2, fsdp=2, tensor=1)
    train_until(half, str(tmp_path / "resumed"), devices, stop_after=10)
    assert [r["step"] for r in read_metrics(tmp_path / "resumed")] == list(range(1, 11))
    train(half, str(tmp_path / "resumed"), devices=devices)
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == [r["step"] for r in straight] == list(range(1, 21))
    for key in ("loss", "grad_norm", "lr"):
        assert [r[key] for r in resumed] == [r[key] for r in straight], key
    assert [r.get("eval_loss") for r in resumed] == [r.get("eval_loss") for r in straight]


def test_resume_onto_another_mesh(corpus, tmp_path):
    """A checkpoint written on (fsdp=4) continues on (data=2, tensor=2) with the same losses."""
    cfg = small_config(corpus, steps=10, checkpoint_every=5)
    cfg.mesh.update(data=1, fsdp=4, tensor=1)
    train(cfg, str(tmp_path / "straight"), devices=jax.devices()[:4])
    train_until(cfg, str(tmp_path / "moved"), jax.devices()[:4], stop_after=5)
    moved = small_config(corpus, steps=10, checkpoint_every=5)
    moved.mesh.update(data=2, fsdp=1, tensor=2)
    train(moved, str(tmp_path / "moved"), devices=jax.devices()[4:8])
    np.testing.assert_allclose(_losses(tmp_path / "moved"), _losses(tmp_path / "straight"), rtol=1e-5)


def test_metrics_rows_have_the_documented_fields(corpus, tmp_path):
    cfg = small_config(corpus, steps=4, log_every=2, eval_every=4)
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    train(cfg, str(tmp_path), devices=jax.devices()[:1])
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [2, 4]
    for key in ("loss", "lr", "grad_norm", "tokens_per_sec", "mfu", "step_time", "z_loss"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert 0 < rows[-1]["mfu"] < 1 and rows[-1]["tokens_per_sec"] > 0
    assert "eval_loss" in rows[-1] and np.isfinite(rows[-1]["eval_loss"])
    assert [r["skipped_steps"] for r in rows] == [0, 0]
    assert (tmp_path / "tensorboard").is_dir()


def test_wsd_decay_branches_from_a_stable_checkpoint(corpus, tmp_path):
    """LLM-jp-4 style: a decay run starts from a stable-phase checkpoint of another run."""
    stable = small_config(corpus, steps=12, checkpoint_every=3, keep_last=1, keep_every=6)
    stable.optim.update(schedule="wsd", decay_steps=4, decay_shape="minus_sqrt", min_lr_ratio=0.0)
    stable.mesh.update(data=1, fsdp=1, tensor=1)
    one = jax.devices()[:1]
    train(stable, str(tmp_path / "stable"), devices=one)
    branch = small_config(corpus, steps=10, init_from=f"{tmp_path / 'stable'}:6")
    branch.optim.update(schedule="wsd", decay_steps=4, decay_start=6, decay_shape="minus_sqrt",
                        min_lr_ratio=0.0)
    branch.mesh.update(data=1, fsdp=1, tensor=1)
    train(branch, str(tmp_path / "branch"), devices=one)
    rows, base = read_metrics(tmp_path / "branch"), read_metrics(tmp_path / "stable")
    assert [r["step"] for r in rows] == [7, 8, 9, 10]
    peak = stable.optim.peak_lr
    # The LR logged at step s is the one used for update s, i.e. schedule(s - 1).
    expected = [peak * (1 - np.sqrt((s - 1 - 6) / 4)) for s in (7, 8, 9, 10)]
    np.testing.assert_allclose([r["lr"] for r in rows], expected, rtol=1e-6)
    # Same state and data position as the stable run at step 6: the first loss matches.
    assert rows[0]["loss"] == base[6]["loss"]
    kept = sorted(int(p.name) for p in (tmp_path / "stable" / "checkpoints").iterdir() if p.name.isdigit())
    assert kept == [6, 12]  # keep_last=1 plus every 6th


def test_cpu_peak_is_measured_on_one_device_inside_a_mesh():
    """Under an 8-device mesh an uncommitted operand was replicated: all 8 simulated devices
    did the matmul and the 'peak' read 1/8 of the host's (MFU 128% for the tiny model)."""
    from llmjp_jax.parallel import make_mesh
    from llmjp_jax.train.flops import measure_cpu_matmul_flops, on_one_device

    with jax.set_mesh(make_mesh(dict(data=8, pipeline=1, fsdp=1, tensor=1))):
        with on_one_device():
            operand = jax.numpy.ones((8, 8))
            assert len(jax.jit(lambda x: x @ x)(operand).sharding.device_set) == 1
        assert len(jax.numpy.ones((8, 8)).sharding.device_set) == 8  # what it guards against
        assert measure_cpu_matmul_flops(n=64, repeats=1) > 0


def test_cpu_peak_is_measured_in_the_models_compute_dtype(monkeypatch):
    """A bfloat16 model on a CPU with AVX512-BF16 read 117-137% MFU: its peak was the float32
    matmul's, about half the bfloat16 one. The peak is measured in the compute dtype."""
    from llmjp_jax.train import flops

    measured = []
    monkeypatch.setattr(flops, "_measured_cpu_peak", {})
    monkeypatch.setattr(flops, "measure_cpu_matmul_flops",
                        lambda dtype: measured.append(jax.numpy.dtype(dtype).name) or 1.0)
    cpu = jax.devices("cpu")
    flops.peak_flops(cpu, jax.numpy.bfloat16)
    flops.peak_flops(cpu, jax.numpy.bfloat16)  # measured once per dtype
    flops.peak_flops(cpu)
    assert measured == ["bfloat16", "float32"]


def test_non_finite_step_leaves_the_state_unchanged():
    """A NaN in the loss or gradients skips the update (params and optimizer state bitwise
    unchanged, step counted, metric skipped=1); a finite step updates as usual."""
    import jax.numpy as jnp

    from llmjp_jax.config import default_config
    from llmjp_jax.model import LlamaConfig
    from llmjp_jax.optim import make_optimizer, make_schedule
    from llmjp_jax.parallel import make_mesh
    from llmjp_jax.train.state import init_state, state_spec
    from llmjp_jax.train.step import make_train_step

    cfg = default_config()
    cfg.model.update(vocab_size=256, num_layers=1, hidden=32, ffn=64, num_heads=2, num_kv_heads=2)
    cfg.optim.warmup_steps = 0  # a non-zero learning rate at step 0
    model_cfg = LlamaConfig.from_dict(cfg.model)
    tx = make_optimizer(cfg.optim, 10)
    spec = state_spec(model_cfg, tx, make_mesh(dict(data=1, pipeline=1, fsdp=1, tensor=1), jax.devices()[:1]))
    step = jax.jit(make_train_step(spec.graphdef, tx, make_schedule(cfg.optim, 10), 1, 0.0))
    batch = {"tokens": jnp.arange(2 * 9, dtype=jnp.int32).reshape(2, 9)}
    good = init_state(model_cfg, tx, spec, 0)
    after, metrics = step(jax.tree.map(jnp.copy, good), batch)
    assert int(metrics["skipped"]) == 0
    assert not np.array_equal(after["params"]["embed"], good["params"]["embed"])

    bad = jax.tree.map(jnp.copy, good)
    bad["params"]["final_norm"]["scale"] = bad["params"]["final_norm"]["scale"].at[0].set(jnp.nan)
    before = jax.device_get(bad)
    after, metrics = step(bad, batch)
    assert int(metrics["skipped"]) == 1 and int(after["step"]) == 1
    for old, new in zip(jax.tree.leaves(before["params"]) + jax.tree.leaves(before["opt_state"]),
                        jax.tree.leaves(after["params"]) + jax.tree.leaves(after["opt_state"])):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))


def test_run_of_non_finite_steps_stops_with_advice(corpus, tmp_path):
    cfg = small_config(corpus, steps=10, max_skipped_steps=3)
    cfg.model.init_std = float("nan")
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    with pytest.raises(FloatingPointError, match=r"Steps 1..3 all had a non-finite loss.*optim.peak_lr"):
        train(cfg, str(tmp_path), devices=jax.devices()[:1])
    assert [row["skipped_steps"] for row in read_metrics(tmp_path)] == [1, 1]


@pytest.mark.parametrize("where", ["compile", "step"])
def test_out_of_memory_names_the_settings_to_change(corpus, tmp_path, monkeypatch, where):
    from llmjp_jax.train.loop import Run

    def exhausted(*args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 123 bytes.")

    original = Run.compile_step
    if where == "compile":
        monkeypatch.setattr(Run, "compile_step", exhausted)
    else:
        class Compiled:  # the real step's memory plan, but running it fails
            def __init__(self, run):
                self.plan = original(run)

            def memory_analysis(self):
                return self.plan.memory_analysis()

            __call__ = exhausted

        monkeypatch.setattr(Run, "compile_step", lambda run: Compiled(run))
    cfg = small_config(corpus)
    cfg.mesh.update(data=1, fsdp=1, tensor=1)
    message = (r"does not fit in device memory\..*train\.microbatches.*train\.loss_chunk.*mesh\.fsdp"
               r".*train\.global_batch=8 or train\.seq_len=64 \(8 x 64 tokens per step now\)")
    if where == "step":
        message = r"XLA planned .* GiB of arguments .*" + message.split(r"\.", 1)[1]
    with pytest.raises(MemoryError, match=message):
        train(cfg, str(tmp_path), devices=jax.devices()[:1])


def test_a_corpus_smaller_than_one_step_is_named(caplog):
    """It trained silently, every step repeating the whole corpus (the README's own-corpus run)."""
    from types import SimpleNamespace

    from llmjp_jax.train.loop import warn_if_smaller_than_a_step

    t = SimpleNamespace(global_batch=8, seq_len=63)  # 512 tokens a step
    warn_if_smaller_than_a_step([SimpleNamespace(tokens=200, repeats=2.0)], t)
    assert "less than one step's batch" in caplog.text and "= 512" in caplog.text
    caplog.clear()
    warn_if_smaller_than_a_step([SimpleNamespace(tokens=300, repeats=2.0)], t)
    assert "less than one step" not in caplog.text
