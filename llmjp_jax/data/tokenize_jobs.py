"""Parallel, resumable tokenization of a corpus: work units, worker processes, completion records.

The inputs are cut into work units: a whole compressed file, or a byte range of an
uncompressed one that ends at a line boundary (after a blank line for .txt, whose
documents span lines). The cuts depend only on the inputs and `chunk_bytes`, never on
the number of workers, so every run with the same settings makes the same shards.

The main process and any spawned workers claim units in input order. Each unit is read
line by line, parsed, encoded in batches by a thread (SentencePiece releases the GIL, so
parsing and writing go on meanwhile) straight into int32 arrays, and written to its own
shards; memory stays bounded by a few batches whatever the input size.

The state of a run lives in `<output_dir>/.tokenize/`: `plan.json` (inputs with size and
sha256, tokenizer, settings, units), one folder per unit holding its shards and rejected
lines, and `unit-NNNNN.json`, the unit's completion record, written atomically after its
shards are on disk. A restart refuses changed inputs, tokenizer or settings, keeps the
completed units and redoes the others from scratch; `gather` then moves the shards into place.
"""

import ctypes
import dataclasses
import fcntl
import functools
import hashlib
import json
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from array_record.python.array_record_module import ArrayRecordWriter

from llmjp_jax.data.readers import BAD_KINDS, BadInputError, _decode, _parse_json_line, _raw_lines
from llmjp_jax.data.shards import MANIFEST, TOKEN_DTYPE, _RejectLog
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.log import get_logger

STATE_DIR, PLAN, VERSION = ".tokenize", "plan.json", 1
MIN_UNIT_BYTES, TARGET_UNITS = 4 << 20, 256  # enough units for all workers, each worth its set-up
MIN_WORKER_BYTES = 32 << 20  # of input, for each worker process that num_workers=0 starts
READ_BLOCK, BATCH_CHARS = 1 << 22, 1 << 18  # 4 MiB reads; batches of <= 256 Ki characters

log = get_logger()


class ResumeMismatch(ValueError):
    """The unfinished run in an output folder was made from other inputs, tokenizer or settings."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What shapes the shards; the restart of a run must use the same."""

    text_field: str = "text"
    docs_per_shard: int = 100_000
    chunk_bytes: int = 64 << 20
    on_bad_input: str = "error"
    compression: str = "snappy"


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------- plan


def _stem(path: str) -> str:
    for suffix in (".gz", ".zst"):
        path = path.removesuffix(suffix)
    return path


def _is_text(path: str) -> bool:
    """True for plain text, False for JSON lines; the same formats as `readers.iter_documents`."""
    stem = _stem(path)
    if stem.endswith((".jsonl", ".json")):
        return False
    if stem.endswith(".txt"):
        return True
    raise BadInputError(f"{path}: unknown format; expected .jsonl[.gz|.zst] or .txt.")


def make_plan(inputs: list[str], tokenizer: Tokenizer, settings: Settings) -> dict:
    """Sources (size, sha256) and work units of `inputs`, in input order; reads each input once,
    several at a time (hashing and reading release the GIL)."""
    sizes = [os.path.getsize(path) for path in inputs]
    unit_bytes = min(settings.chunk_bytes, max(MIN_UNIT_BYTES, sum(sizes) // TARGET_UNITS))
    with ThreadPoolExecutor(min(16, cpu_count())) as pool:
        planned = list(pool.map(functools.partial(_plan_file, unit_bytes=unit_bytes), inputs, sizes))
    units = [unit for _, file_units in planned for unit in file_units]
    for index, unit in enumerate(units):
        unit["index"] = index
    return {"version": VERSION, "sources": [source for source, _ in planned],
            "settings": dataclasses.asdict(settings),
            "tokenizer": {"path": os.path.abspath(tokenizer.path), "sha256": tokenizer.sha256},
            "unit_bytes": unit_bytes, "units": units}


def _plan_file(path: str, size: int, unit_bytes: int) -> tuple[dict, list[dict]]:
    """The file's source entry and units: its byte ranges, each with the number of its first line."""
    text, compressed = _is_text(path), _stem(path) != path
    starts = [0] if compressed else _unit_starts(path, size, unit_bytes, text)
    sha256, first_lines = _scan(path, starts[1:])
    ends = starts[1:] + [None if compressed else size]
    return ({"path": os.path.abspath(path), "bytes": size, "sha256": sha256},
            [{"path": path, "text": text, "start": start, "end": end, "line": line}
             for start, end, line in zip(starts, ends, first_lines)])


def _unit_starts(path: str, size: int, unit_bytes: int, text: bool) -> list[int]:
    """Offsets where the units of an uncompressed file begin, about `unit_bytes` apart."""
    starts = [0]
    with open(path, "rb") as f:
        while starts[-1] + unit_bytes < size:
            cut = _boundary(f, starts[-1] + unit_bytes, text)
            if cut >= size:
                break
            starts.append(cut)
    return starts


def _boundary(f, offset: int, text: bool) -> int:
    """The first line start at or after `offset`; for text, the first one after a blank line,
    where no document continues, so a unit parses exactly as it would within the whole file."""
    f.seek(offset - 1)
    f.readline()
    while text:
        raw = f.readline()
        if not raw or _is_blank(raw):
            break
    return f.tell()


def _is_blank(raw: bytes) -> bool:
    try:
        return not raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


def _scan(path: str, cuts: list[int]) -> tuple[str, list[int]]:
    """The file's sha256 and the number of the first line of each unit, in one read."""
    digest, lines, pos, firsts = hashlib.sha256(), 0, 0, [1]
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            digest.update(block)
            counted = 0
            while len(firsts) <= len(cuts) and cuts[len(firsts) - 1] <= pos + len(block):
                cut = cuts[len(firsts) - 1] - pos
                lines += block.count(b"\n", counted, cut)
                counted = cut
                firsts.append(lines + 1)
            lines += block.count(b"\n", counted)
            pos += len(block)
    return digest.hexdigest(), firsts


# ---------------------------------------------------------------------------------------------- state


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
        old = _read_json(os.path.join(self.folder, PLAN))
        if old is None:
            self._clear()
            write_json(os.path.join(self.folder, PLAN), self.plan)
        else:
            _check_same(old, self.plan, self.output_dir)
        for unit in self.plan["units"]:
            record = _read_json(self.record_path(unit["index"]))
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
        raise RuntimeError(f"{folder} is in use by another llmjp-tokenize run.") from None
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


def _read_json(path: str) -> dict | None:
    """The file's content; None if it is missing or unreadable (as after a crash of the machine)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json(path: str, obj: dict, indent: int | None = None):
    """Writes `obj` to `path` atomically and durably: a reader sees the old file or the whole new one."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


def _fsync_dir(folder: str):
    fd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: str):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


# ------------------------------------------------------------------------------------------ one unit


class _UnitShards:
    """One unit's records in `shard-NNNNN.array_record` files of at most `docs_per_shard` each."""

    def __init__(self, folder: str, docs_per_shard: int, compression: str):
        self.folder, self.limit, self.options = folder, docs_per_shard, f"group_size:1,{compression}"
        self.shards: list[dict] = []
        self._writer = None

    def write(self, records: list[bytes], tokens: list[int]):
        """Appends records (one per document, with its token count), rolling to a new shard when full."""
        done = 0
        while done < len(records):
            if self._writer is None or self.shards[-1]["documents"] == self.limit:
                self._roll()
            shard, write = self.shards[-1], self._writer.write
            take = min(len(records) - done, self.limit - shard["documents"])
            for record in records[done:done + take]:
                write(record)
            shard["documents"] += take
            shard["tokens"] += sum(tokens[done:done + take])
            done += take

    def _roll(self):
        self.close()
        name = f"shard-{len(self.shards):05d}.array_record"
        self._writer = ArrayRecordWriter(os.path.join(self.folder, name), self.options)
        self.shards.append({"file": name, "documents": 0, "tokens": 0})

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _Lines:
    """(line number, bytes) of a unit's lines, read from its byte range; `pos` counts bytes read."""

    def __init__(self, unit: dict):
        self.unit, self.pos = unit, 0

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        unit = self.unit
        if unit["end"] is None:  # a compressed file, read whole
            yield from _raw_lines(unit["path"])
            return
        size, number = unit["end"] - unit["start"], unit["line"]
        if size == 0:
            return
        with open(unit["path"], "rb") as f:
            f.seek(unit["start"])
            for raw in f:
                self.pos += len(raw)
                yield number, raw
                number += 1
                if self.pos >= size:
                    return


def _json_text(path: str, number: int, raw: bytes, text_field: str) -> str | None:
    """The text of a JSON line: a fast path for the usual well-formed line; any other line goes to
    `readers._parse_json_line`, which returns or raises what it does when reading the whole file."""
    try:
        line = raw.decode("utf-8")
        record, end = _RAW_DECODE(line)
        text = record[text_field] if type(record) is dict and line[end:] in _LINE_ENDS else None
        if type(text) is str and text and not text.isspace():
            return text
    except (ValueError, KeyError):  # invalid UTF-8 or JSON, no text field
        pass
    return _parse_json_line(path, number, raw, text_field)


_RAW_DECODE, _LINE_ENDS = json.JSONDecoder().raw_decode, ("\n", "\r\n", "")


def _documents(unit: dict, lines: _Lines, text_field: str, on_bad) -> Iterator[str]:
    """The unit's documents, parsed as `readers.iter_documents` parses the whole file: a bad line
    raises BadInputError, or goes to `on_bad` and is left out."""
    path, text = unit["path"], unit["text"]
    block: list[str] = []
    for number, raw in lines:
        try:
            line = _decode(path, number, raw) if text else _json_text(path, number, raw, text_field)
        except BadInputError as e:
            if on_bad is None:
                raise
            on_bad(e)
            continue
        if not text:
            if line is not None:
                yield line
        elif line.strip():
            block.append(line)
        elif block:
            yield "".join(block).rstrip("\n")
            block = []
    if block:
        yield "".join(block).rstrip("\n")


class _Job:
    """Tokenizes units into their folders under `state_dir`; one per process."""

    def __init__(self, state_dir: str, settings: dict, tokenizer: Tokenizer | str, num_threads: int,
                 batch_docs: int, report: Callable[[int, int, int, int], None]):
        self.state_dir, self.settings = state_dir, Settings(**settings)
        self.tokenizer = Tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.num_threads, self.batch_docs, self.report = num_threads, batch_docs, report
        self._encoder = ThreadPoolExecutor(1)
        self._finisher = ThreadPoolExecutor(1)  # fsync (slow on some disks) off the tokenizing path

    def run(self, unit: dict) -> Future:
        """Writes the unit's shards (and rejects) into its folder; a thread then makes them durable
        and writes the completion record, which the returned future gives."""
        index, settings = unit["index"], self.settings
        folder = os.path.join(self.state_dir, f"unit-{index:05d}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        shards = _UnitShards(folder, settings.docs_per_shard, settings.compression)
        with _RejectLog(folder, settings.on_bad_input == "skip") as rejects:
            text_bytes = self._tokenize(unit, shards, rejects.add if rejects.enabled else None)
        shards.close()
        files = [s["file"] for s in shards.shards] + ([_RejectLog.FILE] if rejects.enabled else [])
        record = {"unit": index, "shards": shards.shards, "text_bytes": text_bytes,
                  "rejected": rejects.by_reason}
        return self._finisher.submit(self._finish, folder, files, record)

    def _finish(self, folder: str, files: list[str], record: dict) -> dict:
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync_dir(folder)
        write_json(os.path.join(self.state_dir, f"unit-{record['unit']:05d}.json"), record)
        return record

    def close(self):
        """Waits for the completion records still being written."""
        self._encoder.shutdown(wait=True)
        self._finisher.shutdown(wait=True)

    def _tokenize(self, unit: dict, shards: _UnitShards, on_bad) -> int:
        """Encodes the unit's documents batch by batch; returns their text bytes. A thread encodes
        each batch (SentencePiece releases the GIL) while this one parses the next and writes."""
        text_bytes, encoding = 0, None
        for batch in self._batches(unit, on_bad):
            previous, encoding = encoding, self._encoder.submit(self._encode, *batch)
            if previous is not None:
                text_bytes += self._store(unit["index"], shards, *previous.result())
        if encoding is not None:
            text_bytes += self._store(unit["index"], shards, *encoding.result())
        return text_bytes

    def _batches(self, unit: dict, on_bad) -> Iterator[tuple[list[str], int]]:
        """(texts, input bytes they took) in batches of `batch_docs` documents or BATCH_CHARS."""
        lines = _Lines(unit)
        batch, chars, reported = [], 0, 0
        for text in _documents(unit, lines, self.settings.text_field, on_bad):
            batch.append(text)
            chars += len(text)
            if len(batch) == self.batch_docs or chars >= BATCH_CHARS:
                yield batch, lines.pos - reported
                batch, chars, reported = [], 0, lines.pos
        yield batch, lines.pos - reported

    def _encode(self, texts: list[str], input_bytes: int) -> tuple[list[str], int, list]:
        """`<s> ... </s>` token ids of each text as int32 arrays, without Python ints on the way."""
        encoded = self.tokenizer.sp.encode(texts, num_threads=self.num_threads, return_type="numpy",
                                           add_bos=True, add_eos=True) if texts else []
        return texts, input_bytes, encoded

    def _store(self, index: int, shards: _UnitShards, texts: list[str], input_bytes: int, encoded: list
               ) -> int:
        """Writes a batch's documents as little-endian int32 records and reports progress."""
        tokens = [len(ids) for ids in encoded]
        shards.write([ids.astype(TOKEN_DTYPE, copy=False).tobytes() for ids in encoded], tokens)
        text_bytes = sum(map(len, map(str.encode, texts)))  # after encode: from the cached UTF-8
        self.report(index, input_bytes, text_bytes, sum(tokens))
        return text_bytes


# ------------------------------------------------------------------------------------------- workers

def _claim(counter, count: int) -> int | None:
    """The position of the next pending unit for this process to run; None once all are taken."""
    with counter.get_lock():
        if counter.value >= count:
            return None
        counter.value += 1
        return counter.value - 1


def _stop_claims(counter, count: int):
    with counter.get_lock():
        counter.value = count


def _worker_main(parent: int, job_args: tuple, tokenizer_sha256: str, pending: list[dict], counter, messages):
    """A spawned worker: claims pending units until none is left, sending progress and results."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # on Ctrl-C the main process stops, and this dies with it
    report = _QueueReport(messages)
    job = _Job(*job_args, report=report)
    if job.tokenizer.sha256 != tokenizer_sha256:
        messages.put(("crashed", 0, f"Tokenizer {job.tokenizer.path} changed during the run."))
        return
    try:
        while (i := _claim(counter, len(pending))) is not None:
            try:
                finishing = job.run(pending[i])
            except BadInputError as e:
                _stop_claims(counter, len(pending))
                messages.put(("failed", i, e))
                return
            except Exception:
                _stop_claims(counter, len(pending))
                messages.put(("crashed", i, _crash(pending[i])))
                return
            report.flush()
            finishing.add_done_callback(functools.partial(_send_record, messages, i, pending[i]))
    finally:
        job.close()
        messages.put(("exit", -1, None))


def _send_record(messages, i: int, unit: dict, finishing: Future):
    try:
        messages.put(("done", i, finishing.result()))
    except Exception:
        messages.put(("crashed", i, _crash(unit)))


def _crash(unit: dict) -> str:
    return f"A tokenizer worker failed on {unit['path']}:\n{traceback.format_exc()}"


def _die_with_parent(parent: int):
    """Linux: the kernel kills this worker when the main process dies, even by SIGKILL, so that
    no orphan goes on writing into a unit folder that a restart is redoing."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


class _QueueReport:
    """Sends a worker's progress to the main process, at most twice a second."""

    def __init__(self, messages):
        self.messages, self.pending, self.sent = messages, {}, time.monotonic()

    def __call__(self, index: int, input_bytes: int, text_bytes: int, tokens: int):
        total = self.pending.setdefault(index, [0, 0, 0])
        total[0] += input_bytes
        total[1] += text_bytes
        total[2] += tokens
        if time.monotonic() - self.sent > 0.5:
            self.flush()

    def flush(self):
        for index, counts in self.pending.items():
            self.messages.put(("progress", index, counts))
        self.pending, self.sent = {}, time.monotonic()


class _Progress:
    """Logs done/total input bytes, MB/s of text, tokens/s and the ETA every `every` seconds."""

    def __init__(self, plan: dict, records: dict, every: float):
        sizes = {s["path"]: s["bytes"] for s in plan["sources"]}
        self.unit_bytes = [(u["end"] if u["end"] is not None else sizes[os.path.abspath(u["path"])])
                           - u["start"] for u in plan["units"]]
        self.total, self.units = sum(self.unit_bytes), len(plan["units"])
        self.done_units = len(records)
        self.resumed = sum(self.unit_bytes[i] for i in records)
        self.per_unit: dict[int, int] = {}
        self.text_bytes = self.tokens = 0
        self.start = self.last = time.monotonic()
        self.every = every

    def add(self, index: int, input_bytes: int, text_bytes: int, tokens: int):
        self.per_unit[index] = self.per_unit.get(index, 0) + input_bytes
        self.text_bytes += text_bytes
        self.tokens += tokens
        self.maybe_log()

    def unit_done(self, index: int):
        self.per_unit[index] = self.unit_bytes[index]
        self.done_units += 1

    def maybe_log(self):
        now = time.monotonic()
        if self.every <= 0 or now - self.last < self.every:
            return
        self.last, seconds = now, max(now - self.start, 1e-9)
        done = sum(self.per_unit.values())
        eta = (self.total - self.resumed - done) * seconds / max(done, 1)
        log.info("tokenize: %.1f/%.1f MB (%.0f%%), %d/%d units, %.1f MB/s of text, %.0f tokens/s, "
                 "ETA %s", (self.resumed + done) / 1e6, self.total / 1e6,
                 100 * (self.resumed + done) / max(self.total, 1), self.done_units, self.units,
                 self.text_bytes / 1e6 / seconds, self.tokens / seconds, _clock(eta))


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_units(state: State, tokenizer: Tokenizer, num_workers: int, num_threads: int, batch_docs: int,
              log_every: float) -> dict:
    """Tokenizes the units that are not done yet: this process and `workers - 1` spawned ones claim
    them in input order (the work starts at once, while the others start); returns how many
    processes and SentencePiece threads each it used.

    A bad input line (on_bad_input="error") stops the run with the first such line in input
    order, and deletes the state: the input must change before a new run, so nothing resumes.
    """
    pending, progress = state.pending(), _Progress(state.plan, state.records, log_every)
    workers = _worker_count(num_workers, sum(progress.unit_bytes[u["index"]] for u in pending), len(pending))
    threads = num_threads if num_threads > 0 else max(1, cpu_count() // workers)
    if state.records:
        log.info("tokenize: resuming %s, %d of %d units already done", state.output_dir,
                 len(state.records), len(state.plan["units"]))
    log.info("tokenize: %d units of <= %.1f MB, %d worker(s) x %d thread(s)", len(pending),
             state.plan["unit_bytes"] / 1e6, workers, threads)
    try:
        _run(state, pending, progress, tokenizer, workers, threads, batch_docs)
    except BadInputError:
        state.remove()
        raise
    return {"workers": workers, "threads": threads}


def _worker_count(num_workers: int, pending_bytes: int, pending_units: int) -> int:
    """`num_workers`, or for 0 one per CPU but none without MIN_WORKER_BYTES of input to do:
    starting a worker costs about as much as tokenizing 10 MB (imports, loading the model)."""
    if num_workers <= 0:
        num_workers = min(cpu_count(), max(1, pending_bytes // MIN_WORKER_BYTES))
    return max(1, min(num_workers, pending_units))


def _run(state: State, pending: list[dict], progress: _Progress, tokenizer: Tokenizer, workers: int,
         threads: int, batch_docs: int):
    """Runs `pending` here alone, or here and in `workers - 1` spawned processes."""
    job = _Job(state.folder, state.plan["settings"], tokenizer, threads, batch_docs, progress.add)
    try:
        if workers == 1:
            finishing = []
            for unit in pending:
                finishing.append((unit["index"], job.run(unit)))
                progress.unit_done(unit["index"])
            state.records.update((index, future.result()) for index, future in finishing)
        else:
            job_args = (state.folder, state.plan["settings"], tokenizer.path, threads, batch_docs)
            _Pool(state, pending, progress).run(job, (job_args, tokenizer.sha256), workers - 1)
    finally:
        job.close()


class _Pool:
    """Runs pending units in this process and in spawned workers, and collects their results."""

    def __init__(self, state: State, pending: list[dict], progress: _Progress):
        self.state, self.pending, self.progress = state, pending, progress
        self.context = multiprocessing.get_context("spawn")
        self.counter, self.messages = self.context.Value("q", 0), self.context.Queue()
        self.failures: dict[int, BadInputError] = {}
        self.exited = 0

    def run(self, job: _Job, worker_args: tuple, spawned: int):
        """Raises the first bad line in input order, or a worker's crash; stops the workers on any error."""
        args = (os.getpid(), *worker_args, self.pending, self.counter, self.messages)
        workers = [self.context.Process(target=_worker_main, args=args, daemon=True) for _ in range(spawned)]
        finished = False
        try:
            for worker in workers:
                worker.start()
            self._run_here(job)
            self._wait(workers)
            finished = True
        finally:
            for worker in workers:
                if not finished:
                    worker.terminate()
                worker.join()
        if self.failures:
            raise self.failures[min(self.failures)]

    def _wait(self, workers: list):
        """Takes the workers' messages until each has said it exits; raises if one died instead."""
        while self.exited < len(workers):
            self._drain(timeout=0.1)
            self.progress.maybe_log()
            if any(worker.exitcode not in (None, 0) for worker in workers):
                raise RuntimeError(f"A tokenizer worker died (exit codes {[w.exitcode for w in workers]}); "
                                   "run the same command again to resume.")
        if not self.failures and any(u["index"] not in self.state.records for u in self.pending):
            raise RuntimeError("The tokenizer workers left units unfinished; run the same command again.")

    def _run_here(self, job: _Job):
        job.report = lambda *counts: (self.progress.add(*counts), self._drain())
        finishing = []
        while (i := _claim(self.counter, len(self.pending))) is not None:
            try:
                finishing.append((self.pending[i]["index"], job.run(self.pending[i])))
                self.progress.unit_done(self.pending[i]["index"])
            except BadInputError as e:
                _stop_claims(self.counter, len(self.pending))
                self.failures[i] = e
        self.state.records.update((index, future.result()) for index, future in finishing)

    def _drain(self, timeout: float = 0.0):
        try:
            message = self.messages.get(timeout=timeout) if timeout else self.messages.get_nowait()
            while True:
                self._take(*message)
                message = self.messages.get_nowait()
        except queue.Empty:
            return

    def _take(self, kind: str, i: int, value):
        """A worker's message: progress of unit index `i`, or the result of pending unit `i`."""
        if kind == "progress":
            self.progress.add(i, *value)
        elif kind == "done":
            self.state.records[self.pending[i]["index"]] = value
            self.progress.unit_done(self.pending[i]["index"])
        elif kind == "failed":
            self.failures[i] = value
        elif kind == "exit":
            self.exited += 1
        else:
            raise RuntimeError(value)


# -------------------------------------------------------------------------------------------- gather


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
            name = f"shard-{len(shards):05d}.array_record"
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
    path = os.path.join(state.output_dir, _RejectLog.FILE)
    enabled = state.plan["settings"]["on_bad_input"] == "skip"
    if enabled:
        with open(path + ".tmp", "wb") as out:
            for unit in state.plan["units"]:
                with open(os.path.join(state.unit_dir(unit["index"]), _RejectLog.FILE), "rb") as part:
                    shutil.copyfileobj(part, out)
        os.replace(path + ".tmp", path)
    elif os.path.exists(path):
        os.remove(path)
    return {"count": sum(by_reason.values()), "by_reason": by_reason,
            "file": _RejectLog.FILE if enabled else None}
