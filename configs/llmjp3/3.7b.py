"""LLM-jp-3 3.7B (Llama-2 architecture, LLM-jp-3 hyperparameters).

  llmjp-train --config=configs/llmjp3/3.7b.py --workdir=runs/llmjp3-3.7b

Sized for v5p-16 (the TPU compiler's per-chip plan; benchmarks/RESULTS.md):

  llmjp-train --config=configs/llmjp3/3.7b.py --dry_run --target=v5p-16
"""

from llmjp_jax.presets import llmjp3


def get_config():
    return llmjp3(num_layers=28, hidden=3072, ffn=8192, num_heads=24, num_kv_heads=24, peak_lr=3e-4,
                  global_batch=1024, microbatches=32)
