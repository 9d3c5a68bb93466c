"""LLM-jp-3 13B (Llama-2 architecture, LLM-jp-3 hyperparameters).

  llmjp-train --config=configs/llmjp3/13b.py --workdir=runs/llmjp3-13b
  llmjp-train --config=configs/llmjp3/13b.py --dry_run
"""

from llmjp_jax.presets import llmjp3


def get_config():
    return llmjp3(num_layers=40, hidden=5120, ffn=13824, num_heads=40, num_kv_heads=40, peak_lr=2e-4,
                  global_batch=1024, tensor=2)  # LLM-jp: TP=2, PP=2 (pipeline: a later issue)
