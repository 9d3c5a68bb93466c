"""Digests of the train state: one 32-bit hash per array, the same for any sharding.

A checkpoint records the digests of the state it saved; a restore recomputes them on what
it read and refuses a mismatch, so a damaged file is found before training on it (orbax and
tensorstore do not checksum array data). Hand-written because neither library offers one.

Each element's bits are mixed with its flat index (murmur3's finaliser) and the results are
summed modulo 2^32: integer addition is exact and order-free, so the digest is the same
whichever mesh holds the array, and a flipped bit or swapped elements change it.
"""

import jax
import jax.numpy as jnp
import numpy as np

_UINT = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}


def _fmix32(h):
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _flat_index(shape) -> jax.Array:
    """Row-major element index of every position, modulo 2^32 (arrays may exceed 2^32 elements)."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride % 2**32)
        stride *= shape[axis]
    return index


def _array_digest(x: jax.Array) -> jax.Array:
    size = jnp.dtype(x.dtype).itemsize
    if size not in _UINT:
        raise TypeError(f"no digest for {x.dtype} arrays")
    bits = jax.lax.bitcast_convert_type(x, _UINT[size]).astype(jnp.uint32)
    mixed = _fmix32(bits ^ _fmix32(_flat_index(x.shape) + jnp.uint32(0x9E3779B9)))
    return jnp.sum(mixed, dtype=jnp.uint32)


def _non_finite(x: jax.Array) -> jax.Array:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.int32(0)
    return jnp.sum(~jnp.isfinite(x), dtype=jnp.int32)


@jax.jit
def _digests(state):
    return jax.tree.map(_array_digest, state), sum(jax.tree.leaves(jax.tree.map(_non_finite, state)))


def state_digests(state) -> tuple[dict[str, str], int]:
    """({array path: 8 hex digits}, number of non-finite values) for a pytree of arrays."""
    digests, non_finite = jax.device_get(_digests(state))
    flat = jax.tree_util.tree_flatten_with_path(digests)[0]
    return {jax.tree_util.keystr(path): f"{int(np.uint32(d)):08x}" for path, d in flat}, int(non_finite)


def mismatches(saved: dict[str, str], restored: dict[str, str]) -> list[str]:
    """Array paths whose digests differ, or that one side lacks."""
    return sorted(p for p in set(saved) | set(restored) if saved.get(p) != restored.get(p))
