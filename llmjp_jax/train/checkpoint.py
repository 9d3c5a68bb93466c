"""Orbax checkpoints: train state + data iterator state + the run's config, in one step folder.

Saving is asynchronous. Only complete steps (with orbax's commit marker) are
listed by the manager, so a crash mid-save leaves nothing that a restart would
restore by mistake.
"""

import os

import grain
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp
from orbax.checkpoint.checkpoint_managers import save_decision_policy as sdp


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


def save(manager: ocp.CheckpointManager, step: int, state, data_iter, config_json: dict,
         force: bool = False) -> bool:
    return manager.save(step, force=force, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data_iter=grain.checkpoint.CheckpointSave(data_iter),
        config=ocp.args.JsonSave(config_json)))


class CorruptCheckpointError(RuntimeError):
    pass


def restore(manager: ocp.CheckpointManager, step: int, abstract_state, data_iter=None):
    """Restores the state onto the shardings in `abstract_state` (any mesh), and the iterator."""
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iter is not None:
        items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
    try:
        return manager.restore(step, args=ocp.args.Composite(**items))["state"]
    except Exception as e:  # orbax/tensorstore raise many types; name the folder instead
        where = os.path.join(str(manager.directory), str(step))
        raise CorruptCheckpointError(
            f"Checkpoint {where} could not be restored ({type(e).__name__}: {e}). If it is damaged, "
            f"move it away to resume from the previous one, or start from another with "
            f"--config.train.init_from=RUN_DIR:STEP.") from e
