"""The training loop: one function runs the updates of ``sonic-train offline`` and of ``online``'s learner thread.

``train_loop`` takes a batch from the ``DeviceFeeder``, updates the ``Learner``,
logs every ``log_every`` updates, checkpoints every ``checkpoint_every`` and once
more when it ends (the target is reached, or ``stop`` is set: Ctrl-C offline, the
end of the session online), so stopping never loses an update. What differs
between the two callers comes in as callables:

* ``save`` builds the checkpoint of the learner's current state and writes it;
* ``log`` receives the metrics (``METRIC_NAMES`` plus ``updates_per_s`` and ``elapsed_s``);
* ``pace`` (online) runs before each update and may hold it back
  (``Pace.WAIT``: the actors are behind the update-to-step cap);
* ``after_update`` (offline: the progress bar; online: publishing weights to the actor).

``stop_on_signals`` turns SIGINT/SIGTERM into ``stop`` for a loop on the main thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from trainer.learner import METRIC_NAMES, DeviceFeeder, Learner

__all__ = ["LoopResult", "Pace", "stop_on_signals", "train_loop"]

#: How long the loop waits when ``pace`` holds an update back.
PACE_WAIT_S = 0.01


class Pace(enum.Enum):
    """What ``pace`` says before an update."""

    GO = "go"
    WAIT = "wait"


@dataclasses.dataclass(frozen=True)
class LoopResult:
    #: Learner update count when the loop began and when it ended.
    start: int
    updates: int
    #: The last logged metrics ({} if none was logged).
    last_metrics: dict[str, float]
    #: The last checkpoint the loop saved (None: it did no update).
    checkpoint: Path | None
    seconds: float
    #: ``stop`` ended the loop before its target.
    stopped: bool

    @property
    def done(self) -> int:
        return self.updates - self.start

    @property
    def updates_per_s(self) -> float:
        return self.done / max(self.seconds, 1e-9)


def train_loop(
    learner: Learner,
    feeder: DeviceFeeder,
    *,
    target: int | None,
    log_every: int,
    checkpoint_every: int,
    save: Callable[[], Path],
    log: Callable[[int, dict[str, float]], None],
    stop: threading.Event,
    pace: Callable[[], Pace] | None = None,
    after_update: Callable[[int], None] | None = None,
) -> LoopResult:
    """Update until ``learner.updates`` reaches ``target`` (None: no target) or ``stop`` is set."""
    start = saved_at = learner.updates
    checkpoint: Path | None = None
    last: dict[str, float] = {}
    t0 = time.perf_counter()
    t_log, n_log = t0, start
    while (target is None or learner.updates < target) and not stop.is_set():
        if pace is not None and pace() is Pace.WAIT:
            stop.wait(PACE_WAIT_S)
            continue
        metrics = learner.update(*feeder.next())
        feeder.release()
        u = learner.updates
        if after_update is not None:
            after_update(u)
        if u % log_every == 0 or u == target:
            now = time.perf_counter()
            # Reading the metrics syncs the device: only when logging.
            last = dict(zip(METRIC_NAMES, metrics.float().cpu().tolist(), strict=True))
            last["updates_per_s"] = (u - n_log) / max(now - t_log, 1e-9)
            last["elapsed_s"] = now - t0
            t_log, n_log = now, u
            log(u, last)
        if u % checkpoint_every == 0:
            checkpoint, saved_at = save(), u
    if learner.updates != saved_at:
        checkpoint = save()
    return LoopResult(start=start, updates=learner.updates, last_metrics=last, checkpoint=checkpoint,
                      seconds=time.perf_counter() - t0, stopped=stop.is_set())  # fmt: skip


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, announce: Callable[[str], None]) -> Iterator[None]:
    """While inside, SIGINT (Ctrl-C) and SIGTERM set ``stop`` (``announce`` gets the signal's name, once).

    Python runs signal handlers on the main thread only; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            announce(signal.Signals(signum).name)
        stop.set()

    sigs = [signal.SIGINT, signal.SIGTERM]
    previous = {sig: signal.signal(sig, handler) for sig in sigs}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
