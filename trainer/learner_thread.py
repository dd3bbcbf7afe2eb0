"""The learner of ``sonic-train online``: ``trainer.training_loop.train_loop`` in a thread of its own.

It trains while the recorder plays on the main thread's event loop. Before each
update it takes in the episode files the recorder finished (``files``) and holds
the update back while it is ahead of ``--updates-per-step`` times the online env
steps (and, in a run without offline data, until the online store holds
``--learning-starts`` transitions); after each one it hands the actor a copy of its weights every
``--sync-every`` updates. With ``--strict-ratio`` the actor also waits for it
(``wait_for_learner``, before each batch) while it is more than ``--sync-every``
updates behind that ratio, so the ratio is kept and not only capped. It runs at a lower
CPU priority (``--learner-nice``, Linux) so that the lockstep chain of the actors wins the cores when it wakes. The
loop checkpoints every ``--checkpoint-every`` and
when it ends: the ``--updates`` budget is spent (``budget_reached``) or the session
sets ``stop_event``.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from dataset.errors import DatasetError
from trainer.actor import BatchedActor
from trainer.config import OnlineConfig
from trainer.learner import DeviceFeeder, Learner
from trainer.online_store import OnlineStore
from trainer.training_loop import LoopResult, Pace, train_loop

__all__ = ["LearnerThread", "lower_thread_priority"]

log = logging.getLogger("sonic_rl.online")


def lower_thread_priority(nice: int) -> bool:
    """Raise the calling thread's nice value by ``nice`` (capped at 19); False where that is not possible.

    Linux keeps a nice value per thread and ``setpriority(PRIO_PROCESS, tid)`` sets it
    (setpriority(2), NOTES); elsewhere the call would change the whole process, so it is
    not made. Raising one's own nice value needs no privilege.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # e.g. a sandbox without setpriority: train at the same priority
        log.warning("could not lower the learner's CPU priority: %s", exc)
        return False
    return True


class LearnerThread(threading.Thread):
    """Trains while the loop plays: ingest finished files, update, publish, checkpoint."""

    def __init__(
        self,
        *,
        learner: Learner,
        feeder: DeviceFeeder,
        online: OnlineStore,
        actor: BatchedActor,
        config: OnlineConfig,
        start_update: int,
        env_steps: Callable[[], int],
        save: Callable[[], Path],
        log_metrics: Callable[[int, dict[str, float]], None],
        min_online: int = 0,
    ) -> None:
        super().__init__(name="learner", daemon=True)
        self.learner = learner
        self.feeder = feeder
        self.online = online
        self.actor = actor
        self.config = config
        #: The learner's update count when the run's online phase began (budgets count from there).
        self.start_update = start_update
        self.session_start = learner.updates
        self.env_steps = env_steps
        self.save = save
        self.log_metrics = log_metrics
        #: Online transitions the store must hold before the first update (a run without offline data).
        self.min_online = min_online
        self.files: queue.Queue[Path] = queue.Queue()
        self.stop_event = threading.Event()
        self.budget_reached = threading.Event()
        self.error: BaseException | None = None
        self.result: LoopResult | None = None
        #: Notified after every update, for actors waiting in ``wait_for_learner``.
        self._updated = threading.Condition()

    def online_updates(self) -> int:
        return self.learner.updates - self.start_update

    def session_updates(self) -> int:
        return self.learner.updates - self.session_start

    def ingest(self) -> None:
        while True:
            try:
                path = self.files.get_nowait()
            except queue.Empty:
                return
            try:
                self.online.add_file(path)
            except DatasetError as exc:
                log.warning("not training on a new episode: %s", exc)

    def due_updates(self) -> int:
        """Online updates ``--updates-per-step`` allows at the current online step count."""
        # From scratch the ratio counts from --learning-starts, so the first update is not a burst.
        return math.floor(self.config.updates_per_step * (self.env_steps() - self.min_online))

    def _pace(self) -> Pace:
        self.ingest()
        if len(self.online) < self.min_online:
            return Pace.WAIT  # learning from scratch: not enough online data yet
        if self.config.updates_per_step > 0 and self.online_updates() >= self.due_updates():
            return Pace.WAIT  # the actors are behind the update cap
        return Pace.GO

    def wait_for_learner(self) -> None:
        """``--strict-ratio``: block the calling (actor) thread while the learner is behind the ratio.

        DER, DrQ(eps) and BBF do a fixed number of updates per environment step; here the
        actors run ahead freely, so without this a fast emulator outruns the learner and the
        run ends with a fraction of its updates. The slack of ``--sync-every`` updates lets the
        actor batch without waking on every update. It never waits while the learner itself
        waits for data (before ``--learning-starts`` transitions are in the store: the episode
        that would bring them is the one being played) or after it has stopped.
        """
        cfg = self.config
        if not cfg.strict_ratio:
            return
        with self._updated:
            while (
                self.is_alive()
                and not self.stop_event.is_set()
                and not self.budget_reached.is_set()
                and len(self.online) >= self.min_online
                and self.online_updates() + cfg.sync_every < self.due_updates()
            ):
                # The timeout re-reads the condition: episodes the learner ingests and stop events notify nobody.
                self._updated.wait(0.05)

    def _after_update(self, u: int) -> None:
        if self.config.strict_ratio:
            with self._updated:
                self._updated.notify_all()
        if u % self.config.sync_every == 0:
            # A private copy taken between updates: the actor thread never sees a half-step.
            self.actor.publish({k: v.detach().clone() for k, v in self.learner.online.state_dict().items()}, u)

    def run(self) -> None:
        cfg = self.config
        # Measured on 2 cores (docs/online.md, "Throughput"): with the learner niced, 1 client
        # played 2x faster at the same updates/s.
        lower_thread_priority(cfg.learner_nice)
        try:
            self.result = train_loop(
                self.learner, self.feeder, target=self.start_update + cfg.updates if cfg.updates else None,
                log_every=self.learner.config.log_every, checkpoint_every=cfg.checkpoint_every, save=self.save,
                log=self.log_metrics, stop=self.stop_event, pace=self._pace, after_update=self._after_update,
            )  # fmt: skip
            if not self.result.stopped:
                self.budget_reached.set()
        except BaseException as exc:  # reported by the main thread, which stops the run
            self.error = exc
            self.budget_reached.set()
