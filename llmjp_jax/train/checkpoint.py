"""Orbax checkpoints: train state + data loader state + the run's config + run metadata, in one
step folder, verified when restored.

Saving is asynchronous. Only complete steps (with orbax's commit marker) are listed by the
manager, so a crash mid-save leaves nothing that a restart would restore by mistake.

The data state ("data_state") is one JSON with the iterator states of all data.loader_shards
shards, gathered from every process; on restore each process takes the shards it reads, so a
run may resume with another number of processes.

"meta" holds the digests of every saved array (train/digest.py) and the loss-spike guard's
host state; `restore` recomputes the digests and raises CorruptCheckpointError naming the
arrays that differ, and `restore_newest` falls back to the newest checkpoint that verifies.
"""

import json
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp
from orbax.checkpoint.checkpoint_managers import save_decision_policy as sdp

from llmjp_jax.log import get_logger
from llmjp_jax.train.digest import mismatches, state_digests
from llmjp_jax.train.guard import init_guard

log = get_logger()

STATE_ITEM = "state"  # the train state (step, params, optimizer state, spike guard)
DATA_ITEM = "data_state"
CONFIG_ITEM = "config"
META_ITEM = "meta"
LEGACY_DATA_ITEM = "data_iter"  # per-process grain files, written before loader shards


class KeepSteps:
    """An orbax preservation policy: keep the steps in `steps` (changed while the run goes on),
    e.g. the last checkpoint before a loss spike, which a rollback may need."""

    def __init__(self):
        self.steps: set[int] = set()

    def should_preserve(self, checkpoints, *, context):
        del context
        return [c.step in self.steps for c in checkpoints]


def make_manager(directory: str, train_cfg, keep: KeepSteps | None = None) -> ocp.CheckpointManager:
    policies = [pp.LatestN(train_cfg.keep_last)]
    if train_cfg.keep_every:
        policies.append(pp.EveryNSteps(train_cfg.keep_every))
    if keep is not None:
        policies.append(keep)
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=sdp.FixedIntervalPolicy(train_cfg.checkpoint_every),
        preservation_policy=pp.AnyPreservationPolicy(policies),
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


def save(manager: ocp.CheckpointManager, step: int, state, data_state: dict | None, config_json: dict,
         meta: dict | None = None, force: bool = False) -> bool:
    """Saves at the manager's interval (or when forced); every process must call it each step.

    `data_state` is this process's loader-shard states (`ShardedIterator.get_state()` taken
    right after the step's batch); None (a run converted from elsewhere) saves no data
    position: a run started from it with train.init_from reads its data from the beginning.
    A state with non-finite values is never saved (it could replace the good checkpoints).
    """
    if not (force or manager.should_save(step)):
        return False
    digests, non_finite = state_digests(state)
    if non_finite:
        raise FloatingPointError(
            f"The train state at step {step} holds {non_finite} non-finite values; it was not saved, "
            f"so the checkpoints in {manager.directory} stay as they were.")
    items = {STATE_ITEM: ocp.args.StandardSave(state), CONFIG_ITEM: ocp.args.JsonSave(config_json),
             META_ITEM: ocp.args.JsonSave({"digests": digests, "saved_at": time.time(), **(meta or {})})}
    if data_state is not None:
        items[DATA_ITEM] = ocp.args.JsonSave(gather_data_state(data_state))
    return manager.save(step, force=force, args=ocp.args.Composite(**items))


class CorruptCheckpointError(RuntimeError):
    pass


class LegacyCheckpointError(ValueError):
    pass


def _refuse_legacy(where: str):
    """Per-process iterator files of an older version cannot be mapped onto loader shards."""
    if not os.path.isdir(os.path.join(where, DATA_ITEM)) and os.path.isdir(
            os.path.join(where, LEGACY_DATA_ITEM)):
        raise LegacyCheckpointError(
            f"Checkpoint {where} holds the data position in the older per-process format "
            f"({LEGACY_DATA_ITEM!r}), which cannot be resumed with data.loader_shards. Finish that run "
            f"with the version that wrote it, or start a new run from its parameters.")


def _has_item(manager: ocp.CheckpointManager, step: int, item: str) -> bool:
    return os.path.isdir(os.path.join(str(manager.directory), str(step), item))


def has_data_state(manager: ocp.CheckpointManager, step: int) -> bool:
    return _has_item(manager, step, DATA_ITEM)


def _saved_keys(where: str) -> set[str]:
    """Top-level keys of the saved train state (older checkpoints have no "guard")."""
    return set(ocp.PyTreeCheckpointHandler().metadata(epath.Path(where) / STATE_ITEM).tree)


def _fail(where: str, why: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(f"Checkpoint {where} could not be restored ({why}).")


def _short(error: Exception, limit: int = 400) -> str:
    """The gist of an orbax/tensorstore error (they append the whole tensorstore spec)."""
    text = str(error)
    for tail in (" [tensorstore_spec=", " See full TensorStore details"):
        text = text.split(tail)[0].strip()
    return f"{type(error).__name__}: " + (text if len(text) <= limit else text[:limit] + " ...")


def restore(manager: ocp.CheckpointManager, step: int, abstract_state, data_iter=None,
            data_optional: bool = False) -> tuple[dict, dict]:
    """(state, meta) of checkpoint `step`, the state on the shardings in `abstract_state` (any
    mesh), its digests checked; `data_iter` is moved to the saved data position of the loader
    shards it reads. With `data_optional` (train.init_from), a checkpoint saved without a data
    position leaves `data_iter` at the start; resuming a run never does."""
    where = os.path.join(str(manager.directory), str(step))
    if data_iter is not None:
        _refuse_legacy(where)
    try:
        abstract = dict(abstract_state)
        if "guard" not in _saved_keys(where):
            abstract.pop("guard", None)
        items = {STATE_ITEM: ocp.args.StandardRestore(abstract)}
        if data_iter is not None:
            if data_optional and not has_data_state(manager, step):
                data_iter = None
            else:
                items[DATA_ITEM] = ocp.args.JsonRestore()
        if _has_item(manager, step, META_ITEM):
            items[META_ITEM] = ocp.args.JsonRestore()
        restored = manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # orbax/tensorstore raise many types; name the folder instead
        raise _fail(where, _short(e)) from e
    state = dict(restored[STATE_ITEM])
    meta = dict(restored[META_ITEM]) if META_ITEM in items else {}
    _verify(where, state, meta)
    if "guard" not in state:  # written before the spike guard: its statistics start afresh
        state["guard"] = jax.device_put(init_guard(), jax.tree.map(lambda a: a.sharding,
                                                                   abstract_state["guard"]))
    if data_iter is not None:
        data_iter.set_state(restored[DATA_ITEM])
    return state, meta


def _verify(where: str, state: dict, meta: dict):
    if "digests" not in meta:
        log.warning("Checkpoint %s has no digests (written by an older version): not verified.", where)
        return
    digests, non_finite = state_digests(state)
    bad = mismatches(meta["digests"], digests)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise _fail(where, f"the data read back differs from what was saved in {len(bad)} of "
                           f"{len(digests)} arrays: {shown}")
    if non_finite:
        raise _fail(where, f"{non_finite} non-finite values")


def restore_newest(manager: ocp.CheckpointManager, abstract_state, data_iter, on_skip
                   ) -> tuple[int, dict, dict] | None:
    """(step, state, meta) of the newest checkpoint that restores and verifies, or None.

    Each one that fails is passed to `on_skip(step, error)` (which moves it out of the way).
    Every process must call this together; they agree on each outcome, so they all restore
    the same step even when only one process's files are damaged.
    """
    for step in sorted(manager.all_steps(), reverse=True):
        error, result = None, None
        try:
            result = restore(manager, step, abstract_state, data_iter)
        except CorruptCheckpointError as e:
            error = e
        if _any_process(error is not None):
            on_skip(step, error or _fail(os.path.join(str(manager.directory), str(step)),
                                         "it failed to restore on another process"))
            continue
        return (step, *result)
    return None


def _any_process(flag: bool) -> bool:
    if jax.process_count() == 1:
        return flag
    return bool(np.asarray(multihost_utils.process_allgather(np.array([int(flag)], np.int32))).max())
