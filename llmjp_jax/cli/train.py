"""llmjp-train: train (or resume) a Llama model from a config file.

  llmjp-train --config=configs/tiny.py --workdir=runs/tiny
  llmjp-train --config=configs/llmjp3/1.8b.py --workdir=runs/1.8b --config.optim.peak_lr=1e-4
  llmjp-train --config=configs/llmjp3/172b.py --dry_run --devices=1024
  llmjp-train --config=configs/llmjp3/1.8b.py --dry_run --target=v5p-8

Several hosts: start the same command on each, adding
  --coordinator_address=HOST0:PORT --num_processes=N --process_id=I
(under SLURM's srun or on a TPU pod these are detected when left out).

Exit status: 0 done; 2 invalid config; 3 could not join the other processes; 75 stopped by
SIGTERM/SIGINT after saving a checkpoint (run the same command again to resume); 76 a peer
process died or no step finished for train.hang_timeout_s (a hung peer); 1 any other error
(the message says which).
"""

from llmjp_jax.train import signals as stop_signals

stop_signals.catch_early()  # before the slow imports: a SIGTERM now still ends in a saved stop

import json  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from llmjp_jax.cli.common import config_or_usage, run  # noqa: E402
from llmjp_jax.errors import ConfigError  # noqa: E402
from llmjp_jax.log import get_logger  # noqa: E402

log = get_logger()

_CONFIG = config_flags.DEFINE_config_file("config", None, "Preset file (configs/...py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, logs.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print parameter counts and memory, then exit.")
_DEVICES = flags.DEFINE_integer("devices", None, "With --dry_run: the device count to plan for.")
_TARGET = flags.DEFINE_string(
    "target", None, "With --dry_run: compile the train step for this hardware and print its per-chip "
    "plan: a TPU slice (v4-8, v5p-256, v5e-16, v6e-64, 2xv5p-128 for two slices) or NVIDIA GPUs "
    "(h100-80gb:32, h200:8); no accelerator is needed.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-process: HOST:PORT of process 0, the same on every process.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process: how many processes in all.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process: this process's index, 0..N-1.")
_INIT_TIMEOUT = flags.DEFINE_integer(
    "init_timeout_s", 300, "Multi-process: seconds to wait for every process to join before failing.")
_HEARTBEAT = flags.DEFINE_integer(
    "heartbeat_timeout_s", 100,
    "Multi-process: a process silent this long (dead, or its host) ends all the others.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", None, "Simulate this many CPU devices in this process (testing without accelerators).")


def _main(argv):
    del argv
    cfg = config_or_usage(_CONFIG, "configs/tiny.py")
    try:
        if _TARGET.value and not _DRY_RUN.value:
            raise app.UsageError("--target compiles for other hardware: it needs --dry_run.")
        if _DRY_RUN.value:
            stop_signals.release_early()
            if _TARGET.value:
                _compile_for_target(cfg, _TARGET.value)
                return
            from llmjp_jax.train.report import describe
            print(json.dumps(describe(cfg, _DEVICES.value)))
            return
        if not _WORKDIR.value:
            raise app.UsageError("--workdir is required (where checkpoints and metrics go).")
        from llmjp_jax.parallel import distributed
        from llmjp_jax.train.loop import RUN_ERRORS, train
        from llmjp_jax.train.signals import PREEMPTED_EXIT_CODE, Preempted, StopSignals
        with StopSignals() as signals:
            try:  # before anything touches JAX devices
                multi = distributed.initialize(
                    _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                    timeout_s=_INIT_TIMEOUT.value, local_device_count=_CPU_DEVICES.value,
                    heartbeat_timeout_s=_HEARTBEAT.value)
            except ValueError as e:
                raise app.UsageError(str(e)) from e
            except distributed.JoinError as e:
                log.error("%s", e)
                raise SystemExit(distributed.JOIN_EXIT_CODE) from e
            signals.reclaim()  # a multi-process start installs JAX's own SIGTERM handler
            try:
                train(cfg, _WORKDIR.value, signals=signals)
            except RUN_ERRORS as e:  # the message says what to do; a traceback would bury it
                log.error("%s: %s", type(e).__name__, e)
                raise SystemExit(1) from e
            except Preempted as e:
                log.warning("%s Exiting with code %d; run the same command to resume.", e,
                            PREEMPTED_EXIT_CODE)
                if multi:
                    distributed.shutdown()
                raise SystemExit(PREEMPTED_EXIT_CODE) from e
        if multi:  # leave together: a process exiting early can fail its peers' last steps
            distributed.shutdown()
    except ConfigError as e:
        log.error("Invalid config: %s", e)
        raise SystemExit(2) from e


def _compile_for_target(cfg, name: str):
    """--dry_run --target: the readable table on stderr, the JSON plan as stdout's last line."""
    import sys

    import jax

    from llmjp_jax.parallel.targets import TargetError
    from llmjp_jax.train.aot import plan_for_target, table

    try:
        report = plan_for_target(cfg, name)
    except TargetError as e:
        log.error("%s", e)
        raise SystemExit(2) from e
    except jax.errors.JaxRuntimeError as e:  # the compiler itself gave up: say so, briefly
        log.error("The %s compiler could not compile this step: %s", name, str(e).splitlines()[0][:500])
        raise SystemExit(1) from e
    print(json.dumps(report))
    print(table(report), file=sys.stderr)


def main():
    run(_main, __name__)


if __name__ == "__main__":
    main()
