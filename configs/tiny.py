"""Tiny Llama for a CPU: trains on the bundled sample corpus in a few minutes.

Data comes from `bash scripts/demo.sh` (tokenizer + shards under runs/data/).

  llmjp-train --config=configs/tiny.py --workdir=runs/tiny
  llmjp-train --config=configs/tiny.py --workdir=runs/tiny --config.train.steps=50
"""

from llmjp_jax.presets import tiny


def get_config():
    return tiny()
