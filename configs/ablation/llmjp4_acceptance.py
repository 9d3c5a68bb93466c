"""LLM-jp-4's corpus acceptance test as a 2^(5-2) design: the 8B preset on a mixture with the
candidate subsets, and the five changes as factors (FACTORS, read by llmjp-ablate --factors).

Each subset is a folder made by llmjp-tokenize under data/llmjp4/ (the repeats follow llm-jp.md:
x4 Japanese CC and top FineWeb, x8 curated sets, x1 the rest). Plan the 8 runs, train each, analyze:

  llmjp-ablate design --config=configs/ablation/llmjp4_acceptance.py \
      --factors=configs/ablation/llmjp4_acceptance.py --runs=8 --out=runs/llmjp4-acceptance
  llmjp-train --flagfile=runs/llmjp4-acceptance/run01.flags
  llmjp-ablate analyze --plan=runs/llmjp4-acceptance/plan.json --metric=eval_loss/ja
"""

from llmjp_jax.presets import llmjp4

SUBSETS = {  # name: repeats in the baseline mixture
    "ja_cc": 4.0, "ja_curated": 8.0, "fineweb_top": 4.0, "fineweb": 1.0, "stack_v1": 1.0,
    "stack_v2": 1.0, "megamath": 1.0, "parallel": 8.0, "finepdfs": 1.0,
}

FACTORS = [
    {"name": "stack_v2", "low": {"stack_v1": 1.0, "stack_v2": 0.0},
     "high": {"stack_v1": 0.0, "stack_v2": 1.0}},  # replace Stack v1 by v2
    {"name": "less_fineweb", "subset": "fineweb", "low": 1.0, "high": 0.5},
    {"name": "megamath"},
    {"name": "parallel"},
    {"name": "finepdfs"},
]


def get_config():
    c = llmjp4(num_layers=32, hidden=4096, ffn=14336, num_heads=32, num_kv_heads=8, microbatches=32)
    c.data.mixture = {name: {"dir": f"data/llmjp4/{name}", "repeats": repeats, "level": "L1"}
                      for name, repeats in SUBSETS.items()}
    return c
