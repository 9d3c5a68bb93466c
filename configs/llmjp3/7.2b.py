"""LLM-jp-3 7.2B (Llama-2 architecture, LLM-jp-3 hyperparameters).

  llmjp-train --config=configs/llmjp3/7.2b.py --workdir=runs/llmjp3-7.2b

Sized for v5p-64 (the TPU compiler's per-chip plan; benchmarks/RESULTS.md):

  llmjp-train --config=configs/llmjp3/7.2b.py --dry_run --target=v5p-64
"""

from llmjp_jax.presets import llmjp3


def get_config():
    c = llmjp3(num_layers=32, hidden=4096, ffn=11008, num_heads=32, num_kv_heads=32, peak_lr=2.5e-4,
               global_batch=1024, tensor=2, pipeline=2)
    # LLM-jp's layout: TP=2, PP=2. 8 accumulation steps of 8 pipeline microbatches: the bubble
    # is 1/9 of stage time; a pipeline microbatch of 16 sequences spans up to 16 data x fsdp.
    c.mesh.pipeline_microbatches = 8
    c.train.microbatches = 8
    return c
