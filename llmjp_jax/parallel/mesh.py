"""Device mesh with the axes data, pipeline, fsdp and tensor, built from the config."""

import math

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from llmjp_jax.errors import ConfigError, require

AXES = ("data", "pipeline", "fsdp", "tensor")


def resolve_degrees(mesh_cfg, num_devices: int) -> dict[str, int]:
    """Returns each axis's degree; at most one axis may be -1, meaning "the rest"."""
    degrees = {a: int(mesh_cfg[a]) for a in AXES}
    free = [a for a, d in degrees.items() if d == -1]
    bad = [a for a, d in degrees.items() if d == 0 or d < -1]
    if bad:
        raise ConfigError(f"mesh.{bad[0]}={degrees[bad[0]]}: a degree must be >= 1 or -1 (the rest).")
    if len(free) > 1:
        raise ConfigError(f"Only one mesh axis may be -1, got {', '.join('mesh.' + a for a in free)}.")
    fixed = math.prod(d for d in degrees.values() if d != -1)
    if free:
        if num_devices % fixed:
            others = " x ".join(f"mesh.{a}={d}" for a, d in degrees.items() if d != -1)
            raise ConfigError(
                f"mesh.{free[0]}=-1 cannot fill {num_devices} devices: {others} = {fixed} "
                f"does not divide {num_devices}.")
        degrees[free[0]] = num_devices // fixed
    total = math.prod(degrees.values())
    if total != num_devices:
        shown = " x ".join(f"mesh.{a}={d}" for a, d in degrees.items())
        raise ConfigError(
            f"The mesh {shown} needs {total} devices but {num_devices} are available; "
            "change mesh.data / mesh.fsdp / mesh.tensor / mesh.pipeline (one may be -1).")
    return degrees


def dcn_degrees(mesh_cfg, degrees: dict[str, int]) -> dict[str, int]:
    """mesh.dcn.<axis>: how much of each axis's degree spans granules (hosts or TPU slices),
    joined by the slower data-centre network; the rest stays inside one granule."""
    dcn = {a: int(mesh_cfg.get("dcn", {}).get(a, 1)) for a in AXES}
    for a in AXES:
        if dcn[a] < 1 or degrees[a] % dcn[a]:
            raise ConfigError(f"mesh.dcn.{a}={dcn[a]} must be >= 1 and divide mesh.{a}={degrees[a]}.")
    return dcn


def check_model_split(model, degrees: dict[str, int]):
    """ConfigError unless the tensor axis divides the heads, the FFN and the padded vocabulary
    (each is split across it) and the fsdp axis divides the hidden size (weights are split on it).
    `model`: a LlamaConfig."""
    tp = degrees["tensor"]
    for name in ("num_heads", "num_kv_heads", "ffn"):
        size = getattr(model, name)
        require(size % tp == 0, f"mesh.tensor={tp} does not divide model.{name}={size}.")
    require(model.padded_vocab % tp == 0, f"mesh.tensor={tp} does not divide the padded vocabulary "
            f"{model.padded_vocab}; raise model.vocab_multiple.")
    require(model.hidden % degrees["fsdp"] == 0,
            f"mesh.fsdp={degrees['fsdp']} does not divide model.hidden={model.hidden}.")


def device_grid(mesh_cfg, devices) -> np.ndarray:
    """The devices arranged as [data, pipeline, fsdp, tensor].

    With mesh.dcn degrees, each granule (a TPU slice, else a process: launch one process per
    host) holds a contiguous sub-mesh, so only the axes named in mesh.dcn cross granules.
    """
    degrees = resolve_degrees(mesh_cfg, len(devices))
    dcn = dcn_degrees(mesh_cfg, degrees)
    shape = tuple(degrees[a] for a in AXES)
    if math.prod(dcn.values()) == 1:
        # All local devices, or a TPU slice compiled for (parallel/targets.py): arranged by the
        # physical topology, so that neighbouring mesh positions are linked chips.
        if len(devices) == len(jax.devices()) or devices[0].platform == "tpu":
            return mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
        return np.asarray(devices).reshape(shape)
    by_slice = devices[0].platform == "tpu" and getattr(devices[0], "slice_index", None) is not None
    granules = len({d.slice_index if by_slice else d.process_index for d in devices})
    if granules != math.prod(dcn.values()):
        shown = " x ".join(f"mesh.dcn.{a}={dcn[a]}" for a in AXES)
        raise ConfigError(f"{shown} = {math.prod(dcn.values())} granules, but the devices span {granules} "
                         f"{'TPU slices' if by_slice else 'processes'}; make them equal.")
    ici = tuple(degrees[a] // dcn[a] for a in AXES)
    return mesh_utils.create_hybrid_device_mesh(
        ici, tuple(dcn[a] for a in AXES), devices, process_is_granule=not by_slice,
        allow_split_physical_axes=True)


def make_mesh(mesh_cfg, devices=None) -> Mesh:
    """A mesh over `devices` (default: all) with Auto axes, so GSPMD propagates shardings."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(device_grid(mesh_cfg, devices), AXES, axis_types=(AxisType.Auto,) * len(AXES))
