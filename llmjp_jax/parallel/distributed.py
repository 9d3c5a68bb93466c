"""Joining a multi-process (multi-host) run; call `initialize` before anything touches JAX devices.

  initialize("10.0.0.1:1234", num_processes=2, process_id=0)   # explicit, on every host
  initialize()   # under SLURM (srun, > 1 task) or on a TPU pod JAX finds the settings; else nothing

The coordinator (process 0) waits until every process has joined. If one never does,
each waiting process ends after `timeout_s` with an error naming the coordinator address
and the flags to check, instead of hanging.
"""

import json
import math
import os
import sys
import threading

import jax

from llmjp_jax.errors import UserError
from llmjp_jax.log import get_logger

log = get_logger()

JOIN_EXIT_CODE = 3  # exit status of a process that could not join the others


class JoinError(RuntimeError):
    """This process could not start or join the multi-process run."""


def detect_cluster() -> str | None:
    """The multi-process launcher JAX can auto-detect here ("slurm", "tpu", "openmpi"), or None."""
    env = os.environ
    # SLURM_STEP_NUM_TASKS is the current step's count: 1 in a batch script run without srun.
    slurm_tasks = env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "1"))
    if "SLURM_JOB_ID" in env and "SLURM_STEP_NODELIST" in env and _int(slurm_tasks) > 1:
        return "slurm"
    tpu_hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES") or ""
    if len([h for h in tpu_hosts.split(",") if h.strip()]) > 1 or "MEGASCALE_COORDINATOR_ADDRESS" in env:
        return "tpu"
    if "OMPI_MCA_orte_hnp_uri" in env and _int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "openmpi"
    return None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 1


def _check_explicit(coordinator_address, num_processes, process_id):
    given = {"--coordinator_address": coordinator_address, "--num_processes": num_processes,
             "--process_id": process_id}
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise UserError(f"A multi-process run needs --coordinator_address, --num_processes and "
                         f"--process_id together; {', '.join(missing)} missing.")
    host, _, port = coordinator_address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--coordinator_address={coordinator_address!r}: expected HOST:PORT, e.g. "
                         "10.0.0.1:1234 (process 0 runs on HOST and listens on PORT).")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise UserError(f"--process_id={process_id} must lie in 0..{num_processes - 1} "
                         f"(--num_processes={num_processes}).")


def _join_failed_message(address, num_processes, process_id, timeout_s, cluster) -> str:
    if cluster:
        return (f"Multi-process start failed: this process (auto-detected from {cluster}) did not "
                f"see all processes join the coordinator at {address or '(auto-detected)'} within "
                f"{timeout_s:g} s (--init_timeout_s). Check that every task of the job started and "
                "can reach the coordinator's port on the first host, or pass --coordinator_address, "
                "--num_processes and --process_id explicitly.")
    return (f"Multi-process start failed: process {process_id} of {num_processes} did not see all "
            f"{num_processes} processes join the coordinator at {address} within {timeout_s:g} s "
            f"(--init_timeout_s). Check that every process was started with "
            f"--coordinator_address={address} --num_processes={num_processes} and its own "
            f"--process_id in 0..{num_processes - 1}, that process 0 runs on the host named in "
            "--coordinator_address, and that its port is reachable from this host.")


def _coordinator_address_in_use() -> str | None:
    """The address JAX resolved (auto-detection); only for the error message."""
    try:
        from jax._src import distributed as jax_distributed  # not public; message only
        return jax_distributed.global_state.coordinator_address
    except (ImportError, AttributeError):
        return None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: float = 300,
               local_device_count: int | None = None, heartbeat_timeout_s: int = 100) -> bool:
    """Joins the other processes of this run; returns whether the run is multi-process.

    With no coordinator settings, it joins only where JAX can detect a launcher
    (`detect_cluster`); otherwise it stays single-process. `local_device_count`
    simulates that many CPU devices in this process (for tests). A process whose heartbeats
    stop (it died, or its host did) ends every other process after `heartbeat_timeout_s`
    (JAX's coordination service).
    """
    if local_device_count is not None:
        jax.config.update("jax_num_cpu_devices", int(local_device_count))
    explicit = (coordinator_address, num_processes, process_id)
    cluster = None
    if all(v is None for v in explicit):
        cluster = detect_cluster()
        if cluster is None:
            _log_topology()
            return False
        log.info("Joining the processes of this %s job (settings detected by JAX)", cluster)
    elif num_processes == 1 and process_id in (None, 0):
        _log_topology()
        return False
    else:
        _check_explicit(coordinator_address, num_processes, process_id)
    # Cross-process collectives of the CPU backend (no effect on GPU/TPU computations).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    joined = threading.Event()

    def watchdog():
        # JAX's own timeout aborts the process from C++ with a terse RPC error (and a few
        # seconds later); end first, with a message that says what to check.
        if joined.wait(timeout_s):
            return
        address = coordinator_address or _coordinator_address_in_use()
        message = _join_failed_message(address, num_processes, process_id, timeout_s, cluster)
        log.error(message)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(JOIN_EXIT_CODE)

    threading.Thread(target=watchdog, name="distributed-join-watchdog", daemon=True).start()
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   initialization_timeout=max(1, math.ceil(timeout_s)),
                                   heartbeat_timeout_seconds=max(1, int(heartbeat_timeout_s)))
    except jax.errors.JaxRuntimeError as e:  # e.g. process 0 cannot listen on the port
        address = coordinator_address or _coordinator_address_in_use()
        raise JoinError(f"Multi-process start failed for the coordinator at {address} ({e}). For "
                        "process 0: is the port already in use (another run)? Choose another one "
                        "in --coordinator_address.") from e
    finally:
        joined.set()
    _log_topology()
    return True


def _log_topology():
    log.info("JAX process %d of %d: %d local devices, %d in all (%s)", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count(), jax.default_backend())


def shutdown():
    """Leaves the multi-process run once every process has arrived here (after a successful run)."""
    jax.distributed.shutdown()


def broadcast_json(value):
    """Process 0's JSON-able `value`, on every process (all must call it together): lets one
    process decide (e.g. from files only it writes) and the others follow."""
    if jax.process_count() == 1:
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(value).encode(), np.uint8) if jax.process_index() == 0 else None
    size = int(multihost_utils.broadcast_one_to_all(np.array(0 if data is None else data.size, np.int32)))
    buffer = np.zeros(size, np.uint8) if data is None else data
    return json.loads(np.asarray(multihost_utils.broadcast_one_to_all(buffer)).tobytes())


def global_min(value: int) -> int:
    """The smallest of every process's `value` (all must call it together)."""
    if jax.process_count() == 1:
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    return int(np.asarray(multihost_utils.process_allgather(np.array([value], np.int64))).min())
