"""llmjp-plot: run folders -> figures of their metrics (PNG, or SVG by the output's suffix).

  llmjp-plot runs/tiny --output=loss.png
  llmjp-plot runs/ablation-* --output=ablation.svg --x=tokens

Needs matplotlib (`pip install -e '.[plot]'`); training does not.
"""

from absl import app, flags

from llmjp_jax.cli.common import run
from llmjp_jax.log import get_logger

log = get_logger()

_OUTPUT = flags.DEFINE_string("output", "metrics.png", "The figure file: .png or .svg.")
_X = flags.DEFINE_enum("x", "step", ["step", "tokens"], "Horizontal axis: optimizer steps or tokens seen.")
_LOSS_ONLY = flags.DEFINE_bool("loss_only", False, "Only the loss panel (training and held-out loss).")


def _main(argv):
    runs = argv[1:]
    if not runs:
        raise app.UsageError("name one or more run folders, e.g. llmjp-plot runs/tiny --output=loss.png")
    from llmjp_jax.plot import save_figure

    path = save_figure(runs, _OUTPUT.value, x=_X.value, loss_only=_LOSS_ONLY.value)
    log.info("Wrote %s", path)


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
