"""Peak FLOP/s of the devices, for MFU.

Accelerators: dense bf16 peak per chip from the vendors' data sheets. CPUs have
no data sheet figure that XLA reaches, so the peak is measured: the best
matmul throughput of this host in the model's compute dtype (on CPUs with AVX512-BF16, bfloat16
matmuls outrun float32 ones, and against the float32 peak a bfloat16 model read over 100% MFU;
benchmarks/RESULTS.md).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

# Dense bfloat16 FLOP/s per chip (H100/H200: SXM; A100: SXM/PCIe).
PEAK_BF16 = (
    ("H200", 989e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),
    ("TPU v6", 918e12),
)

_measured_cpu_peak: dict[str, float] = {}  # by dtype name


def measure_cpu_matmul_flops(n: int = 2048, repeats: int = 10, dtype=jnp.float32) -> float:
    """Best `dtype` matmul FLOP/s of one XLA CPU device (it uses all host cores)."""
    with on_one_device():
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        matmul = jax.jit(lambda x: x @ x)
        matmul(a).block_until_ready()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            matmul(a).block_until_ready()
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def on_one_device():
    """A one-device mesh context: inside a training run's mesh, arrays would otherwise be
    replicated and every simulated device would do the matmul (the peak would read 1/devices)."""
    return jax.set_mesh(Mesh(np.asarray(jax.devices("cpu")[:1]), ("one",)))


def peak_flops(devices, dtype=jnp.float32) -> float:
    """Total peak FLOP/s of `devices` for matmuls in `dtype` (0 if the device kind is unknown);
    accelerators: their dense bfloat16 peak whatever `dtype` is."""
    kind = devices[0].device_kind
    if devices[0].platform == "cpu":
        # Simulated CPU devices share the same cores: the host's peak is the total.
        name = jnp.dtype(dtype).name
        if name not in _measured_cpu_peak:
            _measured_cpu_peak[name] = measure_cpu_matmul_flops(dtype=dtype)
        return _measured_cpu_peak[name]
    for name, flops in PEAK_BF16:
        if name.lower() in kind.lower():
            return flops * len(devices)
    return 0.0
