"""Accelerators the planner knows: memory, dense bf16 peak, and the two links a collective can cross.

A "node" is what the fast link joins: an NVLink domain of GPUs (a server) or one TPU slice (ICI).
Nodes are joined by the slower network: InfiniBand for GPUs, the data-centre network (DCN) for
TPU slices. Every figure can be overridden from the command line (llmjp-plan --hbm_gib=...).

Sources (vendor data sheets; the doc next to this file lists them): dense bf16 without sparsity;
link figures are per device and per direction. HBM is what the compiler may use (XLA's own limits
where this project reads them: parallel/targets.py and parallel/gpu_targets.py).
"""

import dataclasses

from llmjp_jax.parallel.targets import TargetError, parse_target

GB = 1e9
GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Hardware:
    name: str
    platform: str  # "gpu" or "tpu": decides the attention kernel ("auto") and the check's compiler
    hbm_bytes: int
    peak_flops: float  # dense bf16 per device
    intra_bw: float  # bytes/s per device per direction, inside a node (NVLink / ICI along one axis)
    inter_bw: float  # bytes/s per device per direction, between nodes (InfiniBand / DCN)
    per_node: int  # devices per node (GPU server) or chips per slice (TPU)
    target_kind: str  # the name parallel/targets.py knows, for --check ("" if none)


# name: platform, HBM bytes, peak FLOP/s, intra GB/s, inter GB/s, devices per node, target kind.
_TABLE = {
    "h100-80gb": ("gpu", 84_942_979_072, 989e12, 450, 50, 8, "h100-80gb"),
    "h200": ("gpu", 151_397_597_184, 989e12, 450, 50, 8, "h200"),
    "a100-40gb": ("gpu", 40 * GIB, 312e12, 300, 25, 8, ""),
    "a100-80gb": ("gpu", 80 * GIB, 312e12, 300, 25, 8, ""),
    "b200": ("gpu", 180 * 10**9, 2250e12, 900, 50, 8, ""),
    "v4": ("tpu", 32 * GIB, 275e12, 100, 6.25, 64, "v4"),
    "v5e": ("tpu", 16 * GIB, 197e12, 100, 6.25, 256, "v5e"),
    "v5p": ("tpu", 95 * GIB, 459e12, 200, 6.25, 256, "v5p"),
    "v6e": ("tpu", 32 * GIB, 918e12, 224, 6.25, 256, "v6e"),
}
KINDS = tuple(_TABLE)


class HardwareError(TargetError):
    """An unknown accelerator or a device count it cannot have; the message says which."""


def lookup(kind: str, **overrides) -> Hardware:
    """The table's row for `kind` ("h100-80gb", "v5p", ...), with any field overridden (None: keep)."""
    row = _TABLE.get(kind.strip().lower())
    if row is None:
        raise HardwareError(f"--hardware={kind!r}: unknown; choose one of {', '.join(KINDS)} "
                            "(or a TPU slice such as v5p-512, or h100-80gb:64).")
    platform, hbm, peak, intra, inter, per_node, target = row
    hw = Hardware(kind.lower(), platform, hbm, peak, intra * GB, inter * GB, per_node, target)
    return dataclasses.replace(hw, **{k: v for k, v in overrides.items() if v is not None})


def resolve(hardware: str, nodes: int | None = None, per_node: int | None = None,
            **overrides) -> tuple[Hardware, int]:
    """(hardware, number of devices) from --hardware (a kind; a TPU slice "v5p-512" or "2xv5p-128";
    GPUs "h100-80gb:64") and --nodes / --gpus_per_node (only with a plain kind)."""
    for flag, value in (("--nodes", nodes), ("--gpus_per_node", per_node)):
        if value is not None and value < 1:
            raise HardwareError(f"{flag}={value}: must be at least 1.")
    spec = hardware.strip().lower()
    if spec in _TABLE:
        hw = lookup(spec, per_node=per_node, **overrides)
        return hw, hw.per_node * (nodes or 1)
    if nodes is not None or per_node is not None:
        raise HardwareError(f"--hardware={hardware!r} already says how many devices: --nodes and "
                            "--gpus_per_node go with a plain kind (--hardware=h100-80gb --nodes=64), "
                            "or write h100-80gb:512:8 / 4xv5p-128.")
    try:
        target = parse_target(spec)
    except TargetError as e:
        raise HardwareError(str(e).replace("--target=", "--hardware=")) from e
    kind = spec.split(":")[0] if target.platform == "gpu" else target.chip.name
    node = target.per_node if target.platform == "gpu" else target.count
    return lookup(kind, per_node=node, **overrides), target.num_devices


TPU_HOST_CHIPS = 4  # chips per TPU VM host in a multi-host slice (v5e / v6e hosts of up to 8 run alone)


def processes(hw: Hardware, devices: int) -> int:
    """JAX processes a run of `devices` starts: one per GPU node (launch/slurm.sbatch), one per TPU
    host. validate needs it: train.global_batch and data.loader_shards must divide over them."""
    if hw.platform == "gpu":
        return max(1, devices // hw.per_node)
    if hw.name in ("v5e", "v6e") and devices <= 8:
        return 1
    return max(1, devices // TPU_HOST_CHIPS)


def target_name(hw: Hardware, devices: int) -> str | None:
    """The parallel/targets.py name of `devices` of this hardware, for compiling; None if unknown."""
    if not hw.target_kind:
        return None
    if hw.platform == "gpu":
        return f"{hw.target_kind}:{devices}:{hw.per_node}"
    cores = 2 if hw.target_kind in ("v4", "v5p") else 1
    slices = max(1, devices // hw.per_node)
    name = f"{hw.target_kind}-{devices // slices * cores}"
    return f"{slices}x{name}" if slices > 1 else name
