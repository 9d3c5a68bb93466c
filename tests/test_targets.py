"""Compiling for hardware this host does not have: target names, the HLO reading, the TPU compile
of the tiny config with splash attention (libtpu), and sharding hygiene of a sharded step."""

import json
import os
import re
import subprocess
import sys

import pytest

from llmjp_jax.parallel.targets import TargetError, parse_target
from llmjp_jax.train.hlo import collectives, whole_batch_collectives

from .conftest import ROOT, small_config


def test_target_names_follow_cloud_tpu_and_gpu_counts():
    v5p = parse_target("v5p-8")  # 8 TensorCores = 4 megacore chips
    assert (v5p.platform, v5p.num_devices, v5p.chip.shapes[v5p.count]) == ("tpu", 4, "2x2x1")
    assert parse_target("v5p-256").num_devices == 128
    assert parse_target("v6e-256").num_devices == 256  # v5e/v6e count chips
    multi = parse_target("2xv5p-128")
    assert (multi.slices, multi.count, multi.num_devices) == (2, 64, 128)
    gpus = parse_target("h100-80gb:32")
    assert (gpus.platform, gpus.num_devices, gpus.per_node, gpus.hbm_bytes) == ("gpu", 32, 8, 84_942_979_072)
    assert parse_target("h200:16:4").per_node == 4
    for bad, says in (("v5p-6", "the shapes are v5p-8, v5p-16"), ("v7x-8", "unknown TPU"),
                      ("h100-80gb:12", "multiple of it"), ("tpu", "expected a Cloud TPU slice")):
        with pytest.raises(TargetError, match=says):
            parse_target(bad)


# A hand-written module in the form XLA prints: a scan loop (4 trips, from its condition) holding
# an async all-gather, a reduce-scatter in the entry computation, and a fusion call.
HLO = """\
HloModule jit_step

%cond (p: (s32[], f32[4,8])) -> pred[] {
  %p = (s32[], f32[4,8]) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %constant.1 = s32[] constant(4)
  ROOT %lt = pred[] compare(%i, %constant.1), direction=LT
}

%body (p: (s32[], f32[4,8])) -> (s32[], f32[4,8]) {
  %p = (s32[], f32[4,8]) parameter(0)
  %x = f32[4,8]{1,0} get-tuple-element(%p), index=1
  %ag = (f32[4,8]{1,0}, bf16[16,8]{1,0}) all-gather-start(f32[4,8]{1,0} %x), dimensions={0}
  %agd = bf16[16,8]{1,0} all-gather-done(%ag)
  ROOT %t = (s32[], f32[4,8]) tuple(%i, %x)
}

%fused (a: f32[64,8]) -> f32[64,8] {
  %a = f32[64,8]{1,0} parameter(0)
  ROOT %ar = f32[64,8]{1,0} all-reduce(f32[64,8]{1,0} %a), to_apply=%add
}

ENTRY %main (a: f32[64,8], /*index=1*/b: f32[4,8]) -> f32[16,8] {
  %a = f32[64,8]{1,0} parameter(0)
  %rs = f32[16,8]{1,0} reduce-scatter(f32[64,8]{1,0} %a), dimensions={0}, to_apply=%add
  %w = (s32[], f32[4,8]) while((s32[], f32[4,8]) %init), condition=%cond, body=%body
  %f = f32[64,8]{1,0} fusion(f32[64,8]{1,0} %a), kind=kLoop, calls=%fused, metadata={op_name="x"}
  ROOT %out = f32[16,8]{1,0} copy(%rs)
}
"""


def test_collectives_count_loop_trips_and_buffer_bytes():
    assert collectives(HLO) == {
        "all-gather": {"count": 4, "bytes": 4 * 16 * 8 * 2},  # per trip: the gathered bf16[16,8]
        "reduce-scatter": {"count": 1, "bytes": 64 * 8 * 4},  # its input, the whole buffer
        "all-reduce": {"count": 1, "bytes": 64 * 8 * 4},  # inside the fusion the entry calls
    }
    found = whole_batch_collectives(HLO, batch=16, seq_len=8)  # the [16, 8] results
    assert [line.split(" =")[0] for line in found] == ["%ag", "%rs"]
    assert whole_batch_collectives(HLO, batch=8, seq_len=8) == []


def _compile_sharded_tiny(partitioner: str, tmp_path) -> subprocess.CompletedProcess:
    """Compiles the tiny step on 8 simulated devices (data=2, fsdp=2, tensor=2) in a fresh process,
    so that XLA's own warnings (C++ logging, on stderr) can be read."""
    script = (
        "import json, sys\n"
        "import jax\n"
        f"jax.config.update('jax_use_shardy_partitioner', {partitioner == 'shardy'})\n"
        "from configs.tiny import get_config\n"
        "from llmjp_jax.train.aot import compile_plan\n"
        "from llmjp_jax.train.hlo import whole_batch_collectives\n"
        "cfg = get_config()\n"
        "cfg.mesh.update(data=2, fsdp=2, tensor=2)\n"
        "report, compiled = compile_plan(cfg, jax.devices())\n"
        "t = cfg.train\n"
        "print(json.dumps(whole_batch_collectives(compiled.as_text(), t.global_batch, t.seq_len)))\n")
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=8")
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("partitioner", ["shardy", "gspmd"])
def test_sharded_step_keeps_activations_split_by_batch(partitioner, tmp_path):
    """The embedding lookup used to leave [B, T, D] split over embed, which GSPMD re-split by batch
    by gathering it whole on every device ("Involuntary full rematerialization")."""
    proc = _compile_sharded_tiny(partitioner, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Involuntary full rematerialization" not in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_tiny_with_splash_compiles_for_a_v5p_slice(corpus):
    """The real TPU compiler plans the tiny step with splash attention for v5p 2x2x1 (4 chips)."""
    pytest.importorskip("libtpu", reason="libtpu (the test extra's jax[tpu]) is not installed")
    from llmjp_jax.train.aot import compile_plan

    cfg = small_config(corpus, seq_len=256, global_batch=8)
    cfg.model.attention = "auto"
    target = parse_target("v5p-8")
    report, compiled = compile_plan(cfg, target.devices(), target.hbm_bytes, "v5p-8")
    assert (report["device_kind"], report["devices"], report["attention"]) == ("TPU v5", 4, "splash")
    assert report["fits"] is True and 0 < report["peak_bytes"] < target.hbm_bytes
    assert report["params_bytes"] > 0 and report["temp_bytes"] > 0
    assert report["collectives"]["all-gather"]["count"] > 0  # fsdp=4 gathers the weights
    # Splash's kernels (forward, dq, dkv) are Mosaic custom calls in the layer loop's body.
    assert compiled.as_text().count('custom_call_target="tpu_custom_call"') >= 3


def test_cli_dry_run_for_a_target_prints_the_chip_plan(tmp_path):
    """The 1.8B preset compiled for v5p-8 by the command the README gives: it fits its named slice."""
    pytest.importorskip("libtpu", reason="libtpu (the test extra's jax[tpu]) is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "llmjp_jax.cli.train", f"--config={ROOT}/configs/llmjp3/1.8b.py",
         "--dry_run", "--target=v5p-8"], cwd=tmp_path, capture_output=True, text=True, timeout=1200,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (report["device_kind"], report["devices"], report["attention"]) == ("TPU v5", 4, "splash")
    assert report["fits"] is True and 0 < report["peak_bytes"] < report["hbm_bytes"]
    # 1,867,614,208 float32 parameters over 4 chips (fsdp); the norm scales are replicated
    norms = (2 * 24 + 1) * 2048
    assert report["params_bytes"] == (1_867_614_208 - norms) * 4 // 4 + norms * 4
    assert f"per chip: parameters {report['params_bytes'] / 2**30:.2f} GiB" in proc.stderr  # the table


def test_tiny_with_cudnn_compiles_for_an_h100(corpus):
    """The XLA:GPU compiler plans the tiny step for one H100 with cuDNN flash attention, documents
    and GQA included (needs the gpu extra's CUDA plugin; no GPU)."""
    pytest.importorskip("jax_cuda12_plugin", reason="the CUDA plugin (the gpu extra) is not installed")
    from llmjp_jax.train.aot import compile_plan

    cfg = small_config(corpus, seq_len=256, global_batch=8)
    cfg.model.update(attention="auto", dtype="bfloat16")
    cfg.data.packing = "first_fit"  # document masks
    target = parse_target("h100-80gb:1")
    report, compiled = compile_plan(cfg, target.devices(), target.hbm_bytes, "h100-80gb:1")
    assert report["device_kind"] == "NVIDIA H100 80GB HBM3"
    assert (report["attention"], report["fits"]) == ("cudnn", True)
    calls = set(re.findall(r'custom_call_target="([^"]+)"', compiled.as_text()))
    assert {"__cudnn$fmhaScaleBiasSoftmax", "__cudnn$fmhaScaleBiasSoftmaxBackward"} <= calls


def test_splash_runs_inside_the_pipeline_stages(corpus):
    """Splash's shard_map nested in the pipeline's (manual over "pipeline"): the step traces and
    compiles (it failed with "Expected cotangent type ...{V:pipeline}" while the pipeline's
    shard_map typed its values as varying per stage, which the Pallas kernel cannot)."""
    import jax

    from llmjp_jax.train.aot import compile_plan

    cfg = small_config(corpus, seq_len=128, global_batch=8)
    cfg.model.update(attention="splash", remat="full")
    cfg.mesh.update(data=2, fsdp=1, tensor=2, pipeline=2)
    report, compiled = compile_plan(cfg, jax.devices())
    assert report["attention"] == "splash" and report["pipeline"]["microbatches"] == 2
    assert report["collectives"]["collective-permute"]["count"] > 0  # stages hand over activations
