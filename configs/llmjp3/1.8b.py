"""LLM-jp-3 1.8B (Llama-2 architecture, LLM-jp-3 hyperparameters).

  llmjp-train --config=configs/llmjp3/1.8b.py --workdir=runs/llmjp3-1.8b

Sized for v5p-8 (the TPU compiler's per-chip plan; benchmarks/RESULTS.md):

  llmjp-train --config=configs/llmjp3/1.8b.py --dry_run --target=v5p-8
"""

from llmjp_jax.presets import llmjp3


def get_config():
    return llmjp3(num_layers=24, hidden=2048, ffn=7168, num_heads=16, num_kv_heads=16, peak_lr=3e-4,
                  global_batch=512, microbatches=16)
