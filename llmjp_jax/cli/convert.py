"""llmjp-convert: checkpoints <-> Hugging Face LlamaForCausalLM folders.

  llmjp-convert to-hf --workdir=runs/tiny --output=runs/tiny-hf [--step=200]
"""

from absl import app, flags

from llmjp_jax.log import get_logger, quiet_libraries

log = get_logger()

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_OUTPUT = flags.DEFINE_string("output", None, "Hugging Face folder to write.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")


def _main(argv):
    quiet_libraries()
    if len(argv) != 2 or argv[1] != "to-hf":
        raise app.UsageError("usage: llmjp-convert to-hf --workdir=RUN --output=DIR [--step=N]")
    if not _WORKDIR.value or not _OUTPUT.value:
        raise app.UsageError("--workdir and --output are required.")
    from llmjp_jax.interop.export import export_hf

    step = export_hf(_WORKDIR.value, _OUTPUT.value, _STEP.value)
    log.info("Exported %s step %d to %s", _WORKDIR.value, step, _OUTPUT.value)


def main():
    app.run(_main)


if __name__ == "__main__":
    main()
