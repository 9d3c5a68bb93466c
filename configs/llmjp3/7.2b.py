"""LLM-jp-3 7.2B (Llama-2 architecture, LLM-jp-3 hyperparameters).

  llmjp-train --config=configs/llmjp3/7.2b.py --workdir=runs/llmjp3-7.2b
  llmjp-train --config=configs/llmjp3/7.2b.py --dry_run
"""

from llmjp_jax.presets import llmjp3


def get_config():
    return llmjp3(num_layers=32, hidden=4096, ffn=11008, num_heads=32, num_kv_heads=32, peak_lr=2.5e-4,
                  global_batch=1024, tensor=2)  # LLM-jp: TP=2, PP=2 (pipeline: a later issue)
