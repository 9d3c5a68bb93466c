"""LLM-jp-3 172B (Llama-2 architecture with GQA, LLM-jp-3 hyperparameters, z-loss 1e-4).

LLM-jp trained it with TP=4, PP=16. Here the 16 stages run a circular schedule with 6 repeats
(one layer per stage per repeat), 16 pipeline microbatches per accumulation step and 27
accumulation steps: the bubble is 15/111 = 13.5% of stage time; on 256 devices each pipeline
microbatch puts one sequence on each of the 4 data x fsdp shards.

  llmjp-train --config=configs/llmjp3/172b.py --workdir=runs/llmjp3-172b

Laid out for 256 chips (v5p-512); its plan on 256 simulated CPU devices is in benchmarks/RESULTS.md,
the TPU compiler's is not yet:

  llmjp-train --config=configs/llmjp3/172b.py --dry_run --target=v5p-512
"""

from llmjp_jax.presets import llmjp3


def get_config():
    c = llmjp3(num_layers=96, hidden=12288, ffn=38464, num_heads=96, num_kv_heads=16, peak_lr=8e-5,
               global_batch=1728, tensor=4, pipeline=16)
    c.mesh.update(pipeline_repeats=6, pipeline_microbatches=16)
    c.train.update(microbatches=27, z_loss=1e-4)
    return c
