"""LLM-jp-3 980M (Llama-2 architecture, LLM-jp-3 hyperparameters).

  llmjp-train --config=configs/llmjp3/980m.py --workdir=runs/llmjp3-980m

Sized for v5p-8 (the TPU compiler's per-chip plan; benchmarks/RESULTS.md):

  llmjp-train --config=configs/llmjp3/980m.py --dry_run --target=v5p-8
"""

from llmjp_jax.presets import llmjp3


def get_config():
    return llmjp3(num_layers=20, hidden=1536, ffn=5376, num_heads=8, num_kv_heads=8, head_dim=192,
                  peak_lr=3e-4, global_batch=512, microbatches=16)
