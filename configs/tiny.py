"""Tiny Llama for a CPU: trains on the bundled sample corpus in a few minutes.

Data comes from `bash scripts/demo.sh` (tokenizer + shards under runs/data/).

  llmjp-train --config=configs/tiny.py --workdir=runs/tiny
  llmjp-train --config=configs/tiny.py --workdir=runs/tiny --config.train.steps=50
"""

from llmjp_jax.config import default_config


def get_config():
    c = default_config()
    c.model.update(vocab_size=4000, num_layers=4, hidden=128, ffn=384, num_heads=4, num_kv_heads=2,
                   dtype="float32", remat="none")
    c.optim.update(peak_lr=3e-3, warmup_steps=20, schedule="cosine", min_lr_ratio=0.1)
    c.train.update(steps=200, global_batch=16, seq_len=256, log_every=10, eval_every=50,
                   eval_batches=4, checkpoint_every=50, keep_last=2)
    c.data.update(train_dir="runs/data/train", eval_dir="runs/data/eval")
    c.mesh.update(data=1, fsdp=-1, tensor=1, pipeline=1)
    return c
