"""Mesh layout: with mesh.dcn degrees each granule (process or TPU slice) holds a contiguous
sub-mesh, so only the axes named in mesh.dcn cross granules."""

import dataclasses

import numpy as np
import pytest

from llmjp_jax.config import ConfigError, default_config, validate
from llmjp_jax.parallel.mesh import device_grid


@dataclasses.dataclass(frozen=True)
class FakeDevice:
    id: int
    process_index: int
    platform: str = "gpu"
    device_kind: str = "fake"


def _devices(processes: int, per_process: int):
    return [FakeDevice(p * per_process + i, p) for p in range(processes) for i in range(per_process)]


def _mesh_cfg(dcn=None, **degrees):
    cfg = default_config().mesh
    cfg.update(degrees)
    cfg.dcn.update(dcn or {})
    return cfg


def _processes(grid):
    return np.vectorize(lambda d: d.process_index)(grid)


@pytest.mark.parametrize("axis", ["data", "fsdp", "pipeline"])
def test_only_the_dcn_axis_crosses_processes(axis):
    degrees = dict(data=1, pipeline=1, fsdp=1, tensor=4)
    degrees[axis] = 4
    grid = device_grid(_mesh_cfg({axis: 4}, **degrees), _devices(4, 4))
    index = ("data", "pipeline", "fsdp", "tensor").index(axis)
    owners = np.moveaxis(_processes(grid), index, 0).reshape(4, -1)
    assert all(len(set(row)) == 1 for row in owners)  # one process per index of the dcn axis
    assert sorted(owners[:, 0]) == [0, 1, 2, 3]


def test_data_over_nodes_fsdp_inside():
    grid = device_grid(_mesh_cfg({"data": 2}, data=2, pipeline=1, fsdp=4, tensor=1), _devices(2, 4))
    assert _processes(grid)[:, 0, :, 0].tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]


def test_granule_count_must_match():
    with pytest.raises(ValueError, match=r"= 4 granules, but the devices span 2 processes"):
        device_grid(_mesh_cfg({"data": 4}, data=4, pipeline=1, fsdp=2, tensor=1), _devices(2, 4))


def test_dcn_degree_must_divide_the_axis():
    cfg = default_config()
    cfg.mesh.update(data=2, fsdp=4, tensor=1)
    cfg.mesh.dcn.data = 4
    with pytest.raises(ConfigError, match=r"mesh.dcn.data=4 must be >= 1 and divide mesh.data=2"):
        validate(cfg, 8)
