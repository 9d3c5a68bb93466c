"""Mesh construction and logical-axis rules: the only place that knows the mesh."""

from llmjp_jax.parallel.mesh import AXES, make_mesh, resolve_degrees
from llmjp_jax.parallel.rules import LOGICAL_RULES, batch_sharding, param_shardings, replicated

__all__ = ["AXES", "LOGICAL_RULES", "batch_sharding", "make_mesh", "param_shardings",
           "replicated", "resolve_degrees"]
