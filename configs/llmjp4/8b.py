"""LLM-jp-4 8B (GQA, RoPE theta 500k, warmup-stable-decay with 1-sqrt decay).

The global batch (1024 x 4096) is this project's default, not a published figure.
Stable phase, then a decay branch from a saved stable-phase checkpoint:

  llmjp-train --config=configs/llmjp4/8b.py --workdir=runs/llmjp4-8b
  llmjp-train --config=configs/llmjp4/8b.py --workdir=runs/llmjp4-8b-decay \
      --config.train.init_from=runs/llmjp4-8b:2900000 --config.optim.decay_start=2900000

Sized for v5p-32 (the TPU compiler's per-chip plan; benchmarks/RESULTS.md):

  llmjp-train --config=configs/llmjp4/8b.py --dry_run --target=v5p-32
"""

from llmjp_jax.presets import llmjp4


def get_config():
    return llmjp4(num_layers=32, hidden=4096, ffn=14336, num_heads=32, num_kv_heads=8, microbatches=32)
