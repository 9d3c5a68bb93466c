"""NVIDIA GPUs to compile for without having them (`--target=h100-80gb:32`).

The XLA:GPU compiler lives in the CUDA plugin (`pip install -e '.[gpu]'`); given a target
description in place of the device query it would make on a real GPU, it compiles on a host
with no GPU and no driver (`get_topology_desc(platform="cuda", target_config=...)`). Checked
with jax 0.12.0.1: memory_analysis() and the compiled HLO work, cuDNN flash-attention calls
are emitted; cost_analysis() is not implemented there (`hlo_flops` stands in), and cuDNN's
workspace is not built without a GPU, so it is missing from the temporaries.
"""

import dataclasses
import os

# The plugin checks the CUDA driver when it loads and, without one, registers nothing
# ("topology not implemented for cuda"); this skips the check. It must be set before JAX
# starts its backends: the CLI sets it before anything touches a device.
SKIP_CHECK = "JAX_SKIP_CUDA_CONSTRAINTS_CHECK"


@dataclasses.dataclass(frozen=True)
class GpuChip:
    name: str  # the device_kind JAX reports
    sm_count: int
    memory_bandwidth: int  # bytes/s
    memory_bytes: int
    l2_cache_bytes: int
    clock_ghz: float
    compute_capability: tuple[int, int]


# Per-chip figures as XLA's own target specs give them (openxla/xla,
# xla/backends/gpu/target_config/specs/h100_sxm.txtpb and h200.txtpb, dumped from real GPUs).
GPU_CHIPS = {
    "h100-80gb": GpuChip("NVIDIA H100 80GB HBM3", 132, 3_352_320_000_000, 84_942_979_072,
                         52_428_800, 1.98, (9, 0)),
    "h200": GpuChip("NVIDIA H200 141GB HBM3e", 132, 4_800_000_000_000, 151_397_597_184,
                    52_428_800, 1.98, (9, 0)),
}

# A GpuTargetConfigProto (xla/stream_executor/device_description.proto) in text form: the
# chip's figures, then the limits every sm_90 part shares.
_TARGET = """\
gpu_device_info {{
  core_count: {sm_count} memory_bandwidth: {memory_bandwidth} device_memory_size: {memory_bytes}
  l2_cache_size: {l2_cache_bytes} clock_rate_ghz: {clock_ghz}
  cuda_compute_capability {{ major: {cc_major} minor: {cc_minor} }}
  name: "{name}" device_vendor: "NVIDIA Corporation"
  threads_per_block_limit: 1024 threads_per_warp: 32 threads_per_core_limit: 2048
  fpus_per_core: 128 shared_memory_per_block: 49152 shared_memory_per_block_optin: 232448
  shared_memory_per_core: 233472 registers_per_core_limit: 65536 registers_per_block_limit: 65536
  block_dim_limit_x: 2147483647 block_dim_limit_y: 65535 block_dim_limit_z: 65535
  thread_dim_limit_x: 1024 thread_dim_limit_y: 1024 thread_dim_limit_z: 64
}}
platform_name: "CUDA"
dnn_version_info {{ major: {dnn[0]} minor: {dnn[1]} patch: {dnn[2]} }}
runtime_version {{ major: 12 minor: 9 }}
device_description_str: "{name}"
"""


def target_config(chip: GpuChip) -> str:
    """The text target description of `chip`, for the cuDNN release installed beside JAX (XLA
    picks the cuDNN fusions and attention variants that release has)."""
    fields = dataclasses.asdict(chip)
    cc_major, cc_minor = fields.pop("compute_capability")
    return _TARGET.format(**fields, cc_major=cc_major, cc_minor=cc_minor, dnn=_cudnn_version())


def _cudnn_version() -> tuple[int, int, int]:
    try:
        from jax._src.lib import cuda_versions

        v = cuda_versions.cudnn_get_version()
        return v // 10000, (v // 100) % 100, v % 100
    except Exception:  # noqa: BLE001 -- no CUDA libraries: a common release
        return 9, 8, 0


def topology(count: int, per_node: int) -> str:
    """"<nodes>x1x<GPUs per node>": each node one NVLink domain, nodes joined by InfiniBand."""
    if count <= per_node:
        return f"1x1x{count}"
    return f"{count // per_node}x1x{per_node}"


def gpu_devices(chip: GpuChip, count: int, per_node: int) -> list:
    """`count` compile-only GPUs; device i is on node i // per_node (its process_index)."""
    os.environ.setdefault(SKIP_CHECK, "1")
    from jax.experimental import topologies

    desc = topologies.get_topology_desc(platform="cuda", topology=topology(count, per_node),
                                        target_config=target_config(chip))
    return list(desc.devices)


def hlo_flops(compiled) -> float | None:
    """FLOPs per device of a compiled GPU executable by XLA's cost analysis run on the host
    (cost_analysis() is not implemented for compile-only GPU executables). cuDNN and cuBLAS
    custom calls count 0, so this undercounts attention."""
    try:
        import jax
        from jax._src.lib import _jax

        module = compiled.runtime_executable().hlo_modules()[0]
        return float(dict(_jax.hlo_module_cost_analysis(jax.devices("cpu")[0].client, module))["flops"])
    except Exception:  # noqa: BLE001 -- a private API: report nothing rather than fail the plan
        return None
