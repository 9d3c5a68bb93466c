"""The `xla` attention path with and without skipping the all-masked key blocks, on CPU.

  python benchmarks/bench_attention.py --seq_len=512

Forward and backward of causal attention at the cpu_small shapes (batch 4, 8 heads of 64):
`blocked` is model/attention.causal_attention (query block i meets keys 0 .. end of block i),
`full` is one `attend` over the whole causal mask. Prints one JSON line per path: the median
of `--repeats` timed runs after a compiling one, and how far the two outputs differ.
"""

import json
import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from llmjp_jax.model.attention import attend, causal_attention

_SEQ = flags.DEFINE_integer("seq_len", 512, "Sequence length.")
_BATCH = flags.DEFINE_integer("batch", 4, "Sequences.")
_HEADS = flags.DEFINE_integer("heads", 8, "Attention heads (as many KV heads).")
_DIM = flags.DEFINE_integer("head_dim", 64, "Head dimension.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed runs per path.")


def _full(q, k, v):
    t = q.shape[1]
    return attend(q, k, v, jnp.tril(jnp.ones((t, t), bool))[None])


def _fwd_bwd(fn):
    def loss(q, k, v):
        return jnp.sum(fn(q, k, v) ** 2)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


def _time(step, args) -> float:
    jax.block_until_ready(step(*args))
    times = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        jax.block_until_ready(step(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _main(argv):
    del argv
    shape = (_BATCH.value, _SEQ.value, _HEADS.value, _DIM.value)
    q, k, v = (jax.random.normal(jax.random.key(i), shape, jnp.float32) for i in range(3))
    diff = float(jnp.max(jnp.abs(causal_attention(q, k, v) - _full(q, k, v))))
    results = {name: _time(_fwd_bwd(fn), (q, k, v))
               for name, fn in (("blocked", causal_attention), ("full", _full))}
    for name, seconds in results.items():
        print(json.dumps(dict(path=name, seq_len=_SEQ.value, shape=shape, seconds=round(seconds, 4),
                              speedup_vs_full=round(results["full"] / seconds, 2),
                              max_abs_diff=diff)))


if __name__ == "__main__":
    app.run(_main)
