"""The run folder (`--workdir`): where each file of a run lives, its lock, and its JSON-lines logs.

    checkpoints/<step>/   orbax checkpoints (train/checkpoint.py)
    damaged/<step>-<time>/ checkpoints that failed verification, moved out of the way
    metrics.jsonl         one row per logged step of the run's timeline
    events.jsonl          what the run decided or met: resumes, saves, skipped checkpoints,
                          loss spikes, rollbacks, skipped data, signals (append-only)
    tensorboard/          the metrics as TensorBoard events
    tokenizer.model       the SentencePiece model the run trains with, copied from its training
                          data at the start: export and generation read it here, so they need
                          nothing outside the run folder
    LOCK                  which process trains here (host, pid), refreshed while it runs
"""

import json
import os
import shutil
import socket
import time

from llmjp_jax.errors import UserError
from llmjp_jax.files import file_sha256, fsync_dir, write_atomic
from llmjp_jax.log import get_logger

log = get_logger()

CHECKPOINTS = "checkpoints"
DAMAGED = "damaged"
METRICS = "metrics.jsonl"
EVENTS = "events.jsonl"
TENSORBOARD = "tensorboard"
LOCK = "LOCK"
TOKENIZER = "tokenizer.model"


def checkpoints_dir(workdir: str) -> str:
    return os.path.join(workdir, CHECKPOINTS)


def tokenizer_path(workdir: str) -> str | None:
    """The run's own tokenizer, None if it has none (a run made before runs kept theirs)."""
    path = os.path.join(workdir, TOKENIZER)
    return path if os.path.isfile(path) else None


def keep_tokenizer(workdir: str, source: dict):
    """Copies the training data's tokenizer (its manifest's "tokenizer": path, sha256) into the run
    once; later starts check that the data still uses that tokenizer.

    Reason: the data folder can be re-tokenized or deleted after training, and a run read with
    another tokenizer decodes garbage without any error.
    """
    path = os.path.join(workdir, TOKENIZER)
    if os.path.isfile(path):
        if file_sha256(path) != source["sha256"]:
            raise UserError(
                f"The training data was made with the tokenizer {source['path']} (sha256 "
                f"{source['sha256'][:12]}...), but this run trains with {path} (sha256 "
                f"{file_sha256(path)[:12]}...): its tokens would mean other text. Point data.* at shards "
                f"made with the run's tokenizer, or use another --workdir.")
        return
    if not os.path.isfile(source["path"]) or file_sha256(source["path"]) != source["sha256"]:
        log.warning("The tokenizer %s named by the training data's manifest is missing or was changed "
                    "after the data was tokenized; the run keeps no tokenizer (export and generation "
                    "then need --tokenizer).", source["path"])
        return
    os.makedirs(workdir, exist_ok=True)
    shutil.copyfile(source["path"], path + ".tmp")
    os.replace(path + ".tmp", path)
    fsync_dir(workdir)


def read_rows(path: str) -> list[dict]:
    """The JSON objects of a JSON-lines file ([] when it does not exist).

    A torn last line (a process killed mid-write) is dropped with a warning; a bad line
    anywhere else stops with the file and line number, since dropping it would lose data.
    """
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    rows = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rows.append(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if number != len(lines):  # only the last piece can lack its newline
                raise UserError(f"{path}:{number}: not a JSON object ({e}); fix or remove that line.") from e
            log.warning("%s:%d: dropped a torn last line (%d bytes), written by a process that was "
                        "killed while writing it.", path, number, len(raw))
    return rows


def write_rows(path: str, rows: list[dict]):
    """Replaces the file with `rows`, atomically (a crash leaves the old or the new file)."""
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def append_row(path: str, row: dict):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def timeline(rows: list[dict], last_step: int) -> list[dict]:
    """Rows up to `last_step`, one per step (the last written wins), in step order."""
    by_step = {r["step"]: r for r in rows if r["step"] <= last_step}
    return [by_step[s] for s in sorted(by_step)]


class EventLog:
    """`events.jsonl`: one JSON object per event, with its time; only process 0 writes."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.path, self.enabled = os.path.join(workdir, EVENTS), enabled
        if enabled:
            os.makedirs(workdir, exist_ok=True)

    def write(self, event: str, **fields):
        if self.enabled:
            append_row(self.path, {"time": round(time.time(), 3), "event": event, **fields})

    def rows(self) -> list[dict]:
        return read_rows(self.path)


class WorkdirError(UserError):
    """--workdir names something that cannot hold a run."""


def check_workdir(workdir: str):
    """A run folder is a folder: a --workdir that is a file is refused before any work starts."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"--workdir={workdir} is a file; a run needs a folder (a new path, or the "
                           "folder of the run to resume).")


class WorkdirBusyError(RuntimeError):
    """Another live process trains in this workdir."""


class WorkdirLock:
    """`<workdir>/LOCK`: one trainer per run folder.

    The lock holds the host, pid and start time and is refreshed (its mtime) every
    `refresh_s` while the run lives. A lock is stale when its process is gone (same host)
    or, held on another host, it was not refreshed for `stale_s` (e.g. a SLURM job requeued
    onto a new node); a stale lock is taken over with a warning. A live one is waited for up
    to `stale_s` (a predecessor may still be saving and exiting), then refused.
    """

    refresh_s, stale_s = 10.0, 60.0

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK)
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": round(time.time(), 3)}
        self._held, self._last_refresh = False, 0.0

    def acquire(self, wait: bool = True):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        deadline = time.time() + (self.stale_s if wait else 0)
        while True:
            if self._try_create():
                return self
            holder, age = self._read()
            reason = self._stale_reason(holder, age)
            if reason:
                log.warning("Taking over the stale lock %s (%s).", self.path, reason)
                self._remove_if_unchanged(holder)
                continue
            if time.time() >= deadline:
                raise WorkdirBusyError(
                    f"{self.path}: this run folder is in use by pid {holder.get('pid')} on host "
                    f"{holder.get('host')} (lock refreshed {age:.0f} s ago). Two trainers on one "
                    "--workdir would overwrite each other's checkpoints and metrics: stop the other "
                    "one, or use another --workdir. If that process is gone, delete the LOCK file.")
            time.sleep(min(1.0, self.refresh_s))

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self.owner, f)
        self._held, self._last_refresh = True, time.time()
        return True

    def _read(self) -> tuple[dict, float]:
        try:
            with open(self.path, encoding="utf-8") as f:
                holder = json.load(f)
            age = time.time() - os.path.getmtime(self.path)
        except FileNotFoundError:
            return {}, 0.0
        except (json.JSONDecodeError, OSError):  # torn by a crash while writing it
            return {"torn": True}, time.time() - os.path.getmtime(self.path)
        return holder, age

    def _stale_reason(self, holder: dict, age: float) -> str:
        if not holder:
            return ""
        if holder.get("torn"):
            return "its content is unreadable"
        if holder.get("host") == self.owner["host"]:  # the process table is the truth here
            alive = _pid_alive(holder.get("pid", -1))
            return "" if alive else f"pid {holder.get('pid')} on this host has ended"
        if age > self.stale_s:
            return f"pid {holder.get('pid')} on {holder.get('host')} has not refreshed it for {age:.0f} s"
        return ""

    def _remove_if_unchanged(self, holder: dict):
        current, _ = self._read()
        if current == holder:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def refresh(self):
        """Marks the lock alive; cheap to call often (touches the file every `refresh_s`)."""
        now = time.time()
        if self._held and now - self._last_refresh >= self.refresh_s:
            try:
                os.utime(self.path)
            except FileNotFoundError:  # removed by hand: take it again
                self._try_create()
            self._last_refresh = now

    def release(self):
        if self._held:
            current, _ = self._read()
            if current.get("pid") == self.owner["pid"] and current.get("host") == self.owner["host"]:
                os.remove(self.path)
            self._held = False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
