"""LLM-jp-3 150M (Llama-2 architecture, LLM-jp-3 hyperparameters).

  llmjp-train --config=configs/llmjp3/150m.py --workdir=runs/llmjp3-150m

Sized for v5p-16 (the TPU compiler's per-chip plan; benchmarks/RESULTS.md). On v5p-8 (fsdp=4) the
TPU compiler in libtpu 0.0.50.1 stops with "No feasible span count for single input all reduce
scatter fusion" on the f32[99584,512] embedding; v6e slices from one chip up compile.

  llmjp-train --config=configs/llmjp3/150m.py --dry_run --target=v5p-16
"""

from llmjp_jax.presets import llmjp3


def get_config():
    return llmjp3(num_layers=12, hidden=512, ffn=2048, num_heads=8, num_kv_heads=8, peak_lr=3e-4,
                  global_batch=512, microbatches=16)
