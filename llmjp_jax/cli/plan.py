"""llmjp-plan: rank the parallelism layouts of a config on some hardware, before the cluster does.

  llmjp-plan --config=configs/llmjp3/172b.py --hardware=h100-80gb --nodes=64 --global_batch=1728
      --config.data.loader_shards=64   (one line; 64 processes need 64 loader shards)
  llmjp-plan --config=configs/llmjp3/7.2b.py --hardware=v5p-64 --top=5 --json
  llmjp-plan --config=configs/llmjp3/1.8b.py --hardware=v5p-8 --check=3

Enumerates mesh.data / fsdp / tensor / pipeline (+ repeats, pipeline microbatches), the DCN split,
train.microbatches, model.remat and train.loss_chunk, keeps what `validate` accepts (for --processes
JAX processes: one per GPU node or TPU host, so data.loader_shards must divide over them), predicts
per-device memory and step time from the config's arithmetic (no devices, no compile), and prints
the best layouts that fit with their --config.* overrides and why the others were rejected.
--check=N compiles the top N with the real compiler (TPU hardware: libtpu; otherwise XLA:CPU on
simulated devices) and prints predicted vs compiled memory. The model: llmjp_jax/plan/README.md.
"""

from absl import flags
from ml_collections import config_flags

from llmjp_jax.cli.common import config_or_usage, run
from llmjp_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Preset file (configs/...py).", lock_config=True)
_HARDWARE = flags.DEFINE_string(
    "hardware", "h100-80gb", "h100-80gb, h200, a100-40gb, a100-80gb, b200, v4, v5e, v5p, v6e; or a TPU "
    "slice (v5p-512, 2xv5p-128) or GPUs (h100-80gb:64).")
_NODES = flags.DEFINE_integer("nodes", None, "Nodes (GPU servers or TPU slices); default 1.")
_PER_NODE = flags.DEFINE_integer("gpus_per_node", None, "Devices per node (chips per TPU slice).")
_PROCESSES = flags.DEFINE_integer("processes", None, "JAX processes of the run (default: one per GPU node, "
                                  "one per 4-chip TPU host), as validate checks them.")
_BATCH = flags.DEFINE_integer("global_batch", None, "Global batch in sequences (default: the preset's).")
_TOP = flags.DEFINE_integer("top", 10, "How many layouts to show.")
_ALL = flags.DEFINE_bool("all_layouts", False, "Show every fitting layout, not the best of each mesh.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of the table.")
_CHECK = flags.DEFINE_integer("check", 0, "Compile the top N layouts and compare memory (0: no).")
_CHECK_CPU = flags.DEFINE_bool("check_cpu", False, "--check with XLA:CPU on simulated devices, whatever "
                               "the hardware.")
_REMAT = flags.DEFINE_list("remat", ["full", "save_dots", "none"], "model.remat policies to try.")
_CHUNKS = flags.DEFINE_list("loss_chunks", ["0", "1024"], "train.loss_chunk values to try.")
_MAX_SEQS = flags.DEFINE_integer("max_seqs", 8, "Most sequences per device per pass to try.")
_HBM = flags.DEFINE_float("hbm_gib", None, "Override: usable HBM per device, GiB.")
_PEAK = flags.DEFINE_float("peak_tflops", None, "Override: dense bf16 peak per device, TFLOP/s.")
_INTRA = flags.DEFINE_float("intra_gbps", None, "Override: intra-node link per device, GB/s.")
_INTER = flags.DEFINE_float("inter_gbps", None, "Override: inter-node link per device, GB/s.")


class PlanFlagError(UserError):
    """A llmjp-plan flag with a value it cannot use; the message names the flag."""


def _positive(name: str, value, allow_zero: bool = False):
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise PlanFlagError(f"--{name}={value}: must be {'>= 0' if allow_zero else 'positive'}.")
    return value


def _search_space() -> dict:
    """--remat, --loss_chunks and --max_seqs as planner.rank's keyword arguments."""
    from llmjp_jax.model.config import REMAT_POLICIES

    bad = [r for r in _REMAT.value if r not in REMAT_POLICIES]
    if bad or not _REMAT.value:
        raise PlanFlagError(f"--remat={','.join(_REMAT.value)}: choose from {', '.join(REMAT_POLICIES)}.")
    try:
        chunks = tuple(int(c) for c in _CHUNKS.value)
    except ValueError:
        chunks = ()
    if not chunks or min(chunks) < 0:
        raise PlanFlagError(f"--loss_chunks={','.join(_CHUNKS.value)}: whole numbers >= 0 (0: no chunks).")
    return {"remats": tuple(_REMAT.value), "loss_chunks": chunks,
            "max_seqs": _positive("max_seqs", _MAX_SEQS.value)}


def _hardware():
    from llmjp_jax.plan import hardware

    given = {"hbm_bytes": ("hbm_gib", _HBM.value, 2**30), "peak_flops": ("peak_tflops", _PEAK.value, 1e12),
             "intra_bw": ("intra_gbps", _INTRA.value, 1e9), "inter_bw": ("inter_gbps", _INTER.value, 1e9)}
    overrides = {field: None if v is None else _positive(flag, v) * scale
                 for field, (flag, v, scale) in given.items()}
    if overrides["hbm_bytes"] is not None:
        overrides["hbm_bytes"] = int(overrides["hbm_bytes"])
    return hardware.resolve(_HARDWARE.value, _NODES.value, _PER_NODE.value, **overrides)


def _check(cfg, result, hw, devices):
    """--check: (rows, table) of the top layouts compiled; XLA:CPU gets `devices` simulated devices."""
    import os

    import jax

    from llmjp_jax.plan import check, planner, report

    if not os.environ.get("JAX_PLATFORMS"):
        jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", devices)
    rows = planner.distinct_meshes(result)[:_CHECK.value]
    cpu = jax.devices("cpu") if _CHECK_CPU.value else None
    checked = check.check(cfg, rows, hw, devices, cpu_devices=cpu)
    return checked, report.check_table(checked)


def _main(argv):
    del argv
    import json

    from llmjp_jax.plan import planner, report

    cfg = config_or_usage(_CONFIG, "configs/llmjp3/7.2b.py")
    if _positive("global_batch", _BATCH.value):
        cfg.train.global_batch = _BATCH.value
    _positive("top", _TOP.value)
    _positive("check", _CHECK.value, allow_zero=True)
    space = _search_space()
    hw, devices = _hardware()
    result = planner.rank(cfg, hw, devices, _positive("processes", _PROCESSES.value), **space)
    by_mesh = not _ALL.value
    checked = _check(cfg, result, hw, devices) if _CHECK.value else None
    if _JSON.value:
        out = report.as_dict(result, hw, devices, _TOP.value, by_mesh)
        print(json.dumps(out | ({"check": checked[0]} if checked else {})))
        return
    print(report.text(result, hw, devices, _TOP.value, by_mesh))
    if checked:
        print("\nPredicted vs compiled peak per device (GiB):\n" + checked[1])


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
