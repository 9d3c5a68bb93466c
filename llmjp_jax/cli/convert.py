"""llmjp-convert: checkpoints <-> Hugging Face LlamaForCausalLM folders.

  llmjp-convert to-hf --workdir=runs/tiny --output=runs/tiny-hf [--step=200]
  llmjp-convert from-hf --hf_dir=HF_DIR --workdir=runs/base [--seq_len=4096] [--config=configs/...py]
  llmjp-convert extend-vocab --input=HF_DIR --new_tokenizer=NEW.model --output=HF_DIR2

to-hf streams the parameters (never the optimizer state) shard by shard and writes the
tokenizer for AutoTokenizer. from-hf writes a step-0 run that training starts from with
--config.train.init_from=RUN (its data from the beginning); pass the training preset as
--config to have the architecture checked against it and its settings recorded.
"""

from absl import app, flags
from ml_collections import config_flags

from llmjp_jax.cli.common import run
from llmjp_jax.log import get_logger, quiet_libraries

log = get_logger()

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_OUTPUT = flags.DEFINE_string("output", None, "Hugging Face folder to write.")
flags.DEFINE_alias("out_dir", "output")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_INPUT = flags.DEFINE_string("input", None, "extend-vocab: Hugging Face folder with tokenizer.model.")
_NEW_TOKENIZER = flags.DEFINE_string("new_tokenizer", None, "extend-vocab: SentencePiece model to add.")
_HF_DIR = flags.DEFINE_string("hf_dir", None, "from-hf: Hugging Face Llama folder to read.")
_SEQ_LEN = flags.DEFINE_integer("seq_len", None, "from-hf: train.seq_len of the run (default: --config's, "
                                "else the folder's max_position_embeddings).")
_CONFIG = config_flags.DEFINE_config_file("config", None, "from-hf: the training preset (configs/...py).",
                                          lock_config=False)


def _to_hf():
    from llmjp_jax.interop.export import export_hf

    step = export_hf(_WORKDIR.value, _OUTPUT.value, _STEP.value)
    log.info("Exported %s step %d to %s", _WORKDIR.value, step, _OUTPUT.value)


def _from_hf():
    from llmjp_jax.interop.from_hf import import_hf

    import_hf(_HF_DIR.value, _WORKDIR.value, _SEQ_LEN.value, _CONFIG.value)
    log.info("Wrote %s (step 0) from %s; train from it with --config.train.init_from=%s",
             _WORKDIR.value, _HF_DIR.value, _WORKDIR.value)


def _extend_vocab():
    from llmjp_jax.interop.vocab import extend_hf

    added = extend_hf(_INPUT.value, _NEW_TOKENIZER.value, _OUTPUT.value)
    log.info("Added %d pieces; wrote %s", len(added), _OUTPUT.value)


def _main(argv):
    quiet_libraries()
    command = argv[1] if len(argv) == 2 else ""
    commands = {
        "to-hf": (_to_hf, _WORKDIR.value and _OUTPUT.value),
        "from-hf": (_from_hf, _HF_DIR.value and _WORKDIR.value),
        "extend-vocab": (_extend_vocab, _INPUT.value and _NEW_TOKENIZER.value and _OUTPUT.value),
    }
    run, ready = commands.get(command, (None, False))
    if not ready:
        raise app.UsageError(__doc__)
    try:
        run()
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        log.error("%s failed: %s", command, e)
        raise SystemExit(2) from e


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
