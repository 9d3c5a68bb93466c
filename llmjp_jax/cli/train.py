"""llmjp-train: train (or resume) a Llama model from a config file.

  llmjp-train --config=configs/tiny.py --workdir=runs/tiny
  llmjp-train --config=configs/llmjp3/1.8b.py --workdir=runs/1.8b --config.optim.peak_lr=1e-4
  llmjp-train --config=configs/llmjp3/172b.py --dry_run --devices=1024
"""

import json

from absl import app, flags
from ml_collections import config_flags

from llmjp_jax.config import ConfigError
from llmjp_jax.log import get_logger, quiet_libraries

log = get_logger()

_CONFIG = config_flags.DEFINE_config_file("config", None, "Preset file (configs/...py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, logs.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print parameter counts and memory, then exit.")
_DEVICES = flags.DEFINE_integer("devices", None, "With --dry_run: the device count to plan for.")


def _main(argv):
    del argv
    quiet_libraries()
    cfg = _CONFIG.value
    if cfg is None:
        raise app.UsageError("--config is required, e.g. --config=configs/tiny.py")
    try:
        if _DRY_RUN.value:
            from llmjp_jax.train.report import describe
            print(json.dumps(describe(cfg, _DEVICES.value)))
            return
        if not _WORKDIR.value:
            raise app.UsageError("--workdir is required (where checkpoints and metrics go).")
        from llmjp_jax.train.loop import train
        train(cfg, _WORKDIR.value)
    except ConfigError as e:
        log.error("Invalid config: %s", e)
        raise SystemExit(2) from e


def main():
    app.run(_main)


if __name__ == "__main__":
    main()
