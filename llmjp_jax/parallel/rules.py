"""Logical axis names (used by the model) -> mesh axes (from `mesh.py`).

Parameters are sharded FSDP-style over `fsdp` on their embed dimension and
Megatron-style over `tensor` on heads / mlp / vocab; the stacked layers over
`pipeline` (a no-op when it has one device). Activations are sharded on the
batch over data x fsdp. Every logical name the model uses must appear here.
"""

import jax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

BATCH = ("data", "fsdp")

LOGICAL_RULES = (
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("norm", None),
    ("layers", "pipeline"),
    ("act_batch", BATCH),
    # The batch of the final norm, output head and loss, after the layers: split over the
    # pipeline stages too, so they share that work instead of each doing all of it.
    ("act_head_batch", BATCH + ("pipeline",)),
    ("act_len", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
)
_RULES = dict(LOGICAL_RULES)


def logical_to_mesh(spec: PartitionSpec) -> PartitionSpec:
    return PartitionSpec(*(None if name is None else _RULES[name] for name in spec))


def param_shardings(abstract_state, mesh):
    """NamedShardings for an NNX state (or its abstract version), from its logical axes."""
    logical = nnx.get_partition_spec(abstract_state)
    return jax.tree.map(
        lambda s: NamedSharding(mesh, logical_to_mesh(s)), logical,
        is_leaf=lambda x: isinstance(x, PartitionSpec))


def batch_sharding(mesh) -> NamedSharding:
    """Sharding of a [batch, length] array: batch over data x fsdp."""
    return NamedSharding(mesh, PartitionSpec(BATCH))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
