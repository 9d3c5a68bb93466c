"""llmjp-eval: multiple-choice accuracy of a training run's checkpoint on local JSONL tasks.

  llmjp-eval --workdir=runs/tiny --task=tests/data/mc_sample.jsonl
  llmjp-eval --workdir=runs/tiny --task=ja.jsonl --task=en.jsonl --step=100

A task file holds one question a line: {"question": "...", "choices": ["...", ...], "answer": 0}.
Each choice is scored by the log-likelihood of its tokens after the question: acc_norm takes the
choice with the highest mean per token, acc the highest sum. Prints one JSON line per task.
"""

from absl import app, flags

from llmjp_jax.cli.common import run
from llmjp_jax.log import quiet_libraries

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.", required=True)
_TASK = flags.DEFINE_multi_string("task", None, "JSONL task file; repeat for several.", required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "SentencePiece model (default: the run's).")
_ROWS = flags.DEFINE_integer("rows", 16, "Question-choice rows scored per batch.")


def _main(argv):
    del argv
    quiet_libraries()
    import json

    from flax import nnx

    from llmjp_jax.data.tokenizer import Tokenizer
    from llmjp_jax.interop.export import read_run, run_tokenizer
    from llmjp_jax.model import Llama, LlamaConfig
    from llmjp_jax.train.multiple_choice import encode_task, evaluate_task, load_task, make_scorer

    if _ROWS.value < 1:
        raise app.UsageError("--rows must be at least 1.")
    tasks = {path: load_task(path) for path in _TASK.value}  # a bad file fails before the model loads
    params, cfg, step = read_run(_WORKDIR.value, _STEP.value)
    tokenizer_path = _TOKENIZER.value or run_tokenizer(_WORKDIR.value)
    if not tokenizer_path:
        raise app.UsageError(f"{_WORKDIR.value} keeps no tokenizer.model; pass --tokenizer=PATH.model.")
    tokenizer = Tokenizer(tokenizer_path)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: Llama(LlamaConfig.from_dict(cfg.model), nnx.Rngs(0))))
    score = make_scorer(graphdef)
    for path, questions in tasks.items():
        accuracy = evaluate_task(score, params, encode_task(questions, tokenizer), _ROWS.value)
        print(json.dumps({"task": path, "step": step, "questions": len(questions), **accuracy}))


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
