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
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from dataset import portability
from dataset.errors import SonicRLError, UsageError
from recorder.progress import echo

__all__ = ["USAGE_EXIT", "ClientSupervisor", "reap", "spawn_client"]

log = logging.getLogger("sonic_rl.recorder")

#: A client that exits this soon after starting, this many times in a row, is not restarted.
QUICK_FAILURE_S = 10.0
MAX_QUICK_FAILURES = 3
#: A client's exit status for a user's mistake it reported as one ``error: ...`` line (a missing
#: ROM, an unknown --state), as the commands' own (recorder.console).
USAGE_EXIT = 2


class Client(subprocess.Popen[bytes]):
    """A client process whose standard error is read line by line and printed above the progress bar.

    Its last ``error: ...`` line is kept (:attr:`error`), so a failure reaches the user as that one
    line instead of the child's output interleaved with a bar (issue 12).
    """

    error: str | None = None
    _reader: threading.Thread | None = None

    def start_reading(self, index: int) -> None:
        assert self.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.stderr, index), daemon=True,
                                        name=f"client-{index}-stderr")  # fmt: skip
        self._reader.start()

    def _read(self, stream: IO[bytes], index: int) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip()
                if not line:
                    continue
                if line.startswith("error: "):
                    self.error = line.removeprefix("error: ")
                    continue  # reported once, by the recorder (ClientSupervisor.failure)
                echo(f"client {index}: {line}")

    def finished_reading(self, timeout: float = 1.0) -> None:
        """Wait (briefly) until everything the exited process wrote has been read."""
        if self._reader is not None:
            self._reader.join(timeout)


def spawn_client(cmd: Sequence[str], index: int) -> Client:
    """Start client ``index`` running ``cmd``, where a terminal's Ctrl-C does not reach it."""
    env = dict(os.environ)
    # Each emulator is single-threaded; stop BLAS/OpenMP pools from fighting over the cores.
    env.setdefault("OMP_NUM_THREADS", "1")
    log.debug("starting embedded client %d: %s", index, " ".join(cmd))
    # Out of the terminal's process group, so Ctrl-C goes to the recorder, which then tells clients
    # to stop (docs/protocol.md, STOP). POSIX: a session of its own; Windows: a process group of
    # its own (CTRL_C_EVENT is not sent to one). dataset.portability chooses.
    proc = Client(list(cmd), env=env, stderr=subprocess.PIPE, **portability.detached_process_kwargs())
    proc.start_reading(index)
    return proc


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

    def failure(self, when: str) -> SonicRLError:
        """The error to raise for the failed clients: their own one line when they gave one.

        A client that exited with :data:`USAGE_EXIT` reported a user's mistake (a missing ROM, a
        bad --state): that line becomes a UsageError (one line, exit status 2).
        """
        failed = self.failed()
        for proc in failed:
            if isinstance(proc, Client):
                proc.finished_reading()
        said = [p.error for p in failed if isinstance(p, Client) and p.error]
        if said and all(p.returncode == USAGE_EXIT for p in failed):
            return UsageError(said[0])
        detail = f": {said[0]}" if said else "; see the messages above"
        return SonicRLError(f"{len(failed)} emulator client(s) failed (exit {failed[0].returncode}) {when}{detail}")

    def poll(self) -> None:
        """Restart exited clients (with ``restart``); SonicRLError once they fail right after starting too often."""
        if not self.restart:
            return
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                continue
            quick = time.monotonic() - self._started[i] < QUICK_FAILURE_S and proc.returncode != 0
            self._quick_failures = self._quick_failures + 1 if quick else 0
            error = None
            if isinstance(proc, Client):
                proc.finished_reading()
                error = proc.error
            if proc.returncode == USAGE_EXIT and error:
                raise UsageError(error)  # a user's mistake does not go away by starting the client again
            if self._quick_failures >= MAX_QUICK_FAILURES:
                raise SonicRLError(
                    f"embedded client {i} exited with status {proc.returncode} {self._quick_failures} times in a "
                    "row right after starting; see its messages above"
                )
            said = f": {error}" if error else ""
            echo(f"embedded client {i} exited (status {proc.returncode}{said}); starting another")
            self.procs[i] = self._start(i)
            self._started[i] = time.monotonic()

    async def reap_all(self) -> None:
        for proc in self.procs:
            await reap(proc)
