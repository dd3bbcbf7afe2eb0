"""``sonic-train online --resume RUN``: play the current policy, record what it plays, keep training.

Three parts run at once (docs/online.md):

* **the recorder** (``recorder.server.Recorder``) on the asyncio loop of the main
  thread: BizHawk, or ``--clients N`` embedded stable-retro processes, connect in
  policy mode; every episode becomes an ordinary episode file in the run's online
  folder, marked with the checkpoint, the policy version and the epsilon that
  produced it, and every step with the policy version that chose its action;
* **the actor** (``trainer.actor.BatchedActor``): one network copy on the training
  device answering every client, batched, in its own worker thread;
* **the learner** (``trainer.learner.Learner``) in a thread of its own, sampling
  ``--online-fraction`` of each batch from the growing online store and the rest
  from the run's offline store, publishing its weights to the actor every
  ``--sync-every`` updates and checkpointing every ``--checkpoint-every``.

Torch releases the GIL inside its kernels, so the learner thread, the actor thread
and the loop overlap on a 2-core machine; the emulators are separate processes.

Budgets are totals of the run's online phase, like ``offline --updates``: ``--steps``
counts the environment steps stored in the run's online episode files, ``--updates``
the updates since the online phase began. Running the same command again after a
Ctrl-C or a crash therefore carries on to the same budget.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import math
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from dataset.atomic import atomic_write_text
from dataset.errors import ConfigError, DatasetError, ErrorCode, ProtocolError, SonicRLError
from recorder import protocol as p
from recorder.profile import GameProfile, load_profile
from trainer.actor import ActorHandle, BatchedActor
from trainer.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from trainer.config import OnlineConfig, TrainConfig
from trainer.game_spec import GameSpec
from trainer.learner import METRIC_NAMES, DeviceFeeder, Learner, resolve_device, seed_everything
from trainer.metrics import MetricsLog
from trainer.network import QNetwork
from trainer.offline import _checkpoint_state, _restore_rng, open_store
from trainer.online_store import MixedSampler, OnlineStore

__all__ = ["OnlineResult", "run_online"]

log = logging.getLogger("sonic_rl.online")

#: The run folder's record of its online phase (run id, where the online episodes go).
ONLINE_META = "online.json"
#: Extra attribute that ties an episode file to the run that played it.
RUN_ID_KEY = "online_run"
#: An embedded client that dies this soon after starting, this many times in a row, is not restarted.
_QUICK_FAILURE_S = 10.0
_MAX_QUICK_FAILURES = 3


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


# --------------------------------------------------------------------------- run folder


@dataclasses.dataclass(frozen=True)
class _OnlineMeta:
    run_id: str
    start_update: int
    out: str

    def save(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        body = {**dataclasses.asdict(self), "sessions": history}
        atomic_write_text(run_dir / ONLINE_META, json.dumps(body, indent=2) + "\n")


def _online_meta(run_dir: Path, updates: int, out: str) -> tuple[_OnlineMeta, list[dict[str, Any]]]:
    path = run_dir / ONLINE_META
    if path.exists():
        try:
            d = json.loads(path.read_text())
            meta = _OnlineMeta(str(d["run_id"]), int(d["start_update"]), str(d["out"]))
            history = list(d.get("sessions", []))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} is damaged ({exc}); restore it or move it away to start the online phase anew"
            ) from exc
        if out:
            meta = dataclasses.replace(meta, out=str(Path(out).resolve()))
        return meta, history
    # The default folder is stored relative to the run, so a moved run folder keeps its episodes.
    return _OnlineMeta(uuid.uuid4().hex[:12], updates, str(Path(out).resolve()) if out else "online"), []


def _run_files(folder: Path, run_id: str) -> list[Path]:
    """Complete episode files in ``folder`` played by this run (other files are left alone)."""
    from dataset.catalog import find_episode_files
    from dataset.episode import EpisodeReader

    if not folder.is_dir():
        return []
    mine = []
    for path in sorted(find_episode_files([folder])):
        try:
            with EpisodeReader(path) as ep:
                if dict(ep.meta.extra).get(RUN_ID_KEY) == run_id:
                    mine.append(path)
        except DatasetError as exc:
            log.warning("skipping %s: %s", path, exc)
    return mine


# --------------------------------------------------------------------------- learner thread


class _LearnerThread(threading.Thread):
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
        env_steps: Any,
        save: Any,
        log_metrics: Any,
    ) -> None:
        super().__init__(name="learner", daemon=True)
        self.learner = learner
        self.feeder = feeder
        self.online = online
        self.actor = actor
        self.config = config
        self.start_update = start_update
        self.env_steps = env_steps
        self.save = save
        self.log_metrics = log_metrics
        self.files: queue.Queue[Path] = queue.Queue()
        self.stop_event = threading.Event()
        self.budget_reached = threading.Event()
        self.error: BaseException | None = None
        self.last_checkpoint: Path | None = None
        self.session_updates = 0

    def online_updates(self) -> int:
        return self.learner.updates - self.start_update

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

    def _allowed(self) -> bool:
        cfg = self.config
        if cfg.updates and self.online_updates() >= cfg.updates:
            self.budget_reached.set()
            return False
        if cfg.updates_per_step > 0:
            return self.online_updates() < math.floor(cfg.updates_per_step * self.env_steps())
        return True

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the main thread, which stops the run
            self.error = exc
            self.budget_reached.set()

    def _loop(self) -> None:
        learner, cfg = self.learner, self.config
        log_every = learner.config.log_every
        t_log, n_log = time.perf_counter(), learner.updates
        while not self.stop_event.is_set():
            self.ingest()
            if not self._allowed():
                if self.budget_reached.is_set():
                    return
                self.stop_event.wait(0.01)  # the actors are behind the update cap
                continue
            batch = self.feeder.next()
            metrics = learner.update(*batch)
            self.feeder.release()
            self.session_updates += 1
            u = learner.updates
            if u % cfg.sync_every == 0:
                # A private copy taken between updates: the actor thread never sees a half-step.
                self.actor.publish({k: v.detach().clone() for k, v in learner.online.state_dict().items()}, u)
            if u % log_every == 0:
                now = time.perf_counter()
                values = dict(zip(METRIC_NAMES, metrics.float().cpu().tolist(), strict=True))
                values["updates_per_s"] = (u - n_log) / max(now - t_log, 1e-9)
                t_log, n_log = now, u
                self.log_metrics(u, values)
            if u % cfg.checkpoint_every == 0:
                self.last_checkpoint = self.save()


# --------------------------------------------------------------------------- the session


class _Session:
    """One ``sonic-train online`` invocation: everything the loop, the learner and the actor share."""

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        run_dir = Path(config.run_dir)
        self.run_dir = run_dir
        if not (run_dir / "config.json").exists():
            raise ConfigError(
                f"{run_dir} is not a run folder (no config.json); train one with sonic-train offline --run {run_dir}"
            )
        self.train_config = TrainConfig.load(run_dir / "config.json")
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise ConfigError(f"{run_dir} has no checkpoints; train it with sonic-train offline first")
        self.device = resolve_device(config.device)
        state = load_checkpoint(ckpt, map_location=self.device)
        self.resumed_from = ckpt
        self.spec = GameSpec.of_checkpoint(state["dataset"])
        self.game, self.action_names = self.spec.game, self.spec.action_names
        self.frame_skip = int(state["dataset"]["frame_skip"])
        self.profile: GameProfile = load_profile(self.game)
        self.spec.require_match(
            GameSpec.of_profile(self.profile), mine="the run was trained on", theirs="the installed profile has",
            error=ConfigError, fix="use the sonic-rl version that trained it",
        )  # fmt: skip
        self.meta, self.history = _online_meta(run_dir, int(state["updates"]), config.out)
        self.out = Path(self.meta.out) if Path(self.meta.out).is_absolute() else run_dir / self.meta.out

        if self.device.type == "cpu":
            # Learner thread + actor thread + one emulator process per client share the cores;
            # torch's own pool on top of them only adds contention.
            torch.set_num_threads(max(1, ((os.cpu_count() or 2) - config.clients) // 2))
        tc = self.train_config
        self.offline = open_store(tc, fingerprint=str(state["dataset_fingerprint"]), progress=True)
        assert self.offline.info is not None
        self.info = self.offline.info
        self.online = OnlineStore(
            tc.preprocess, game=self.game, action_names=self.action_names, gamma=tc.gamma, n_step=tc.n_step,
            frame_stack=tc.frame_stack, clip_rewards=tc.clip_rewards,
        )  # fmt: skip
        earlier = _run_files(self.out, self.meta.run_id)
        if earlier:
            print(f"reading {len(earlier)} online episode(s) of this run from {self.out}", file=sys.stderr, flush=True)
        for path in earlier:
            try:
                self.online.add_file(path)
            except DatasetError as exc:  # e.g. an episode interrupted before its first step
                log.warning("not training on an earlier online episode: %s", exc)
        self.base_steps = len(self.online)

        self.rng = seed_everything(config.seed)
        # The run's config stays the one saved (checkpoints, eval, offline --resume); only the
        # learner trains with the online phase's CQL weight.
        learn_config = dataclasses.replace(tc, cql_alpha=config.cql_alpha)
        self.learner = Learner(learn_config, self.offline.state_shape, len(self.action_names), self.device)
        self.learner.load_state_dict(state)
        _restore_rng(self.rng, state["rng"])
        self.sampler = MixedSampler(self.offline, self.online, config.online_fraction)
        self.feeder = DeviceFeeder(self.sampler, self.rng, tc.batch_size, self.device)

        c = tc.frame_stack * tc.preprocess.channels
        net = QNetwork(c, len(self.action_names), height=tc.preprocess.height, width=tc.preprocess.width,
                       dueling=tc.dueling)  # fmt: skip
        net.load_state_dict(state["model"])
        self.last_checkpoint = ckpt
        self.policy_id = f"{tc.algo.value}-online@{run_dir}"
        self.actor = BatchedActor(
            net, tc.preprocess, tc.frame_stack, device=self.device, version=self.learner.updates,
            schedule=config.epsilon, env_steps=self.env_steps, metadata=self._file_metadata,
            policy_id=self.policy_id, window_s=config.batch_window_ms / 1000.0,
        )  # fmt: skip
        self.recorder: Any = None
        self.returns: collections.deque[float] = collections.deque(maxlen=10)
        self.session_returns: list[float] = []
        self._lock = threading.Lock()
        self.metrics: MetricsLog | None = None
        self.learner_thread: _LearnerThread | None = None

    # -- shared counters ---------------------------------------------------------------
    def env_steps(self) -> int:
        """Online env steps of the run: earlier sessions' files plus this session's steps."""
        session = self.recorder.stats.steps if self.recorder is not None else 0
        return self.base_steps + session

    def _file_metadata(self) -> dict[str, str]:
        return {
            RUN_ID_KEY: self.meta.run_id,
            "run": str(self.run_dir),
            "checkpoint": str(self.last_checkpoint),
            "algo": self.train_config.algo.value,
        }

    def save_checkpoint(self) -> Path:
        """Called from the learner thread (periodic) or the main thread (final), never both at once."""
        with self._lock:
            state = _checkpoint_state(self.learner, self.train_config, self.info, self.rng)
            state["online"] = {
                "run_id": self.meta.run_id,
                "start_update": self.meta.start_update,
                "env_steps": self.env_steps(),
                "episodes": self.online.n_episodes,
                "online_fraction": self.config.online_fraction,
                "cql_alpha": self.config.cql_alpha,
            }
            path = save_checkpoint(checkpoint_path(self.run_dir, self.learner.updates), state)
            self.last_checkpoint = path
            return path

    def log_metrics(self, update: int, values: dict[str, float]) -> None:
        values = dict(values)
        values["env_steps"] = float(self.env_steps())
        values["online_transitions"] = float(len(self.online))
        values["epsilon"] = self.actor.epsilon_now()
        if self.returns:
            values["episode_return_mean10"] = statistics.fmean(self.returns)
        if self.metrics is not None:
            self.metrics.write(update, values)

    def on_episode(self, summary: Any) -> None:
        """The recorder saved an episode file: hand it to the learner, which appends it to the online store."""
        print(
            f"episode {summary.session_id}/{summary.episode}: return {summary.episode_return:.1f}, "
            f"{summary.steps} steps, {summary.end_reason.label}"
            + (f", {summary.path.name}" if summary.path else ""),
            file=sys.stderr, flush=True,
        )  # fmt: skip
        if summary.policy_id != self.policy_id:
            # Human-mode clients are refused at the handshake (ServerConfig.policy_only); this guards
            # any other policy: its episodes are kept as recordings but stay out of training.
            log.warning(
                "a client played in %s mode: its episode is saved but not trained on; "
                "switch the BizHawk tool to policy mode", summary.policy_id,
            )  # fmt: skip
            return
        self.returns.append(float(summary.episode_return))
        self.session_returns.append(float(summary.episode_return))
        if summary.path is not None and self.learner_thread is not None:
            self.learner_thread.files.put(summary.path)

    def policy_factory(self, profile: GameProfile, seed: int) -> ActorHandle:
        """The recorder calls this once per connection; a client of another game or action set is refused."""
        # A ProtocolError reaches the client as ERROR 4006 and a close (recorder.server).
        self.spec.require_match(
            GameSpec.of_profile(profile), mine="this run plays", theirs="the emulator sent",
            error=lambda message: ProtocolError(message, ErrorCode.BAD_CONFIG), fix=f"load {self.game} in the emulator",
        )  # fmt: skip
        return self.actor.handle(seed)


async def _serve(session: _Session) -> tuple[bool, float]:
    """Run the recorder, the clients and the learner until a budget is spent or a signal arrives."""
    from recorder.recording import RecordConfig, reap_client, start_retro_client, start_server
    from recorder.server import Recorder, ServerConfig

    cfg = session.config
    server_config = ServerConfig(
        out=session.out, host=cfg.host, port=cfg.port, token=cfg.token, game=session.game, mode=p.Mode.POLICY,
        frame_skip=session.frame_skip, max_steps=cfg.max_steps, episodes=None,
        seed=cfg.seed + session.learner.updates, step_timeout=10.0, policy_only=True,
    )  # fmt: skip
    recorder = Recorder(server_config, session.policy_factory, session.on_episode)
    session.recorder = recorder
    loop = asyncio.get_running_loop()
    interrupted = False

    def on_signal(signame: str) -> None:
        nonlocal interrupted
        if not interrupted:
            print(f"{signame}: saving a checkpoint and the open episodes (as truncated)", file=sys.stderr, flush=True)
        interrupted = True
        recorder.shutdown()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    session.actor.start()
    server_task, url = await start_server(recorder)

    thread = _LearnerThread(
        learner=session.learner, feeder=session.feeder, online=session.online, actor=session.actor, config=cfg,
        start_update=session.meta.start_update, env_steps=session.env_steps, save=session.save_checkpoint,
        log_metrics=session.log_metrics,
    )  # fmt: skip
    session.learner_thread = thread
    thread.start()
    record_config = RecordConfig(out=None, game=session.game, emulator="retro", token=cfg.token)
    clients: list[tuple[subprocess.Popen[bytes], float]] = []
    if cfg.emulator == "retro":
        clients = [(start_retro_client(record_config, url, i), time.monotonic()) for i in range(cfg.clients)]
    else:
        print(f"waiting for the BizHawk tool to connect in policy mode to {url} (Ctrl-C to stop)",
              file=sys.stderr, flush=True)  # fmt: skip
    started = time.monotonic()
    quick_failures = 0
    last_print = started
    try:
        while not server_task.done():
            await asyncio.sleep(0.1)
            if thread.budget_reached.is_set() or session.env_steps() >= cfg.steps:
                recorder.shutdown()
            stopping = recorder.done.is_set()
            for i, (proc, t0) in enumerate(clients):
                if proc.poll() is None or stopping:
                    continue
                # The recorder has already saved its open episode as truncated (a disconnect);
                # serve a fresh client so the run goes on.
                quick = time.monotonic() - t0 < _QUICK_FAILURE_S and proc.returncode != 0
                quick_failures = quick_failures + 1 if quick else 0
                if quick_failures >= _MAX_QUICK_FAILURES:
                    recorder.shutdown()
                    raise SonicRLError(
                        f"embedded client {i} exited with status {proc.returncode} {quick_failures} times in a row "
                        "right after starting; see its messages above"
                    )
                print(f"embedded client {i} exited (status {proc.returncode}); starting another",
                      file=sys.stderr, flush=True)  # fmt: skip
                clients[i] = (start_retro_client(record_config, url, i), time.monotonic())
            now = time.monotonic()
            if now - last_print >= cfg.progress_every_s:
                last_print = now
                _progress(session, thread, now - started)
        await server_task
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        thread.stop_event.set()
        await loop.run_in_executor(None, thread.join)
        if not server_task.done():
            recorder.shutdown()
            await asyncio.gather(server_task, return_exceptions=True)
        for proc, _ in clients:
            await reap_client(proc)
        await session.actor.stop()
    if thread.error is not None:
        raise thread.error
    return interrupted, time.monotonic() - started


def _progress(session: _Session, thread: _LearnerThread, elapsed: float) -> None:
    rec = session.recorder
    steps = rec.stats.steps
    ret = f"{statistics.fmean(session.returns):.1f}" if session.returns else "-"
    print(
        f"online: {session.env_steps()} steps ({steps / elapsed:.1f}/s), "
        f"{thread.online_updates()} updates ({thread.session_updates / elapsed:.1f}/s), "
        f"{len(session.session_returns)} episodes, mean return {ret} (last {len(session.returns)}), "
        f"epsilon {session.actor.epsilon_now():.3f}, {rec.stats.connections} client(s), "
        f"batch {session.actor.stats()['mean_batch']:.2f}",
        file=sys.stderr, flush=True,
    )  # fmt: skip


def run_online(config: OnlineConfig) -> OnlineResult:
    """One online session; returns what it did. Raises UsageError subclasses for a user's mistakes."""
    if logging.getLogger().handlers == []:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    session = _Session(config)
    run_dir = session.run_dir
    if session.env_steps() >= config.steps:
        print(
            f"nothing to do: the run already has {session.env_steps()} online steps (--steps {config.steps}); "
            "raise --steps to go on",
            file=sys.stderr, flush=True,
        )  # fmt: skip
        return _result(session, None, 0, 0.0, interrupted=False)
    online_updates = session.learner.updates - session.meta.start_update
    if config.updates and online_updates >= config.updates:
        print(f"nothing to do: the run already has {online_updates} online updates (--updates {config.updates}); "
              "raise --updates to go on", file=sys.stderr, flush=True)  # fmt: skip
        return _result(session, None, 0, 0.0, interrupted=False)
    session.out.mkdir(parents=True, exist_ok=True)
    session.history.append({
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "resumed_from": str(session.resumed_from),
        "config": config.to_dict(),
    })
    session.meta.save(run_dir, session.history)
    start_updates = session.learner.updates
    print(
        f"resuming {run_dir} from {session.resumed_from.name} (update {start_updates}); "
        f"{session.base_steps} online steps so far; new episodes go to {session.out}",
        file=sys.stderr, flush=True,
    )  # fmt: skip
    with MetricsLog(run_dir, resume_from=start_updates, tensorboard=config.tensorboard) as metrics:
        session.metrics = metrics
        interrupted, seconds = asyncio.run(_serve(session))
    session.metrics = None
    # The learner thread has stopped: the final checkpoint holds every update of the session.
    if session.learner.updates != start_updates:
        session.save_checkpoint()
    session_steps = session.recorder.stats.steps
    result = _result(session, session.last_checkpoint, session_steps, seconds, interrupted=interrupted,
                     updates=session.learner.updates - start_updates)  # fmt: skip
    return result


def _result(
    session: _Session, checkpoint: Path | None, steps: int, seconds: float, *, interrupted: bool, updates: int = 0
) -> OnlineResult:
    return OnlineResult(
        run_dir=session.run_dir,
        out=session.out,
        checkpoint=checkpoint or session.resumed_from,
        total_env_steps=session.env_steps(),
        total_updates=session.learner.updates - session.meta.start_update,
        env_steps=steps,
        updates=updates,
        episodes=len(session.session_returns),
        seconds=seconds,
        interrupted=interrupted,
        returns=tuple(session.session_returns),
        mean_batch=float(session.actor.stats()["mean_batch"]),
    )
