"""The learner of ``sonic-train online``: ``trainer.training_loop.train_loop`` in a thread of its own.

It trains while the recorder plays on the main thread's event loop. Before each
update it takes in the episode files the recorder finished (``files``) and holds
the update back while it is ahead of ``--updates-per-step`` times the online env
steps (and, in a run without offline data, until the online store holds
``--learning-starts`` transitions); after each one it hands the actor a copy of its weights every
``--sync-every`` updates. The loop checkpoints every ``--checkpoint-every`` and
when it ends: the ``--updates`` budget is spent (``budget_reached``) or the session
sets ``stop_event``.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from dataset.errors import DatasetError
from trainer.actor import BatchedActor
from trainer.config import OnlineConfig
from trainer.learner import DeviceFeeder, Learner
from trainer.online_store import OnlineStore
from trainer.training_loop import LoopResult, Pace, train_loop

__all__ = ["LearnerThread"]

log = logging.getLogger("sonic_rl.online")


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

    def _pace(self) -> Pace:
        self.ingest()
        if len(self.online) < self.min_online:
            return Pace.WAIT  # learning from scratch: not enough online data yet
        cap = self.config.updates_per_step
        # From scratch the ratio counts from --learning-starts, so the first update is not a burst.
        if cap > 0 and self.online_updates() >= math.floor(cap * (self.env_steps() - self.min_online)):
            return Pace.WAIT  # the actors are behind the update cap
        return Pace.GO

    def _after_update(self, u: int) -> None:
        if u % self.config.sync_every == 0:
            # A private copy taken between updates: the actor thread never sees a half-step.
            self.actor.publish({k: v.detach().clone() for k, v in self.learner.online.state_dict().items()}, u)

    def run(self) -> None:
        cfg = self.config
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
