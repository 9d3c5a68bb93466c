"""Per-device memory, FLOPs and collectives of a config's train step, from an ahead-of-time compile:
nothing is allocated and no step runs (llmjp_jax/train/aot.py, as `llmjp-train --dry_run --target`).

  python benchmarks/aot.py --config=configs/llmjp3/7.2b.py --devices=64      # simulated CPU devices
  python benchmarks/aot.py --config=configs/llmjp3/7.2b.py --target=v5p-64  # the TPU compiler

Prints one JSON line (the readable table on stderr). On simulated CPU devices the sizes are what
XLA's CPU backend plans for one device's share of the sharded step; an accelerator backend fuses
differently, so treat those as estimates and use --target for a real chip's plan.
"""

import json
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_DEVICES = flags.DEFINE_integer("devices", 8, "Simulated CPU devices to compile for (without --target).")
_TARGET = flags.DEFINE_string("target", None, "Hardware to compile for: v5p-8, v6e-256, h100-80gb:32 ...")


def _main(argv):
    del argv
    from llmjp_jax.train.aot import plan, plan_for_target, table

    if _TARGET.value:
        report = plan_for_target(_CONFIG.value, _TARGET.value)
    else:
        report = plan(_CONFIG.value, jax.devices())
    print(json.dumps(report))
    print(table(report), file=sys.stderr)


if __name__ == "__main__":
    flags.register_validator("devices", lambda n: n > 0)
    if not any(a.startswith("--target") for a in sys.argv):
        # The device count must be fixed before JAX starts its CPU backend.
        app.call_after_init(lambda: jax.config.update("jax_num_cpu_devices", _DEVICES.value))
    app.run(_main)
