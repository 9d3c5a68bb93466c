"""What a config will cost, computed without allocating anything (for --dry_run)."""

import math

import jax
import optax
from flax import nnx
from jax.sharding import PartitionSpec

from llmjp_jax.config import validate
from llmjp_jax.model import LlamaConfig
from llmjp_jax.optim import make_optimizer
from llmjp_jax.parallel.mesh import AXES
from llmjp_jax.parallel.pipeline import schedule_from_config
from llmjp_jax.parallel.rules import logical_to_mesh
from llmjp_jax.train.state import init_model


def _mesh_devices(mesh_cfg) -> int:
    degrees = [int(mesh_cfg[a]) for a in AXES]
    return math.prod(degrees) if -1 not in degrees else jax.device_count()


def _shard_bytes(leaf, spec: PartitionSpec, degrees: dict[str, int]) -> float:
    size = leaf.size * leaf.dtype.itemsize
    for axes in logical_to_mesh(spec):
        for axis in (axes,) if isinstance(axes, str) else (axes or ()):
            size /= degrees[axis]
    return size


def describe(cfg, num_devices: int | None = None) -> dict:
    """Parameter counts (from eval_shape) and per-device bytes of params + optimizer state.

    `num_devices` is the device count to plan for (default: the mesh's fixed
    degrees, or the local devices when one axis is -1); nothing is allocated.
    """
    num_devices = num_devices or _mesh_devices(cfg.mesh)
    degrees = validate(cfg, num_devices)
    model_cfg = LlamaConfig.from_dict(cfg.model)
    abstract = nnx.state(nnx.eval_shape(lambda: init_model(model_cfg, 0)))
    logical = nnx.to_pure_dict(nnx.get_partition_spec(abstract))
    params = nnx.to_pure_dict(abstract)
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    opt = jax.eval_shape(tx.init, params)
    opt_specs = optax.tree_map_params(tx, lambda _, s: s, opt, logical,
                                      transform_non_params=lambda _: PartitionSpec())
    is_spec = lambda x: isinstance(x, PartitionSpec)  # noqa: E731
    per_device = sum(jax.tree.leaves(jax.tree.map(
        lambda s, a: _shard_bytes(a, s, degrees), {"p": logical, "o": opt_specs},
        {"p": params, "o": opt}, is_leaf=is_spec)))
    num_params = sum(x.size for x in jax.tree.leaves(params))
    embedding = model_cfg.embedding_params()
    return {
        "params": num_params,
        "params_non_embedding": num_params - embedding,
        "params_formula": model_cfg.num_params(),
        "padded_vocab": model_cfg.padded_vocab,
        "mesh": degrees,
        "bytes_per_device_params_and_optimizer": int(per_device),
        "gib_per_device_params_and_optimizer": round(per_device / 2**30, 3),
        "pipeline": _pipeline(cfg, degrees),
        "flops_per_token": model_cfg.flops_per_token(cfg.train.seq_len),
        "tokens_per_step": cfg.train.global_batch * cfg.train.seq_len,
    }


def _pipeline(cfg, degrees: dict[str, int]) -> dict | None:
    if degrees["pipeline"] == 1:
        return None
    schedule = schedule_from_config(cfg.mesh, degrees["pipeline"])
    return {"stages": schedule.stages, "repeats": schedule.repeats,
            "microbatches": schedule.microbatches, "bubble_fraction": round(schedule.bubble_fraction, 4)}
