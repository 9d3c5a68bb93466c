#!/usr/bin/env bash
# The main job: set up, then train the tiny preset on the bundled sample corpus, on the CPU, offline.
#   tokenizer -> runs/data/spm.model, shards -> runs/data/{train,eval}, run -> runs/tiny
# Extra arguments go to llmjp-train (e.g. --config.train.steps=50).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck source=scripts/cpu_env.sh
source scripts/cpu_env.sh  # CPU step time: keep XLA's per-step buffers cheap to reuse
bin=.venv/bin
if [ ! -f runs/data/spm.model ]; then
  $bin/llmjp-spm-train --input='data/sample/train/*.jsonl' --model_prefix=runs/data/spm --vocab_size=4000
fi
for split in train:train eval:heldout; do
  out=runs/data/${split%%:*}
  if [ ! -f "$out/manifest.json" ]; then
    $bin/llmjp-tokenize --input="data/sample/${split#*:}/*.jsonl" --output_dir="$out" \
      --tokenizer=runs/data/spm.model
  fi
done
$bin/llmjp-train --config=configs/tiny.py --workdir=runs/tiny "$@"
$bin/python - <<'PY'
import json
rows = [json.loads(line) for line in open("runs/tiny/metrics.jsonl") if "loss" in line]
first, last = rows[0], rows[-1]
print(f"loss {first['loss']:.3f} at step {first['step']} -> {last['loss']:.3f} at step {last['step']}"
      + (f", held-out loss {last['eval_loss']:.3f}" if "eval_loss" in last else ""))
PY
