"""The tiny preset evaluated per language and on a multiple-choice task (see README.md,
"Held-out sets and multiple-choice evaluation").

Tokenize each held-out file into its own folder first (after scripts/demo.sh made runs/data):

  for s in ja en code; do .venv/bin/llmjp-tokenize --input=data/sample/heldout/$s.jsonl \
      --output_dir=runs/data/heldout/$s --tokenizer=runs/data/spm.model --language=$s; done
  llmjp-train --config=configs/tiny_heldout.py --workdir=runs/tiny_heldout
"""

from llmjp_jax.presets import tiny


def get_config():
    c = tiny()
    # Rows of 65 tokens, not tiny's 257: every one of the 8 loader shards of the
    # sample's held-out code (8 documents, 4,289 tokens) must fill its rows of a batch.
    c.train.update(seq_len=64)
    c.data.eval = {s: f"runs/data/heldout/{s}" for s in ("ja", "en", "code")}  # replaces data.eval_dir
    c.train.eval_tasks = {"sample": "tests/data/mc_sample.jsonl"}
    return c
