"""The tiny preset on a mixture: Japanese x2, English x1, code x0.5 (shares = tokens x repeats).

Tokenize each subset into its own folder first (after scripts/demo.sh made runs/data/spm.model):

  for s in ja en code; do .venv/bin/llmjp-tokenize --input=data/sample/train/$s.jsonl \
      --output_dir=runs/data/mix/$s --tokenizer=runs/data/spm.model --language=$s; done
  llmjp-train --config=configs/tiny_mixture.py --workdir=runs/tiny_mixture
  llmjp-train --config=configs/tiny_mixture.py --workdir=runs/tiny_mix2 --config.data.mixture.code.repeats=2
"""

from llmjp_jax.presets import tiny


def get_config():
    c = tiny()
    c.data.mixture = {
        "ja": {"dir": "runs/data/mix/ja", "repeats": 2.0, "level": "L1"},
        "en": {"dir": "runs/data/mix/en", "repeats": 1.0, "level": "L1"},
        "code": {"dir": "runs/data/mix/code", "repeats": 0.5, "level": "L1"},
    }
    return c
