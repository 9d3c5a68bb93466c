"""llmjp-train: train (or resume) a Llama model from a config file.

  llmjp-train --config=configs/tiny.py --workdir=runs/tiny
  llmjp-train --config=configs/llmjp3/1.8b.py --workdir=runs/1.8b --config.optim.peak_lr=1e-4
  llmjp-train --config=configs/llmjp3/172b.py --dry_run --devices=1024

Several hosts: start the same command on each, adding
  --coordinator_address=HOST0:PORT --num_processes=N --process_id=I
(under SLURM's srun or on a TPU pod these are detected when left out).
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
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-process: HOST:PORT of process 0, the same on every process.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process: how many processes in all.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process: this process's index, 0..N-1.")
_INIT_TIMEOUT = flags.DEFINE_integer(
    "init_timeout_s", 300, "Multi-process: seconds to wait for every process to join before failing.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", None, "Simulate this many CPU devices in this process (testing without accelerators).")


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
        from llmjp_jax.parallel import distributed
        try:  # before anything touches JAX devices
            multi = distributed.initialize(
                _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                timeout_s=_INIT_TIMEOUT.value, local_device_count=_CPU_DEVICES.value)
        except ValueError as e:
            raise app.UsageError(str(e)) from e
        except distributed.JoinError as e:
            log.error("%s", e)
            raise SystemExit(distributed.JOIN_EXIT_CODE) from e
        from llmjp_jax.train.loop import train
        train(cfg, _WORKDIR.value)
        if multi:  # leave together: a process exiting early can fail its peers' last steps
            distributed.shutdown()
    except ConfigError as e:
        log.error("Invalid config: %s", e)
        raise SystemExit(2) from e


def main():
    app.run(_main)


if __name__ == "__main__":
    main()
