"""Per-device memory, FLOPs and collectives of a config's train step, from an ahead-of-time compile:
nothing is allocated and no step runs (llmjp_jax/train/aot.py, as `llmjp-train --dry_run --target`).

  python benchmarks/aot.py --config=configs/llmjp3/7.2b.py --devices=64      # simulated CPU devices
  python benchmarks/aot.py --config=configs/llmjp3/172b.py --target=v5p-512  # the TPU compiler

Prints one JSON line (the readable table on stderr). On simulated CPU devices the sizes are what
XLA's CPU backend plans for one device's share of the sharded step; an accelerator backend fuses
differently, so treat those as estimates and use --target for a real chip's plan.
"""

import json
import os
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_DEVICES = flags.DEFINE_integer("devices", 8, "Simulated CPU devices to compile for (without --target).")
_TARGET = flags.DEFINE_string("target", None, "Hardware to compile for: v5p-8, v6e-256, h100-80gb:32 ...")


def _main(argv):
    del argv
    from llmjp_jax.parallel.targets import parse_target
    from llmjp_jax.train.aot import plan, table

    if _TARGET.value:
        target = parse_target(_TARGET.value)
        report = plan(_CONFIG.value, target.devices(), target.hbm_bytes, target=_TARGET.value)
    else:
        report = plan(_CONFIG.value, jax.devices())
    print(json.dumps(report))
    print(table(report), file=sys.stderr)


if __name__ == "__main__":
    flags.register_validator("devices", lambda n: n > 0)
    if any(a.startswith("--target") for a in sys.argv):  # this host's backend only traces
        if not os.environ.get("JAX_PLATFORMS"):
            jax.config.update("jax_platforms", "cpu")
        os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
    else:  # the device count must be fixed before JAX starts its CPU backend
        app.call_after_init(lambda: jax.config.update("jax_num_cpu_devices", _DEVICES.value))
    app.run(_main)
