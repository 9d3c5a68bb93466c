"""The parameters of a saved train state, read without the optimizer state.

`restore_params` uses orbax's partial restore (only the "params" subtree, as host
numpy). `ParamReader` reads one parameter, or a range of its layers, at a time:
orbax restores whole leaves only, and our layers are stacked into one leaf per
weight kind (the 172B model's gate projection alone is 181 GB in float32), so
bounded-memory export opens each array's TensorStore directly, with orbax's own
read spec and context, and reads just the slice it needs. A stored chunk is the
part one device held at save time, and is decompressed whole when any of it is read.
"""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import tensorstore as ts
from etils import epath

from llmjp_jax.errors import MissingFileError, UserError
from llmjp_jax.train.checkpoint import STATE_ITEM


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _params_metadata(state_dir: epath.Path):
    if not (state_dir / "_METADATA").exists():
        raise MissingFileError(f"{state_dir} holds no orbax train state (no _METADATA).")
    tree = ocp.PyTreeCheckpointHandler().metadata(state_dir)
    if "params" not in tree.tree:
        raise UserError(f"{state_dir} has no 'params' subtree.")
    return tree


def restore_params(manager: ocp.CheckpointManager, step: int) -> dict:
    """The "params" subtree of checkpoint `step` as host numpy arrays (nothing else is read)."""
    meta = _params_metadata(epath.Path(manager.directory) / str(step) / STATE_ITEM).tree["params"]
    item = {"params": jax.tree.map(lambda m: np.empty(0, m.dtype), meta, is_leaf=_is_array)}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
    restored = manager.restore(step, args=ocp.args.Composite(**{STATE_ITEM: ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True)}))
    return restored[STATE_ITEM]["params"]


class ParamReader:
    """Reads parameters (by path, e.g. ("blocks", "mlp", "w_up")) from one checkpoint step."""

    def __init__(self, step_dir: str):
        self.directory = epath.Path(os.path.abspath(step_dir)) / STATE_ITEM
        tree = _params_metadata(self.directory)
        self._meta = tree.tree["params"]
        self._use_zarr3 = bool(tree.use_zarr3)
        self._use_ocdbt = ocp.type_handlers.is_ocdbt_checkpoint(self.directory)
        self._context = ocp.type_handlers.get_ts_context(use_ocdbt=self._use_ocdbt)
        self._stores = {}

    def metadata(self, path: tuple[str, ...]):
        node = self._meta
        for key in path:
            node = node[key]
        return node

    def nbytes(self, path: tuple[str, ...], layers: int | None = None) -> int:
        """Bytes of the whole parameter, or of `layers` rows of its leading axis."""
        m = self.metadata(path)
        rows = m.shape[1:] if layers is not None else m.shape
        return int(np.prod(rows, dtype=np.int64)) * np.dtype(m.dtype).itemsize * (layers or 1)

    def _store(self, path: tuple[str, ...]) -> ts.TensorStore:
        if path not in self._stores:
            info = ocp.type_handlers.ParamInfo(name=self.metadata(path).name, parent_dir=self.directory,
                                               use_zarr3=self._use_zarr3)
            spec = ocp.type_handlers.get_json_tspec_read(info, use_ocdbt=self._use_ocdbt)
            self._stores[path] = ts.open(spec, context=self._context, read=True).result()
        return self._stores[path]

    def read(self, path: tuple[str, ...], start: int | None = None, stop: int | None = None) -> np.ndarray:
        """The parameter, or its rows [start, stop) along the leading (layer) axis."""
        store = self._store(path)
        return np.asarray(store.read().result() if start is None else store[start:stop].read().result())
