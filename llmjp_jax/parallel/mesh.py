"""Device mesh with the axes data, pipeline, fsdp and tensor, built from the config."""

import math

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

AXES = ("data", "pipeline", "fsdp", "tensor")


def resolve_degrees(mesh_cfg, num_devices: int) -> dict[str, int]:
    """Returns each axis's degree; at most one axis may be -1, meaning "the rest"."""
    degrees = {a: int(mesh_cfg[a]) for a in AXES}
    free = [a for a, d in degrees.items() if d == -1]
    bad = [a for a, d in degrees.items() if d == 0 or d < -1]
    if bad:
        raise ValueError(f"mesh.{bad[0]}={degrees[bad[0]]}: a degree must be >= 1 or -1 (the rest).")
    if len(free) > 1:
        raise ValueError(f"Only one mesh axis may be -1, got {', '.join('mesh.' + a for a in free)}.")
    fixed = math.prod(d for d in degrees.values() if d != -1)
    if free:
        if num_devices % fixed:
            others = " x ".join(f"mesh.{a}={d}" for a, d in degrees.items() if d != -1)
            raise ValueError(
                f"mesh.{free[0]}=-1 cannot fill {num_devices} devices: {others} = {fixed} "
                f"does not divide {num_devices}.")
        degrees[free[0]] = num_devices // fixed
    total = math.prod(degrees.values())
    if total != num_devices:
        shown = " x ".join(f"mesh.{a}={d}" for a, d in degrees.items())
        raise ValueError(
            f"The mesh {shown} needs {total} devices but {num_devices} are available; "
            "change mesh.data / mesh.fsdp / mesh.tensor / mesh.pipeline (one may be -1).")
    return degrees


def make_mesh(mesh_cfg, devices=None) -> Mesh:
    """A mesh over `devices` (default: all) with Auto axes, so GSPMD propagates shardings."""
    devices = list(jax.devices() if devices is None else devices)
    degrees = resolve_degrees(mesh_cfg, len(devices))
    shape = tuple(degrees[a] for a in AXES)
    if len(devices) == len(jax.devices()):
        return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * len(AXES), devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), AXES, axis_types=(AxisType.Auto,) * len(AXES))
