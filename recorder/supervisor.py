"""Embedded emulator client processes: start them, restart the ones that exit (online), reap them all.

``sonic-rec record`` (and ``sonic-train eval``, through it) starts N clients and
stops when all have exited; ``sonic-train online`` restarts a client that exits
so the run goes on (the recorder has already saved its open episode as
truncated), unless clients keep dying right after they start. Which command a
client runs is the caller's choice (``recorder.recording.start_client``); this
module only supervises processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from dataset.errors import SonicRLError

__all__ = ["ClientSupervisor", "reap", "spawn_client"]

log = logging.getLogger("sonic_rl.recorder")

#: A client that exits this soon after starting, this many times in a row, is not restarted.
QUICK_FAILURE_S = 10.0
MAX_QUICK_FAILURES = 3


def spawn_client(cmd: Sequence[str], index: int) -> subprocess.Popen[bytes]:
    """Start client ``index`` running ``cmd``, in a session of its own."""
    env = dict(os.environ)
    # Each emulator is single-threaded; stop BLAS/OpenMP pools from fighting over the cores.
    env.setdefault("OMP_NUM_THREADS", "1")
    log.debug("starting embedded client %d: %s", index, " ".join(cmd))
    # A new session: a terminal's Ctrl-C goes to the recorder, which then tells clients to stop.
    return subprocess.Popen(list(cmd), env=env, start_new_session=True)


async def reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait up to 5 s for ``proc`` to exit by itself, then terminate it, then kill it."""
    for _ in range(100):
        if proc.poll() is not None:
            return
        await asyncio.sleep(0.05)
    proc.terminate()
    for _ in range(40):
        if proc.poll() is not None:
            return
        await asyncio.sleep(0.05)
    proc.kill()
    proc.wait()


class ClientSupervisor:
    """``count`` client processes, client i started by ``start(i)``; with ``restart``, exited ones start again."""

    def __init__(self, start: Callable[[int], subprocess.Popen[bytes]], count: int, *, restart: bool = False) -> None:
        self._start = start
        self.restart = restart
        self.procs: list[subprocess.Popen[bytes]] = []
        self._started: list[float] = []
        self._quick_failures = 0
        for i in range(count):
            self.procs.append(start(i))
            self._started.append(time.monotonic())

    def all_exited(self) -> bool:
        """True once there were clients and every one has exited."""
        return bool(self.procs) and all(p.poll() is not None for p in self.procs)

    def failed(self) -> list[subprocess.Popen[bytes]]:
        """Clients that exited with a failure status."""
        return [p for p in self.procs if p.returncode not in (0, None)]

    def poll(self) -> None:
        """Restart exited clients (with ``restart``); SonicRLError once they fail right after starting too often."""
        if not self.restart:
            return
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                continue
            quick = time.monotonic() - self._started[i] < QUICK_FAILURE_S and proc.returncode != 0
            self._quick_failures = self._quick_failures + 1 if quick else 0
            if self._quick_failures >= MAX_QUICK_FAILURES:
                raise SonicRLError(
                    f"embedded client {i} exited with status {proc.returncode} {self._quick_failures} times in a "
                    "row right after starting; see its messages above"
                )
            print(f"embedded client {i} exited (status {proc.returncode}); starting another",
                  file=sys.stderr, flush=True)  # fmt: skip
            self.procs[i] = self._start(i)
            self._started[i] = time.monotonic()

    async def reap_all(self) -> None:
        for proc in self.procs:
            await reap(proc)
