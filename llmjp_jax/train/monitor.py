"""A background thread per process while the run trains: keeps the workdir lock fresh, tells the
other processes how far this one got, and ends a run that stopped making progress.

A peer that dies breaks the next collective (the loop then exits with PEER_EXIT_CODE, naming
the peers that went silent), or, where the collective just waits (e.g. NCCL), JAX's
coordination service ends every process once the dead one's heartbeats have been missing
for --heartbeat_timeout_s. A peer that hangs while alive (stuck I/O, a deadlock) is found by
neither: the others wait in the step's collectives forever. Here, when no step finished for
train.hang_timeout_s, the process says how far each peer got and when it last reported
(through the coordination service's key-value store) and exits with PEER_EXIT_CODE.
"""

import json
import os
import socket
import sys
import threading
import time

import jax

from llmjp_jax.log import get_logger

log = get_logger()

PEER_EXIT_CODE = 76  # a peer died or hung: restart the run (it resumes from its last checkpoint)
_KEY = "llmjp_jax/progress/"


def _client():
    """JAX's coordination-service client in a multi-process run, else None (not public API)."""
    try:
        from jax._src import distributed
        return distributed.global_state.client
    except (ImportError, AttributeError):
        return None


class Monitor:
    """Use as a context manager around the loop; call `beat(step)` after each finished step."""

    def __init__(self, timeout_s: float, lock=None, poll_s: float = 1.0, publish_s: float = 5.0):
        self.timeout_s, self.lock, self.poll_s, self.publish_s = timeout_s, lock, poll_s, publish_s
        self.step, self.last_beat = None, time.monotonic()
        self._stop = threading.Event()
        self._client = _client() if jax.process_count() > 1 else None
        self._me = {"process": jax.process_index(), "host": socket.gethostname(), "pid": os.getpid()}
        self._published = (None, 0.0)

    def beat(self, step: int):
        self.step, self.last_beat = step, time.monotonic()

    def __enter__(self):
        self.last_beat = time.monotonic()
        # Published before the thread's first poll: a peer that hangs within its first second
        # (steps of 0.1 s) had never reported, and its silence could not be told apart.
        self._publish()
        self._thread = threading.Thread(target=self._run, name="run-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        return False

    def _run(self):
        while not self._stop.wait(self.poll_s):
            if self.lock is not None:
                self.lock.refresh()
            self._publish()
            idle = time.monotonic() - self.last_beat
            if self.timeout_s and idle > self.timeout_s:
                self._give_up(idle)

    def _publish(self):
        step, when = self._published
        if self._client is None or (step == self.step and time.monotonic() - when < self.publish_s):
            return
        value = json.dumps({**self._me, "step": self.step, "time": time.time()})
        try:
            self._client.key_value_set(f"{_KEY}{self._me['process']}", value, allow_overwrite=True)
            self._published = (self.step, time.monotonic())
        except Exception:  # the coordinator may be gone; the heartbeat timeout handles that
            pass

    def peers(self) -> list[dict]:
        """The other processes' last reports (step, time, host, pid), as far as they can be read."""
        if self._client is None:
            return []
        found: list[dict] = []

        def read():
            try:
                found.extend(json.loads(v) for _, v in self._client.key_value_dir_get(_KEY))
            except Exception:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout=10)
        return [p for p in found if p["process"] != self._me["process"]]

    def describe_peers(self) -> str:
        """One line per other process: its last reported step and how long ago, flagged when
        it fell silent (no report for 2 publish intervals) or is behind this process."""
        if self._client is None:
            return ""
        now, lines = time.time(), []
        for p in sorted(self.peers(), key=lambda p: p["process"]):
            flags = []
            if now - p["time"] > 2 * self.publish_s + self.poll_s:
                flags.append("silent")
            if p["step"] is None or (self.step is not None and p["step"] < self.step):
                flags.append("behind this process")
            lines.append(f"  process {p['process']} (host {p['host']}, pid {p['pid']}): last step "
                         f"{p['step']}, reported {now - p['time']:.0f} s ago"
                         + (f"  <- {', '.join(flags)}" if flags else ""))
        if not lines:
            why = ("none has reported yet" if self._me["process"] == 0
                   else "the coordinator, process 0, may be gone")
            lines.append(f"  (their reports could not be read: {why})")
        return "\nThe other processes:\n" + "\n".join(lines)

    def _give_up(self, idle: float):
        exit_for_peer(f"No training step finished for {idle:.0f} s (train.hang_timeout_s="
                      f"{self.timeout_s:g}): process {self._me['process']} (host {self._me['host']}, pid "
                      f"{self._me['pid']}) is after step {self.step}, waiting." + self.describe_peers())


def exit_for_peer(message: str):
    """Ends this process at once (its peers cannot be waited for) with PEER_EXIT_CODE."""
    log.error("%s\nExiting with code %d; a restart resumes from the last checkpoint.", message,
              PEER_EXIT_CODE)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(PEER_EXIT_CODE)
