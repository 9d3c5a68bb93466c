"""LLM-jp-4 32B (GQA, RoPE theta 500k, warmup-stable-decay with 1-sqrt decay).

The global batch (1024 x 4096) is this project's default, not a published figure.
Stable phase, then a decay branch from a saved stable-phase checkpoint:

  llmjp-train --config=configs/llmjp4/32b.py --workdir=runs/llmjp4-32b
  llmjp-train --config=configs/llmjp4/32b.py --workdir=runs/llmjp4-32b-decay \
      --config.train.init_from=runs/llmjp4-32b:2900000 --config.optim.decay_start=2900000

Sized for v5p-128 (the TPU compiler's per-chip plan; benchmarks/RESULTS.md):

  llmjp-train --config=configs/llmjp4/32b.py --dry_run --target=v5p-128
"""

from llmjp_jax.presets import llmjp4


def get_config():
    return llmjp4(num_layers=64, hidden=5120, ffn=27648, num_heads=40, num_kv_heads=8, microbatches=16)
