"""Shared builders for the LLM-jp preset files in configs/ (facts: shared notes, llm-jp.md)."""

from llmjp_jax.config import default_config

LLMJP3_TOKENS = 2.1e12
SEQ_LEN = 4096


def llmjp3(*, num_layers, hidden, ffn, num_heads, num_kv_heads, peak_lr, global_batch,
           head_dim=0, tensor=1, pipeline=1, microbatches=1):
    """LLM-jp-3: Llama-2, vocab 99,487 (padded to 99,584), warmup 2,000 + cosine to peak/10, 2.1T tokens.

    `microbatches` (gradient accumulation) is sized for the slice each preset's docstring names;
    the logits are computed 1024 positions at a time (train.loss_chunk), a quarter of the memory.
    """
    c = default_config()
    c.model.update(vocab_size=99_487, num_layers=num_layers, hidden=hidden, ffn=ffn,
                   num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
                   rope_theta=10_000.0, norm_eps=1e-5, dtype="bfloat16", remat="full",
                   attention="auto")
    c.optim.update(peak_lr=peak_lr, min_lr_ratio=0.1, warmup_steps=2000, schedule="cosine")
    c.train.update(global_batch=global_batch, seq_len=SEQ_LEN, microbatches=microbatches, loss_chunk=1024,
                   steps=int(LLMJP3_TOKENS // (global_batch * SEQ_LEN)),
                   log_every=10, eval_every=1000, checkpoint_every=1000, keep_every=50_000)
    c.data.train_dir = "data/llmjp3/train"
    c.data.loader_shards = pod_loader_shards(global_batch)
    c.mesh.update(data=1, pipeline=pipeline, fsdp=-1, tensor=tensor)
    return c


def pod_loader_shards(global_batch: int, most: int = 64) -> int:
    """data.loader_shards for a pod preset: the largest power of two up to `most` that divides the
    global batch, so 1, 2, 4, ... 64 hosts (processes) can run it and resume on another count
    (the process count must divide it; the default of 8 refused 16 or more nodes)."""
    shards = 1
    while shards * 2 <= most and global_batch % (shards * 2) == 0:
        shards *= 2
    return shards


def llmjp4(*, num_layers, hidden, ffn, num_heads, num_kv_heads, microbatches):
    """LLM-jp-4: GQA, RoPE theta 500k, RMSNorm eps 1e-6, WSD with 1-sqrt decay over 100k steps to 0."""
    c = llmjp3(num_layers=num_layers, hidden=hidden, ffn=ffn, num_heads=num_heads,
               num_kv_heads=num_kv_heads, peak_lr=3e-4, global_batch=1024, microbatches=microbatches)
    c.model.update(rope_theta=500_000.0, norm_eps=1e-6)
    # The base run keeps LR 3e-4 after warmup; decay runs branch from a
    # stable-phase checkpoint (900k / 1.9M / 2.9M) and decay over 100k steps:
    #   --config.train.init_from=BASE_RUN:2900000 --config.optim.decay_start=2900000
    #   --config.train.steps=3000000
    c.optim.update(schedule="wsd", decay_shape="minus_sqrt", decay_steps=100_000, min_lr_ratio=0.0)
    c.train.steps = 3_000_000
    c.data.train_dir = "data/llmjp4/train"
    return c


def tiny():
    """A 1.8M-parameter Llama for CPUs: the demo model (configs/tiny.py)."""
    c = default_config()
    c.model.update(vocab_size=4000, num_layers=4, hidden=128, ffn=384, num_heads=4, num_kv_heads=2,
                   dtype="float32", remat="none")
    c.optim.update(peak_lr=3e-3, warmup_steps=20, schedule="cosine", min_lr_ratio=0.1)
    c.train.update(steps=200, global_batch=16, seq_len=256, log_every=10, eval_every=50,
                   eval_batches=4, checkpoint_every=50, keep_last=2)
    c.data.update(train_dir="runs/data/train", eval_dir="runs/data/eval")
    c.mesh.update(data=1, fsdp=-1, tensor=1, pipeline=1)
    return c
