"""The processes of a tokenization: this one and spawned workers claim units in input order.

The main process and any spawned workers claim units in input order; progress and completion
records come back over a queue; the first bad line in input order stops the run.
"""

import ctypes
import functools
import multiprocessing
import os
import queue
import signal
import sys
import time
import traceback
from concurrent.futures import Future

from llmjp_jax.data.readers import BadInputError
from llmjp_jax.data.tokenize.plan import cpu_count
from llmjp_jax.data.tokenize.state import State
from llmjp_jax.data.tokenize.unit import Job
from llmjp_jax.data.tokenizer import Tokenizer
from llmjp_jax.log import get_logger

MIN_WORKER_BYTES = 32 << 20  # of input, for each worker process that num_workers=0 starts

log = get_logger()


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
    job = Job(*job_args, report=report)
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
    job = Job(state.folder, state.plan["settings"], tokenizer, threads, batch_docs, progress.add)
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

    def run(self, job: Job, worker_args: tuple, spawned: int):
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

    def _run_here(self, job: Job):
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
