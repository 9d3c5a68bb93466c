"""Generation speed with and without the KV cache, on a randomly initialised model.

  python benchmarks/bench_generate.py --config=configs/tiny.py
  python benchmarks/bench_generate.py --config=configs/bench/cpu_small.py

Prints one JSON line per mode: new tokens per second for a batch of prompts
(compilation excluded: each mode runs once to warm up, then is timed).
"""

import json
import time

from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from llmjp_jax.generate import Generator
from llmjp_jax.model import Llama, LlamaConfig

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_BATCH = flags.DEFINE_integer("batch", 4, "Prompts per batch.")
_PROMPT = flags.DEFINE_integer("prompt_len", 64, "Prompt length in tokens.")
_NEW = flags.DEFINE_integer("new_tokens", 64, "Tokens generated per prompt.")


def _main(argv):
    del argv
    cfg = LlamaConfig.from_dict(_CONFIG.value.model)
    generator = Generator(Llama(cfg, nnx.Rngs(0)))
    prompts = [[1 + (7 * i + j) % (cfg.vocab_size - 1) for j in range(_PROMPT.value)]
               for i in range(_BATCH.value)]
    for use_cache in (True, False):
        run = lambda: generator.generate(prompts, _NEW.value, eos_id=-1, use_cache=use_cache)  # noqa: E731
        run()
        start = time.perf_counter()
        out = run()
        seconds = time.perf_counter() - start
        new = sum(len(row) for row in out)
        print(json.dumps({"params": cfg.num_params(), "kv_cache": use_cache, "batch": _BATCH.value,
                          "prompt_len": _PROMPT.value, "new_tokens": _NEW.value,
                          "seconds": round(seconds, 3), "tokens_per_sec": round(new / seconds, 1)}))


if __name__ == "__main__":
    app.run(_main)
