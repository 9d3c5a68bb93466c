"""Per-device memory and FLOPs of a config's train step, from an ahead-of-time compile on
simulated CPU devices: nothing is allocated and no step runs.

  python benchmarks/aot.py --config=configs/llmjp3/7.2b.py --devices=64
  python benchmarks/aot.py --config=configs/llmjp3/172b.py --devices=256

Prints one JSON line. The sizes are what XLA's CPU backend plans for one device's share of the
sharded step (arguments = params + optimizer state + batch, temporaries = activations and
gradients); an accelerator backend fuses differently, so treat them as estimates.
"""

import json
import time

import jax
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_DEVICES = flags.DEFINE_integer("devices", 8, "Simulated CPU devices to compile for.")


def aot_report(cfg) -> dict:
    from llmjp_jax.parallel.pipeline import schedule_from_config
    from llmjp_jax.train.loop import Run

    run = Run(cfg, workdir="")
    start = time.perf_counter()
    with run.context():
        compiled = run.compile_step()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    t, n = cfg.train, len(run.devices)
    model_flops = run.model_cfg.flops_per_token(t.seq_len) * t.global_batch * t.seq_len
    degrees = {a: run.mesh.shape[a] for a in run.mesh.axis_names}
    schedule = schedule_from_config(cfg.mesh, degrees["pipeline"])
    gib = 2**30
    return {
        "config_params": run.model_cfg.num_params(), "devices": n, "mesh": degrees,
        "pipeline": {"repeats": schedule.repeats, "microbatches": schedule.microbatches,
                     "bubble_fraction": round(schedule.bubble_fraction, 4)} if degrees["pipeline"] > 1
        else None,
        "global_batch": t.global_batch, "microbatches": t.microbatches, "seq_len": t.seq_len,
        "dtype": run.model_cfg.dtype, "remat": run.model_cfg.remat, "compile_s": round(compile_s, 1),
        "argument_gib_per_device": round(memory.argument_size_in_bytes / gib, 2),
        "output_gib_per_device": round(memory.output_size_in_bytes / gib, 2),
        "alias_gib_per_device": round(memory.alias_size_in_bytes / gib, 2),
        "temp_gib_per_device": round(memory.temp_size_in_bytes / gib, 2),
        "peak_gib_per_device": round((memory.argument_size_in_bytes + memory.output_size_in_bytes
                                      - memory.alias_size_in_bytes + memory.temp_size_in_bytes) / gib, 2),
        "xla_flops_per_device": float(cost.get("flops", 0.0)) if cost else None,
        "model_flops_per_device": model_flops / n,
    }


def _main(argv):
    del argv
    print(json.dumps(aot_report(_CONFIG.value)))


if __name__ == "__main__":
    flags.register_validator("devices", lambda n: n > 0)
    # The device count must be fixed before JAX starts its CPU backend.
    app.call_after_init(lambda: jax.config.update("jax_num_cpu_devices", _DEVICES.value))
    app.run(_main)
