"""Pipeline benchmark on 8 simulated CPU devices: 8 layers, hidden 256, vocab 4,000, sequence 256.

Compare the step time with and without pipelining (benchmarks/RESULTS.md), e.g.:

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/bench.py \
      --config=configs/bench/pipeline_cpu.py --config.mesh.pipeline=2 --config.mesh.data=4
"""

from llmjp_jax.config import default_config


def get_config():
    c = default_config()
    c.model.update(vocab_size=4000, num_layers=8, hidden=256, ffn=768, num_heads=4,
                   num_kv_heads=4, dtype="float32", remat="full", scan=True)
    c.optim.update(peak_lr=3e-4, warmup_steps=10, schedule="constant")
    c.train.update(steps=30, global_batch=32, seq_len=256, log_every=10)
    c.mesh.update(data=8, fsdp=1, tensor=1, pipeline=1)
    return c
