"""Orbax checkpoints: train state + data loader state + the run's config, in one step folder.

Saving is asynchronous. Only complete steps (with orbax's commit marker) are
listed by the manager, so a crash mid-save leaves nothing that a restart would
restore by mistake.

The data state ("data_state") is one JSON with the iterator states of all
data.loader_shards shards, gathered from every process; on restore each process
takes the shards it reads, so a run may resume with another number of processes.
"""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp
from orbax.checkpoint.checkpoint_managers import save_decision_policy as sdp

STATE_ITEM = "state"  # the train state (step, params, optimizer state)
DATA_ITEM = "data_state"
LEGACY_DATA_ITEM = "data_iter"  # per-process grain files, written before loader shards


def make_manager(directory: str, train_cfg) -> ocp.CheckpointManager:
    keep = [pp.LatestN(train_cfg.keep_last)]
    if train_cfg.keep_every:
        keep.append(pp.EveryNSteps(train_cfg.keep_every))
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=sdp.FixedIntervalPolicy(train_cfg.checkpoint_every),
        preservation_policy=pp.AnyPreservationPolicy(keep),
        cleanup_tmp_directories=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def open_read_only(directory: str) -> ocp.CheckpointManager:
    """Another run's checkpoints (e.g. a WSD base run still training): never cleaned or deleted."""
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def gather_data_state(local: dict[str, dict]) -> dict[str, dict]:
    """Every process's shard states merged into one dict; all processes must call it together."""
    if jax.process_count() == 1:
        return dict(local)
    data = np.frombuffer(json.dumps(local).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([data.size], np.int32))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:data.size] = data
    rows = np.asarray(multihost_utils.process_allgather(padded))
    merged = {}
    for row, size in zip(rows, sizes):
        merged.update(json.loads(row[:size].tobytes()))
    return merged


def save(manager: ocp.CheckpointManager, step: int, state, data_iter, config_json: dict,
         force: bool = False) -> bool:
    """Saves at the manager's interval (or when forced); every process must call it each step.

    `data_iter=None` (a run converted from elsewhere) saves no data position: a run started
    from it with train.init_from reads its data from the beginning.
    """
    if not (force or manager.should_save(step)):
        return False
    items = {STATE_ITEM: ocp.args.StandardSave(state), "config": ocp.args.JsonSave(config_json)}
    if data_iter is not None:
        items[DATA_ITEM] = ocp.args.JsonSave(gather_data_state(data_iter.get_state()))
    return manager.save(step, force=force, args=ocp.args.Composite(**items))


class CorruptCheckpointError(RuntimeError):
    pass


def _refuse_legacy(where: str):
    """Per-process iterator files of an older version cannot be mapped onto loader shards."""
    if not os.path.isdir(os.path.join(where, DATA_ITEM)) and os.path.isdir(
            os.path.join(where, LEGACY_DATA_ITEM)):
        raise ValueError(
            f"Checkpoint {where} holds the data position in the older per-process format "
            f"({LEGACY_DATA_ITEM!r}), which cannot be resumed with data.loader_shards. Finish that run "
            f"with the version that wrote it, or start a new run from its parameters.")


def has_data_state(manager: ocp.CheckpointManager, step: int) -> bool:
    return os.path.isdir(os.path.join(str(manager.directory), str(step), DATA_ITEM))


def restore(manager: ocp.CheckpointManager, step: int, abstract_state, data_iter=None,
            data_optional: bool = False):
    """Restores the state onto the shardings in `abstract_state` (any mesh), and the data position
    of the loader shards `data_iter` reads. With `data_optional` (train.init_from), a checkpoint
    saved without a data position leaves `data_iter` at the start; resuming a run never does."""
    where = os.path.join(str(manager.directory), str(step))
    items = {STATE_ITEM: ocp.args.StandardRestore(abstract_state)}
    if data_iter is not None:
        _refuse_legacy(where)
        if data_optional and not has_data_state(manager, step):
            data_iter = None
        else:
            items[DATA_ITEM] = ocp.args.JsonRestore()
    try:
        restored = manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # orbax/tensorstore raise many types; name the folder instead
        raise CorruptCheckpointError(
            f"Checkpoint {where} could not be restored ({type(e).__name__}: {e}). If it is damaged, "
            f"move it away to resume from the previous one, or start from another with "
            f"--config.train.init_from=RUN_DIR:STEP.") from e
    if data_iter is not None:
        data_iter.set_state(restored[DATA_ITEM])
    return restored[STATE_ITEM]
