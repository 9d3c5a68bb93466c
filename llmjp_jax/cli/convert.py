"""llmjp-convert: checkpoints <-> Hugging Face LlamaForCausalLM folders.

  llmjp-convert to-hf --workdir=runs/tiny --output=runs/tiny-hf [--step=200]
  llmjp-convert extend-vocab --input=HF_DIR --new_tokenizer=NEW.model --output=HF_DIR2
"""

from absl import app, flags

from llmjp_jax.log import get_logger, quiet_libraries

log = get_logger()

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_OUTPUT = flags.DEFINE_string("output", None, "Hugging Face folder to write.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_INPUT = flags.DEFINE_string("input", None, "extend-vocab: Hugging Face folder with tokenizer.model.")
_NEW_TOKENIZER = flags.DEFINE_string("new_tokenizer", None, "extend-vocab: SentencePiece model to add.")


def _main(argv):
    quiet_libraries()
    command = argv[1] if len(argv) == 2 else ""
    if command == "to-hf" and _WORKDIR.value and _OUTPUT.value:
        from llmjp_jax.interop.export import export_hf

        step = export_hf(_WORKDIR.value, _OUTPUT.value, _STEP.value)
        log.info("Exported %s step %d to %s", _WORKDIR.value, step, _OUTPUT.value)
    elif command == "extend-vocab" and _INPUT.value and _NEW_TOKENIZER.value and _OUTPUT.value:
        from llmjp_jax.interop.vocab import extend_hf

        added = extend_hf(_INPUT.value, _NEW_TOKENIZER.value, _OUTPUT.value)
        log.info("Added %d pieces; wrote %s", len(added), _OUTPUT.value)
    else:
        raise app.UsageError(__doc__)


def main():
    app.run(_main)


if __name__ == "__main__":
    main()
