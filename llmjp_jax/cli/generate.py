"""llmjp-generate: sample text from a training run's checkpoint or an exported HF folder.

  llmjp-generate --workdir=runs/tiny --prompt=天気予報によると --max_new_tokens=40 --greedy
  llmjp-generate --workdir=runs/tiny --prompt=A --prompt=B --temperature=0.8 --top_p=0.9 --print_ids
  llmjp-generate --hf_dir=runs/tiny-hf --prompt=天気予報によると --greedy
"""

import os
import sys

from absl import app, flags

from llmjp_jax.cli.common import run
from llmjp_jax.log import quiet_libraries

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_HF_DIR = flags.DEFINE_string("hf_dir", None, "Or: a Hugging Face Llama folder (config.json, safetensors, "
                              "tokenizer.model), e.g. one written by llmjp-convert to-hf.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_PROMPT = flags.DEFINE_multi_string("prompt", None, "Prompt text; repeat for a batch.", required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "SentencePiece model (default: the run's).")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 64, "Tokens to generate per prompt.")
_GREEDY = flags.DEFINE_bool("greedy", False, "Take the most likely token (no sampling).")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens (0: all).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Sample among the most likely tokens holding this mass.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_CACHE = flags.DEFINE_bool("kv_cache", True, "Use the KV cache (--nokv_cache recomputes every step).")
_PRINT_IDS = flags.DEFINE_bool("print_ids", False, "Print the generated ids as JSON on the last line.")


def _main(argv):
    del argv
    quiet_libraries()
    import json

    from flax import nnx

    from llmjp_jax.data.tokenizer import Tokenizer
    from llmjp_jax.generate import Generator, Sampling
    from llmjp_jax.interop.export import read_run, run_tokenizer
    from llmjp_jax.model import Llama, LlamaConfig
    from llmjp_jax.model.hf import TOKENIZER, load_hf

    if bool(_WORKDIR.value) == bool(_HF_DIR.value):
        raise app.UsageError("Pass one of --workdir=RUN or --hf_dir=FOLDER.")
    if _HF_DIR.value:
        params, model_cfg = load_hf(_HF_DIR.value)
        folder_tokenizer = os.path.join(_HF_DIR.value, TOKENIZER)
        tokenizer_path = _TOKENIZER.value or (folder_tokenizer if os.path.isfile(folder_tokenizer) else None)
    else:
        params, cfg, _ = read_run(_WORKDIR.value, _STEP.value)
        model_cfg = LlamaConfig.from_dict(cfg.model)
        tokenizer_path = _TOKENIZER.value or run_tokenizer(_WORKDIR.value)
    if not tokenizer_path:
        raise app.UsageError("The tokenizer was not found; pass --tokenizer=PATH.model.")
    tok = Tokenizer(tokenizer_path)
    generator = Generator(nnx.merge(nnx.graphdef(Llama(model_cfg, nnx.Rngs(0))), params))
    prompts = [[tok.bos_id, *tok.sp.encode(p)] for p in _PROMPT.value]
    sampling = Sampling(_GREEDY.value, _TEMPERATURE.value, _TOP_K.value, _TOP_P.value)
    stream = _Stream(tok, _PROMPT.value[0]) if len(prompts) == 1 else None
    ids = generator.generate(prompts, _MAX_NEW.value, tok.eos_id, sampling, _SEED.value, _CACHE.value,
                             on_step=stream)
    if stream is None:
        for prompt, row in zip(_PROMPT.value, ids):
            print(prompt + tok.decode([i for i in row if i != tok.eos_id]))
    else:
        print()
    if _PRINT_IDS.value:
        print(json.dumps(ids))


class _Stream:
    """Prints a single prompt's continuation as it is generated."""

    def __init__(self, tok, prompt: str):
        self.tok, self.ids, self.shown = tok, [], ""
        sys.stdout.write(prompt)

    def __call__(self, next_B):
        token = int(next_B[0])
        if token < 0 or token == self.tok.eos_id:
            return
        self.ids.append(token)
        text = self.tok.decode(self.ids)
        sys.stdout.write(text[len(self.shown):])
        sys.stdout.flush()
        self.shown = text


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
