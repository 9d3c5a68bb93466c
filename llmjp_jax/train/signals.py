"""SIGTERM and SIGINT during training: save at a step every process agrees on, then exit.

The first signal only sets a flag. The loop passes the flag into the next train step, where
its maximum over all processes is computed with the step (`make_train_step`'s "stop"), so
a signal that reaches any one process stops them all after the same step; the loop saves
that step and exits with PREEMPTED_EXIT_CODE. A second signal ends the process at once
(exit status 128 + signal number), even while the main thread is blocked: the signal
bytes arrive through a wakeup file descriptor read by a small thread, because Python runs
its own handlers only when the main thread returns to the interpreter.

JAX installs a C++ SIGTERM handler for its preemption service in multi-process runs; the
Python handler installed here replaces it while training (the service's other notices,
e.g. TPU maintenance events, still reach the loop through orbax's `reached_preemption`).
"""

import os
import signal
import sys
import threading

from llmjp_jax.log import get_logger

log = get_logger()

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: saved and stopped on a signal; run the same command again
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """Raised by the loop after saving the step at which a signal stopped the run."""

    def __init__(self, step: int, signum: int | None):
        name = signal.Signals(signum).name if signum else "a preemption notice"
        super().__init__(f"Stopped by {name} after step {step}; the checkpoint of step {step} is saved.")
        self.step, self.signum = step, signum


_EARLY: list[int] = []  # signals received before StopSignals took over (catch_early)


def catch_early():
    """Records SIGTERM/SIGINT from now until a StopSignals takes over (which then acts on them):
    for the seconds of imports and start-up before training, in llmjp-train only."""
    for s in SIGNALS:
        signal.signal(s, lambda signum, frame: _EARLY.append(signum))


def release_early():
    """Back to Python's default handling (for work that is not training, e.g. --dry_run); a
    signal recorded meanwhile is delivered again."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _EARLY:
        os.kill(os.getpid(), _EARLY[0])


class StopSignals:
    """While active: the first SIGTERM/SIGINT sets `signum`, a second exits the process at once."""

    def __init__(self):
        self.signum: int | None = _EARLY[0] if _EARLY else None
        self._previous, self._wakeup, self._pipe, self._thread = {}, None, None, None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach only the main thread; nothing to catch elsewhere
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._pipe = (read_fd, write_fd)
        for s in SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        self._wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        if len(_EARLY) > 1:  # two signals during start-up: the second means now
            os._exit(128 + _EARLY[1])
        if self.signum is not None:
            log.warning("%s received during start-up: saving after the first step, then exiting with "
                        "code %d.", signal.Signals(self.signum).name, PREEMPTED_EXIT_CODE)
        self._thread = threading.Thread(target=self._watch, args=(read_fd,), name="stop-signals",
                                        daemon=True)
        self._thread.start()
        return self

    def reclaim(self):
        """Installs the handlers again, e.g. after jax.distributed.initialize installed JAX's."""
        if self._pipe is not None:
            for s in SIGNALS:
                signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        del signum, frame  # counted by the watcher thread, which sees every signal at once

    def _watch(self, read_fd: int):
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum not in SIGNALS:
                    continue
                if self.signum is None:
                    self.signum = signum
                    log.warning("%s received: saving after the current step, then exiting with code %d "
                                "(send it again to exit at once, without saving).",
                                signal.Signals(signum).name, PREEMPTED_EXIT_CODE)
                else:
                    log.error("Second signal (%s): exiting now without saving.", signal.Signals(signum).name)
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(128 + signum)

    def __exit__(self, *exc):
        if self._pipe is None:
            return False
        signal.set_wakeup_fd(self._wakeup if self._wakeup is not None else -1)
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        read_fd, write_fd = self._pipe
        os.close(write_fd)  # the watcher reads end-of-file and returns
        self._thread.join(timeout=5)
        os.close(read_fd)
        self._pipe = None
        return False
