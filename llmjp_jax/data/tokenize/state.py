"""The state of a tokenization in `<output_dir>/.tokenize/`, and the gathering of its shards.

`plan.json` (inputs with size and sha256, tokenizer, settings, units), one folder per unit
holding its shards and rejected lines, and `unit-NNNNN.json`, the unit's completion record,
written atomically after its shards are on disk. A restart refuses changed inputs, tokenizer
or settings, keeps the completed units and redoes the others from scratch; `gather` then moves
the shards into place.
"""

import fcntl
import os
import shutil

from llmjp_jax.data import rejects
from llmjp_jax.data.manifest import MANIFEST
from llmjp_jax.data.readers import BAD_KINDS
from llmjp_jax.data.shards import shard_name
from llmjp_jax.errors import UserError
from llmjp_jax.files import read_json, write_json

STATE_DIR, PLAN = ".tokenize", "plan.json"


class ResumeMismatch(UserError):
    """The unfinished run in an output folder was made from other inputs, tokenizer or settings."""


class State:
    """The `.tokenize` folder of a run: locked while in use, created, or resumed after a check."""

    def __init__(self, output_dir: str, plan: dict):
        self.output_dir, self.plan = output_dir, plan
        self.folder = os.path.join(output_dir, STATE_DIR)
        self.records: dict[int, dict] = {}
        self._lock = None

    def __enter__(self):
        os.makedirs(self.folder, exist_ok=True)
        self._lock = _lock(self.folder)
        try:
            self._open()
        except BaseException:
            os.close(self._lock)
            raise
        return self

    def _open(self):
        """Writes the plan of a new run, or checks an unfinished run's; reads its completion records."""
        old = read_json(os.path.join(self.folder, PLAN))
        if old is None:
            self._clear()
            write_json(os.path.join(self.folder, PLAN), self.plan)
        else:
            _check_same(old, self.plan, self.output_dir)
        for unit in self.plan["units"]:
            record = read_json(self.record_path(unit["index"]))
            if record is None:
                shutil.rmtree(self.unit_dir(unit["index"]), ignore_errors=True)
            else:
                self.records[unit["index"]] = record

    def __exit__(self, *exc):
        os.close(self._lock)

    def pending(self) -> list[dict]:
        return [u for u in self.plan["units"] if u["index"] not in self.records]

    def unit_dir(self, index: int) -> str:
        return os.path.join(self.folder, f"unit-{index:05d}")

    def record_path(self, index: int) -> str:
        return self.unit_dir(index) + ".json"

    def remove(self):
        """Deletes the state; called once the manifest is written, or when the run cannot resume."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _clear(self):
        for name in os.listdir(self.folder):
            path = os.path.join(self.folder, name)
            if name != "lock":
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _lock(folder: str) -> int:
    fd = os.open(os.path.join(folder, "lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{folder} is in use by another llmjp-tokenize run.") from None
    return fd


def _check_same(old: dict, new: dict, output_dir: str):
    """Refuses to resume an unfinished run whose inputs, tokenizer or settings differ from this one's."""
    start_over = f"delete {os.path.join(output_dir, STATE_DIR)} to start over"
    unfinished = f"the unfinished run in {output_dir}"
    old_paths, new_paths = [s["path"] for s in old["sources"]], [s["path"] for s in new["sources"]]
    if old_paths != new_paths:
        raise ResumeMismatch(f"{unfinished} read other inputs ({', '.join(old_paths)}): give the same "
                             f"--input, or {start_over}.")
    for was, now in zip(old["sources"], new["sources"]):
        if (was["bytes"], was["sha256"]) != (now["bytes"], now["sha256"]):
            raise ResumeMismatch(
                f"Input {now['path']} changed since {unfinished} began (size {was['bytes']} -> "
                f"{now['bytes']}, sha256 {was['sha256'][:12]}... -> {now['sha256'][:12]}...): restore it, "
                f"or {start_over}.")
    was, now = old["tokenizer"], new["tokenizer"]
    if was["sha256"] != now["sha256"]:
        raise ResumeMismatch(f"Tokenizer {now['path']} (sha256 {now['sha256'][:12]}...) is not the one "
                             f"{unfinished} began with ({was['path']}, sha256 {was['sha256'][:12]}...): "
                             f"use that one, or {start_over}.")
    changed = [f"{k}={old['settings'].get(k)!r} (now {v!r})" for k, v in new["settings"].items()
               if old["settings"].get(k) != v]
    if changed:
        raise ResumeMismatch(f"{unfinished} began with {', '.join(changed)}: use the same, or {start_over}.")
    if _cuts(old) != _cuts(new) or old.get("version") != new["version"]:
        raise ResumeMismatch(f"{unfinished} cut its inputs differently (another version?): {start_over}.")


def _cuts(plan: dict) -> list[tuple]:
    return [(u["start"], u["end"], u["line"], u["text"]) for u in plan["units"]]


def gather(state: State) -> dict:
    """Moves the units' shards to `shard-NNNNN.array_record` in input order and merges their rejects.

    Safe to repeat after a kill: a shard already moved is found at its final name. The old
    manifest goes first, since the shards it lists are being replaced.
    """
    manifest = os.path.join(state.output_dir, MANIFEST)
    if os.path.exists(manifest):
        os.remove(manifest)
    shards, text_bytes = [], 0
    for unit in state.plan["units"]:
        record = state.records[unit["index"]]
        text_bytes += record["text_bytes"]
        for shard in record["shards"]:
            name = shard_name(len(shards))
            source, target = os.path.join(state.unit_dir(unit["index"]), shard["file"]), \
                os.path.join(state.output_dir, name)
            if os.path.exists(source):
                os.replace(source, target)
            elif not os.path.isfile(target):
                raise FileNotFoundError(f"{source} is missing: delete {state.folder} and run again.")
            shards.append({"file": name, "documents": shard["documents"], "tokens": shard["tokens"]})
    return {"shards": shards, "text_bytes": text_bytes, "rejected": _merge_rejects(state)}


def _merge_rejects(state: State) -> dict:
    """The units' rejected lines as one rejects.jsonl, ordered by input file and line, and their counts."""
    by_reason = dict.fromkeys(BAD_KINDS, 0)
    for record in state.records.values():
        for kind, count in record["rejected"].items():
            by_reason[kind] += count
    path = os.path.join(state.output_dir, rejects.FILE)
    enabled = state.plan["settings"]["on_bad_input"] == "skip"
    if enabled:
        with open(path + ".tmp", "wb") as out:
            for unit in state.plan["units"]:
                with open(os.path.join(state.unit_dir(unit["index"]), rejects.FILE), "rb") as part:
                    shutil.copyfileobj(part, out)
        os.replace(path + ".tmp", path)
    elif os.path.exists(path):
        os.remove(path)
    return rejects.summary(by_reason, enabled)
