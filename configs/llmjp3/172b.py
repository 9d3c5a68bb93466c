"""LLM-jp-3 172B (Llama-2 architecture with GQA, LLM-jp-3 hyperparameters, z-loss 1e-4).

LLM-jp trained it with TP=4, PP=16; until the pipeline axis lands this preset
uses tensor=4 and FSDP over the rest.

  llmjp-train --config=configs/llmjp3/172b.py --workdir=runs/llmjp3-172b
  llmjp-train --config=configs/llmjp3/172b.py --dry_run --devices=256
"""

from llmjp_jax.presets import llmjp3


def get_config():
    c = llmjp3(num_layers=96, hidden=12288, ffn=38464, num_heads=96, num_kv_heads=16, peak_lr=8e-5,
               global_batch=1728, tensor=4)
    c.train.z_loss = 1e-4
    return c
