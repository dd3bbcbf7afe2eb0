"""``sonic-train online --resume RUN``: play the current policy, record what it plays, keep training.

Three parts run at once (docs/online.md):

* **the recorder** (``recorder.server.Recorder``) on the asyncio loop of the main
  thread: external emulator clients (the BizHawk tool), or ``--clients N`` embedded
  stable-retro processes, connect in
  policy mode; every episode becomes an ordinary episode file in the run's online
  folder, marked with the checkpoint, the policy version and the epsilon that
  produced it, and every step with the policy version that chose its action;
* **the actor** (``trainer.actor.BatchedActor``): one network copy on the training
  device answering every client, batched, in its own worker thread;
* **the learner** (``trainer.learner_thread.LearnerThread``: the offline trainer's
  ``train_loop`` in a thread of its own), sampling ``--online-fraction`` of each
  batch from the growing online store and the rest from the run's offline store,
  publishing its weights to the actor every ``--sync-every`` updates and
  checkpointing every ``--checkpoint-every``.

``trainer.online_session.OnlineSession`` builds and joins these parts; this module
runs them (the recorder, the embedded clients through ``recorder.supervisor``, the
learner thread) until a budget is spent or a signal arrives.

Torch releases the GIL inside its kernels, so the learner thread, the actor thread
and the loop overlap on a 2-core machine; the emulators are separate processes.

Budgets are totals of the run's online phase, like ``offline --updates``: ``--steps``
counts the environment steps stored in the run's online episode files, ``--updates``
the updates since the online phase began. Running the same command again after a
Ctrl-C or a crash therefore carries on to the same budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import statistics
import time
from pathlib import Path

from dataset import portability
from dataset.episode import EndReason
from recorder import protocol as p
from recorder.progress import Bar, echo, setup_logging
from recorder.recording import RecordConfig, start_client, start_server
from recorder.server import Recorder, ServerConfig
from recorder.server_config import DEFAULT_MAX_CONNECTIONS
from recorder.supervisor import ClientSupervisor
from trainer.config import OnlineConfig, TrainConfig
from trainer.metrics import MetricsLog
from trainer.online_session import OnlineSession

__all__ = ["OnlineResult", "run_online"]


@dataclasses.dataclass(frozen=True)
class OnlineResult:
    """What one session did (the figures the closing note and the benchmark report)."""

    run_dir: Path
    out: Path
    checkpoint: Path
    #: Totals of the run's online phase after this session.
    total_env_steps: int
    total_updates: int
    #: This session.
    env_steps: int
    updates: int
    episodes: int
    seconds: float
    interrupted: bool
    returns: tuple[float, ...]
    mean_batch: float

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.seconds if self.seconds > 0 else 0.0


async def _serve(session: OnlineSession) -> tuple[bool, float]:
    """Run the recorder, the clients and the learner until a budget is spent or a signal arrives."""
    cfg = session.config
    server_config = ServerConfig(
        out=session.out, host=cfg.host, port=cfg.port, token=cfg.token, game=session.game, mode=p.Mode.POLICY,
        frame_skip=session.frame_skip, max_steps=cfg.max_steps, episodes=None,
        seed=cfg.seed + session.learner.updates, step_timeout=10.0, policy_only=True, profiles=session.profiles,
        max_connections=max(DEFAULT_MAX_CONNECTIONS, cfg.clients),
    )  # fmt: skip
    recorder = Recorder(server_config, session.policy_factory, session.on_episode)
    session.recorder = recorder
    loop = asyncio.get_running_loop()
    interrupted = False

    def on_signal(signame: str) -> None:
        nonlocal interrupted
        if not interrupted:
            echo(f"{signame}: saving a checkpoint and the open episodes (as truncated)")
        interrupted = True
        recorder.shutdown()

    restore_signals = portability.on_signals(loop, on_signal)
    session.actor.start()
    server_task, url = await start_server(recorder)
    thread = session.learner_thread
    thread.start()
    record_config = RecordConfig(out=None, game=session.game, emulator=cfg.emulator, token=cfg.token,
                                 profiles=session.profiles)  # fmt: skip
    embedded = cfg.emulator != "none"
    # A client that exits is started again: the recorder has already saved its open episode as
    # truncated (a disconnect), and the run goes on.
    clients = ClientSupervisor(lambda i: start_client(record_config, url, i), cfg.clients if embedded else 0,
                               restart=True)  # fmt: skip
    if not embedded:
        echo(f"waiting for an emulator client (the BizHawk tool) to connect in policy mode to {url} "
             "(Ctrl-C to stop)")
    started = time.monotonic()
    # One bar over the --steps budget (its ETA is the session's); without a terminal, a status line
    # every --progress-every seconds instead.
    bar = Bar(cfg.steps, "online", "step", initial=session.env_steps(), enabled=cfg.progress,
              lines_every=cfg.progress_every_s)  # fmt: skip
    try:
        while not server_task.done():
            await asyncio.sleep(0.1)
            if thread.budget_reached.is_set() or session.env_steps() >= cfg.steps:
                # The open episodes end as `budget`, not `interrupted` (Ctrl-C): the run stopped on purpose.
                recorder.shutdown(EndReason.BUDGET)
            if not recorder.done.is_set():
                clients.poll()
            bar.set_n(min(session.env_steps(), cfg.steps))
            bar.set_postfix(_status(session, recorder, time.monotonic() - started))
        await server_task
    finally:
        bar.set_n(min(session.env_steps(), cfg.steps))  # the steps of the last moments, then the bar ends
        bar.close()
        restore_signals()
        # The learner's loop saves a checkpoint of its last update when it stops.
        thread.stop_event.set()
        await loop.run_in_executor(None, thread.join)
        if not server_task.done():
            recorder.shutdown()
            await asyncio.gather(server_task, return_exceptions=True)
        await clients.reap_all()
        await session.actor.stop()
    if thread.error is not None:
        raise thread.error
    return interrupted, time.monotonic() - started


def _status(session: OnlineSession, recorder: Recorder, elapsed: float) -> str:
    thread = session.learner_thread
    ret = f"{statistics.fmean(session.returns):.1f}" if session.returns else "-"
    return (
        f"{thread.online_updates()} upd ({thread.session_updates() / max(elapsed, 1e-9):.1f}/s), "
        f"{len(session.session_returns)} ep, return {ret} (last {len(session.returns)}), "
        f"eps {session.actor.epsilon_now():.3f}, {recorder.stats.connections} client(s), "
        f"batch {session.actor.stats()['mean_batch']:.2f}"
    )


def run_online(config: OnlineConfig, new_run: TrainConfig | None = None) -> OnlineResult:
    """One online session; returns what it did. Raises UsageError subclasses for a user's mistakes.

    ``new_run``: start a new run in ``config.run_dir`` with this config, learning from scratch.
    """
    if logging.getLogger().handlers == []:
        setup_logging(logging.WARNING)
    session = OnlineSession(config, new_run)
    config = session.config  # the epsilon schedule resolved
    run_dir = session.run_dir
    if session.env_steps() >= config.steps:
        echo(f"nothing to do: the run already has {session.env_steps()} online steps (--steps {config.steps}); "
             "raise --steps to go on")  # fmt: skip
        return _result(session, 0, 0.0, interrupted=False)
    online_updates = session.learner.updates - session.meta.start_update
    if config.updates and online_updates >= config.updates:
        echo(f"nothing to do: the run already has {online_updates} online updates (--updates {config.updates}); "
             "raise --updates to go on")  # fmt: skip
        return _result(session, 0, 0.0, interrupted=False)
    session.out.mkdir(parents=True, exist_ok=True)
    session.history.append({
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "resumed_from": str(session.resumed_from or ""),
        "config": config.to_dict(),
    })
    session.meta.save(run_dir, session.history)
    start = (f"resuming {run_dir} from {session.resumed_from.name} (update {session.learner.updates})"
             if session.resumed_from is not None else f"learning {session.game} from scratch in {run_dir}")  # fmt: skip
    echo(f"{start}; {session.base_steps} online steps so far; new episodes go to {session.out}")
    with MetricsLog(run_dir, resume_from=session.learner.updates, tensorboard=config.tensorboard) as metrics:
        session.metrics = metrics
        interrupted, seconds = asyncio.run(_serve(session))
    session.metrics = None
    steps = session.recorder.stats.steps if session.recorder is not None else 0
    return _result(session, steps, seconds, interrupted=interrupted)


def _result(session: OnlineSession, steps: int, seconds: float, *, interrupted: bool) -> OnlineResult:
    return OnlineResult(
        run_dir=session.run_dir,
        out=session.out,
        checkpoint=session.last_checkpoint,
        total_env_steps=session.env_steps(),
        total_updates=session.learner.updates - session.meta.start_update,
        env_steps=steps,
        updates=session.learner_thread.session_updates(),
        episodes=len(session.session_returns),
        seconds=seconds,
        interrupted=interrupted,
        returns=tuple(session.session_returns),
        mean_batch=float(session.actor.stats()["mean_batch"]),
    )
