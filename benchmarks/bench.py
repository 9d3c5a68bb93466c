"""Training throughput and MFU of a config on this machine, on random tokens (no data loading).

  python benchmarks/bench.py --config=configs/bench/cpu_small.py
  python benchmarks/bench.py --config=configs/llmjp3/1.8b.py --config.train.global_batch=8

Prints one JSON line: tokens/s, step time, model FLOPs per step, the devices'
peak FLOP/s (measured float32 matmul throughput on CPU, data sheet bf16 on
accelerators), MFU, and the compiled step's own FLOP count for comparison.
"""

import json
import platform
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from llmjp_jax.train.flops import peak_flops
from llmjp_jax.train.loop import Run
from llmjp_jax.train.state import init_state

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after 2 warm-up steps).")


def benchmark(cfg, steps: int) -> dict:
    run = Run(cfg, workdir="")
    t, model_cfg, devices = cfg.train, run.model_cfg, run.devices
    with run.context():
        state = init_state(model_cfg, run.tx, run.spec, seed=0)
        tokens = {"tokens": jax.device_put(np.random.default_rng(0).integers(
            0, model_cfg.vocab_size, (t.global_batch, t.seq_len + 1), dtype=np.int32), run.batch_sharding),
            "stop": jax.device_put(np.zeros(t.global_batch, np.int32), run.batch_sharding)}
        start = time.perf_counter()
        compiled = run.compile_step()
        compile_s = time.perf_counter() - start
        for _ in range(2):
            state, metrics = compiled(state, tokens)
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = compiled(state, tokens)
        jax.block_until_ready(metrics)
        step_time = (time.perf_counter() - start) / steps
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = model_cfg.flops_per_token(t.seq_len) * t.global_batch * t.seq_len
    peak = peak_flops(devices, model_cfg.compute_dtype)
    return {
        "device": devices[0].device_kind, "num_devices": len(devices), "host": platform.node(),
        "mesh": {a: run.mesh.shape[a] for a in run.mesh.axis_names}, "allocator": run.allocator,
        "params": model_cfg.num_params(), "global_batch": t.global_batch, "seq_len": t.seq_len,
        "dtype": model_cfg.dtype, "remat": model_cfg.remat, "compile_s": round(compile_s, 2),
        "step_time_s": round(step_time, 4),
        "tokens_per_sec": round(t.global_batch * t.seq_len / step_time, 1),
        "model_flops_per_step": flops, "xla_flops_per_step": float(cost.get("flops", 0.0)) if cost else None,
        "peak_flops": peak, "mfu": round(flops / step_time / peak, 4) if peak else None,
    }


def _main(argv):
    del argv
    print(json.dumps(benchmark(_CONFIG.value, _STEPS.value)))


if __name__ == "__main__":
    app.run(_main)
