"""Accelerators to compile for without having them: TPU slices (libtpu) and NVIDIA GPUs
(the XLA:GPU compiler, parallel/gpu_targets.py).

`--target=v5p-256` names a Cloud TPU slice as gcloud does: for v4 and v5p the number counts
TensorCores (2 per chip, run as one "megacore" device), for v5e and v6e it counts chips.
`2xv5p-128` is two such slices joined by the data-centre network (multi-slice; the mesh's
`mesh.dcn` axes cross it). The devices returned are abstract: a `Mesh` can be built on them
and a jitted function lowered and compiled by the real TPU compiler on this host, which reads
no TPU and allocates nothing, so its per-chip memory plan can be read (train/aot.py).
`h100-80gb:32` is 32 H100s, 8 per node (`h200:16`, and `h100-80gb:64:4` for 4 per node).
"""

import dataclasses
import os
import re

from llmjp_jax.errors import UserError
from llmjp_jax.parallel import gpu_targets

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class TpuChip:
    name: str
    hbm_bytes: int
    cores_per_chip_in_name: int  # what the number in "v5p-8" counts per chip
    shapes: dict  # chips -> slice shape in chips, as Cloud TPU offers them
    megacore: bool


_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
       512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16", 6144: "16x16x24"}
_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}

# HBM per chip from the Cloud TPU system-architecture pages (v4 32 GiB, v5e 16 GiB, v5p 95 GiB,
# v6e 32 GiB).
TPU_CHIPS = {
    "v4": TpuChip("v4", 32 * GIB, 2, _3D, True),
    "v5p": TpuChip("v5p", 95 * GIB, 2, _3D, True),
    "v5e": TpuChip("v5e", 16 * GIB, 1, _2D, False),
    "v6e": TpuChip("v6e", 32 * GIB, 1, _2D, False),
}
_ALIASES = {"v5litepod": "v5e", "v6": "v6e", "v5": "v5p"}


@dataclasses.dataclass(frozen=True)
class Target:
    """Devices to compile for: one or more TPU slices, or GPU nodes."""

    name: str  # as given, e.g. "2xv5p-128"
    chip: object  # TpuChip or gpu_targets.GpuChip
    count: int  # chips per slice (TPU) or GPUs in all
    slices: int = 1  # TPU slices
    per_node: int = 8  # GPUs per node

    @property
    def platform(self) -> str:
        return "tpu" if isinstance(self.chip, TpuChip) else "gpu"

    @property
    def num_devices(self) -> int:
        return self.count * self.slices

    @property
    def hbm_bytes(self) -> int:
        return self.chip.hbm_bytes if self.platform == "tpu" else self.chip.memory_bytes

    def devices(self) -> list:
        return self._tpu_devices() if self.platform == "tpu" else self._gpu_devices()

    def _tpu_devices(self) -> list:
        # Compiling touches no TPU, so several processes may load libtpu at once (its lockfile
        # would otherwise let only one process on the host use it), and libtpu need not look for
        # the TPU VM it runs on (without these it prints errors about the missing TPU environment).
        accelerator = f"{self.chip.name}-{self.count * self.chip.cores_per_chip_in_name}"
        for var, value in (("ALLOW_MULTIPLE_LIBTPU_LOAD", "1"), ("TPU_SKIP_MDS_QUERY", "1"),
                           ("TPU_ACCELERATOR_TYPE", accelerator), ("TPU_WORKER_HOSTNAMES", "localhost"),
                           ("TPU_WORKER_ID", "0")):
            os.environ.setdefault(var, value)
        from jax.experimental import topologies

        shape = self.chip.shapes[self.count]
        kwargs = {"chip_config_name": "megacore"} if self.chip.megacore else {}
        try:
            topology = topologies.get_topology_desc(
                platform="tpu", topology_name=f"{self.chip.name}:{shape}", num_slices=self.slices, **kwargs)
        except Exception as e:  # noqa: BLE001 -- libtpu raises RuntimeError or XlaRuntimeError
            raise TargetError(f"--target={self.name}: the TPU compiler could not describe {self.chip.name} "
                              f"{shape} ({_first_line(e)}). It comes with libtpu: "
                              "pip install -e '.[tpu]'.") from e
        return list(topology.devices)

    def _gpu_devices(self) -> list:
        try:
            return gpu_targets.gpu_devices(self.chip, self.count, self.per_node)
        except Exception as e:  # noqa: BLE001
            raise TargetError(
                f"--target={self.name}: the XLA:GPU compiler is not available ({_first_line(e)}). It comes "
                f"with the CUDA plugin: pip install -e '.[gpu]' (no GPU needed); {gpu_targets.SKIP_CHECK}=1 "
                "must be set before JAX starts (llmjp-train does this for --target).") from e


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


class TargetError(UserError):
    """A --target that cannot be compiled for; the message says why."""


def parse_target(name: str) -> Target:
    """"v5p-8", "v6e-256", "2xv5p-128", "h100-80gb:32", "h200:16:4" -> Target, or TargetError."""
    spec = name.strip().lower()
    if spec.split(":")[0] in gpu_targets.GPU_CHIPS:
        return _parse_gpu(name, spec)
    m = re.fullmatch(r"(?:(\d+)x)?(v\d+[a-z]*|v5litepod)-(\d+)", spec)
    if not m:
        raise TargetError(f"--target={name!r}: expected a Cloud TPU slice such as v5p-8, v6e-256 or "
                          f"2xv5p-128 (chips: {', '.join(TPU_CHIPS)}), or GPUs such as h100-80gb:32 "
                          f"({', '.join(gpu_targets.GPU_CHIPS)}).")
    slices, chip_name, count = int(m.group(1) or 1), m.group(2), int(m.group(3))
    chip = TPU_CHIPS.get(_ALIASES.get(chip_name, chip_name))
    if chip is None:
        raise TargetError(f"--target={name!r}: unknown TPU {chip_name!r}; known: {', '.join(TPU_CHIPS)}.")
    if count % chip.cores_per_chip_in_name or count // chip.cores_per_chip_in_name not in chip.shapes:
        sizes = ", ".join(f"{chip.name}-{c * chip.cores_per_chip_in_name}" for c in chip.shapes)
        raise TargetError(f"--target={name!r}: no such {chip.name} slice; the shapes are {sizes}.")
    return Target(name, chip, count // chip.cores_per_chip_in_name, slices)


def _parse_gpu(name: str, spec: str) -> Target:
    parts = spec.split(":")
    try:
        count = int(parts[1]) if len(parts) > 1 else 1
        per_node = int(parts[2]) if len(parts) > 2 else 8
    except ValueError:
        count = per_node = 0
    if len(parts) > 3 or count < 1 or per_node < 1 or (count > per_node and count % per_node):
        raise TargetError(f"--target={name!r}: expected KIND:GPUS[:GPUS_PER_NODE], e.g. h100-80gb:32 "
                          "(8 per node by default; more than one node needs a multiple of it).")
    return Target(name, gpu_targets.GPU_CHIPS[parts[0]], count, per_node=per_node)
