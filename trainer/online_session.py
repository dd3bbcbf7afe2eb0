"""One ``sonic-train online`` session: the run folder's online record and everything the parts share.

``OnlineSession`` loads the run (its config, latest checkpoint and stored profile,
``trainer.run_profile``), builds the offline store, the online
store (re-read from the run's earlier online episode files), the mixed sampler,
the learner, the batched actor and the learner thread, and holds the callbacks
that join them: the recorder's policy factory and episode callback, the learner's
checkpoint and metrics callbacks.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import statistics
import threading
import uuid
from pathlib import Path
from typing import Any

import torch

from dataset.atomic import atomic_write_text, check_writable_folder
from dataset.errors import ConfigError, DatasetError, ErrorCode, ProtocolError
from recorder.profile import GameProfile
from recorder.profile_library import ProfileLibrary
from recorder.progress import echo
from recorder.server import EpisodeSummary, Recorder
from trainer.actor import ActorHandle, BatchedActor
from trainer.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    restore_training_state,
    save_run_checkpoint,
    training_state,
)
from trainer.config import OnlineConfig, TrainConfig
from trainer.frame_cache import DatasetInfo
from trainer.game_spec import GameSpec
from trainer.learner import DeviceFeeder, Learner, resolve_device, seed_everything
from trainer.learner_thread import LearnerThread
from trainer.metrics import MetricsLog
from trainer.network import QNetwork
from trainer.offline import open_store
from trainer.online_store import MixedSampler, OnlineStore
from trainer.replay import ReplayStore
from trainer.run_profile import load_run_profile, save_run_profile

__all__ = [
    "ONLINE_META",
    "RUN_ID_KEY",
    "OnlineMeta",
    "OnlineSession",
    "load_online_meta",
    "online_episode_files",
    "run_files",
]

log = logging.getLogger("sonic_rl.online")

#: The run folder's record of its online phase (run id, where the online episodes go).
ONLINE_META = "online.json"
#: Extra attribute that ties an episode file to the run that played it.
RUN_ID_KEY = "online_run"


@dataclasses.dataclass(frozen=True)
class OnlineMeta:
    """``RUN/online.json``: the run's online id, the update count its online phase began at, its episode folder."""

    run_id: str
    start_update: int
    out: str

    def save(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        body = {**dataclasses.asdict(self), "sessions": history}
        atomic_write_text(run_dir / ONLINE_META, json.dumps(body, indent=2) + "\n")

    def folder(self, run_dir: Path) -> Path:
        """Where the online episodes go (``out`` is stored relative to the run unless absolute)."""
        return Path(self.out) if Path(self.out).is_absolute() else run_dir / self.out


def load_online_meta(run_dir: Path, updates: int, out: str) -> tuple[OnlineMeta, list[dict[str, Any]]]:
    path = run_dir / ONLINE_META
    if path.exists():
        try:
            d = json.loads(path.read_text())
            meta = OnlineMeta(str(d["run_id"]), int(d["start_update"]), str(d["out"]))
            history = list(d.get("sessions", []))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} is damaged ({exc}); restore it or move it away to start the online phase anew"
            ) from exc
        if out:
            meta = dataclasses.replace(meta, out=str(Path(out).resolve()))
        return meta, history
    # The default folder is stored relative to the run, so a moved run folder keeps its episodes.
    return OnlineMeta(uuid.uuid4().hex[:12], updates, str(Path(out).resolve()) if out else "online"), []


def online_episode_files(run_dir: Path) -> list[Path]:
    """The episode files the run's online phase played (none if it has not played), for ``sonic-train plot``."""
    if not (run_dir / ONLINE_META).exists():
        return []
    meta, _ = load_online_meta(run_dir, 0, "")
    return run_files(meta.folder(run_dir), meta.run_id)


def run_files(folder: Path, run_id: str) -> list[Path]:
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


class OnlineSession:
    """One ``sonic-train online`` invocation: everything the loop, the learner and the actor share."""

    def __init__(self, config: OnlineConfig, new_run: TrainConfig | None = None) -> None:
        """``new_run``: start the run in ``config.run_dir`` with this config and no offline data (``--run``)."""
        run_dir = Path(config.run_dir)
        self.run_dir = run_dir
        state: dict[str, Any] | None = None
        ckpt: Path | None = None
        if new_run is not None:
            library = ProfileLibrary.default(config.profiles or None)
            self.train_config, info = self._new_run(run_dir, new_run, config.game, library)
        else:
            if not (run_dir / "config.json").exists():
                raise ConfigError(
                    f"{run_dir} is not a run folder (no config.json); train one with sonic-train offline --run "
                    f"{run_dir}, or start one online with sonic-train online --run {run_dir} --game GAME"
                )
            self.train_config = TrainConfig.load(run_dir / "config.json")
            ckpt = latest_checkpoint(run_dir)
            if ckpt is None and self.train_config.files:
                raise ConfigError(f"{run_dir} has no checkpoints; train it with sonic-train offline first")
            if ckpt is not None:
                state = load_checkpoint(ckpt, map_location=resolve_device(config.device))
            # A run with offline files describes them from its store (below); one without, from the
            # dataset.json it was started with (also when it stopped before its first checkpoint).
            info = None if self.train_config.files else _read_dataset_json(run_dir)
        self.from_scratch = not self.train_config.files
        config = dataclasses.replace(config, epsilon=config.schedule(from_scratch=self.from_scratch))
        self.config = config
        self.device = resolve_device(config.device)
        self.resumed_from = ckpt
        dataset = state["dataset"] if state is not None else {
            "game": info.game, "action_names": list(info.action_names), "frame_skip": info.frame_skip,  # type: ignore[union-attr]
        }  # fmt: skip
        if config.game and config.game != dataset["game"] and new_run is None:
            raise ConfigError(f"--game {config.game}: {run_dir} plays {dataset['game']}; leave --game out")
        self.spec = GameSpec.of_checkpoint(dataset)
        self.game, self.action_names = self.spec.game, self.spec.action_names
        self.frame_skip = int(dataset["frame_skip"])
        # The run's own profile judges the new episodes as its training data was judged; the
        # library (it comes first there) finds the game of a client that names another.
        self.profile, self.profiles = load_run_profile(
            run_dir, dataset, ProfileLibrary.default(config.profiles or None)
        )
        self.meta, self.history = load_online_meta(run_dir, int(state["updates"]) if state else 0, config.out)
        self.out = self.meta.folder(run_dir)
        # As `sonic-rec record` does: a read-only or full folder is one line now, before the offline
        # store loads, not an episode lost and a stopped run at the first save (issue 11 item 2).
        check_writable_folder(run_dir, "--resume" if new_run is None else "--run")  # checkpoints, online.json
        check_writable_folder(self.out, "--out")

        if self.device.type == "cpu":
            # Learner thread + actor thread + one emulator process per client share the cores;
            # torch's own pool on top of them only adds contention.
            torch.set_num_threads(max(1, ((os.cpu_count() or 2) - config.clients) // 2))
        tc = self.train_config
        self.offline: ReplayStore | None = None
        if not self.from_scratch:
            assert state is not None
            self.offline = open_store(tc, fingerprint=str(state["dataset_fingerprint"]), progress=True)
            assert self.offline.info is not None
            info = self.offline.info
        assert info is not None
        self.info = info
        self.online = OnlineStore(
            tc.preprocess, game=self.game, action_names=self.action_names, gamma=tc.gamma, n_step=tc.n_step,
            frame_stack=tc.frame_stack, clip_rewards=tc.clip_rewards, life_loss_terminal=tc.life_loss_terminal,
        )  # fmt: skip
        earlier = run_files(self.out, self.meta.run_id)
        if earlier:
            echo(f"reading {len(earlier)} online episode(s) of this run from {self.out}")
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
        self.learner = Learner(learn_config, self.online.state_shape, len(self.action_names), self.device)
        if state is not None:
            restore_training_state(self.learner, self.rng, state)
        self.sampler = MixedSampler(self.offline, self.online, config.online_fraction)
        self.feeder = DeviceFeeder(self.sampler, self.rng, tc.batch_size, self.device)

        net = QNetwork.of_config(tc, len(self.action_names))
        net.load_state_dict(self.learner.online.state_dict())
        self.last_checkpoint = ckpt
        self.policy_id = f"{tc.algo.value}-online@{run_dir}"
        self.actor = BatchedActor(
            net, tc.preprocess, tc.frame_stack, device=self.device, version=self.learner.updates,
            schedule=config.schedule(from_scratch=self.from_scratch), env_steps=self.env_steps,
            metadata=self._file_metadata, policy_id=self.policy_id, window_s=config.batch_window_ms / 1000.0,
        )  # fmt: skip
        self.recorder: Recorder | None = None
        self.returns: collections.deque[float] = collections.deque(maxlen=10)
        self.session_returns: list[float] = []
        self._lock = threading.Lock()
        self.metrics: MetricsLog | None = None
        self.learner_thread = LearnerThread(
            learner=self.learner, feeder=self.feeder, online=self.online, actor=self.actor, config=config,
            start_update=self.meta.start_update, env_steps=self.env_steps, save=self.save_checkpoint,
            log_metrics=self.log_metrics,
            min_online=max(config.learning_starts, tc.batch_size) if self.from_scratch else 0,
        )  # fmt: skip
        self.actor.gate = self.learner_thread.wait_for_learner

    @staticmethod
    def _new_run(
        run_dir: Path, config: TrainConfig, game: str, library: ProfileLibrary
    ) -> tuple[TrainConfig, DatasetInfo]:
        """Write a new run folder's config.json and dataset.json (a game, no files) for learning from scratch."""
        if (run_dir / "config.json").exists() or latest_checkpoint(run_dir) is not None:
            raise ConfigError(f"{run_dir} already holds a run; continue it with sonic-train online --resume {run_dir}")
        if not game:
            raise ConfigError("a new run (--run) needs --game, e.g. --game Airstriker-Genesis-v0")
        if config.files:
            raise ConfigError("a new online run starts without offline data; train offline first to use files")
        profile = library.get(game)  # an unknown game: ProfileError, one line
        info = DatasetInfo(
            fingerprint="", game=profile.id, action_names=tuple(profile.action_names),
            button_names=tuple(profile.buttons), frame_skip=profile.frame_skip, profile_toml=profile.text,
            n_episodes=0, n_transitions=0, mapped_steps=0, human_steps=0,
        )  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.json")
        save_run_profile(run_dir, profile.text)
        atomic_write_text(run_dir / "dataset.json", json.dumps({**info.to_dict(), "files": []}, indent=2) + "\n")
        return config, info

    # -- shared counters ---------------------------------------------------------------
    def env_steps(self) -> int:
        """Online env steps of the run: earlier sessions' files plus this session's steps."""
        session = self.recorder.stats.steps if self.recorder is not None else 0
        return self.base_steps + session

    def _file_metadata(self) -> dict[str, str]:
        return {
            RUN_ID_KEY: self.meta.run_id,
            "run": str(self.run_dir),
            "checkpoint": str(self.last_checkpoint or ""),
            "algo": self.train_config.algo.value,
        }

    def save_checkpoint(self) -> Path:
        """Called from the learner thread's training loop."""
        with self._lock:
            state = training_state(self.learner, self.train_config, self.info, self.rng)
            state["online"] = {
                "run_id": self.meta.run_id,
                "start_update": self.meta.start_update,
                "env_steps": self.env_steps(),
                "episodes": self.online.n_episodes,
                "online_fraction": self.config.online_fraction,
                "cql_alpha": self.config.cql_alpha,
            }
            path = save_run_checkpoint(self.run_dir, state, keep=self.config.keep_checkpoints)
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

    def on_episode(self, summary: EpisodeSummary) -> None:
        """The recorder saved an episode file: hand it to the learner, which appends it to the online store."""
        echo(f"episode {summary.session_id}/{summary.episode}: return {summary.episode_return:.1f}, "
             f"{summary.steps} steps, {summary.end_reason.label}" + (f", {summary.path.name}" if summary.path else ""))
        if summary.policy_id != self.policy_id:
            # Human-mode clients are refused at the handshake (ServerConfig.policy_only); this guards
            # any other policy: its episodes are kept as recordings but stay out of training.
            log.warning(
                "a client played in %s mode: its episode is saved but not trained on; "
                "switch the emulator client to policy mode", summary.policy_id,
            )  # fmt: skip
            return
        self.returns.append(float(summary.episode_return))
        self.session_returns.append(float(summary.episode_return))
        if summary.path is not None:
            self.learner_thread.files.put(summary.path)

    def policy_factory(self, profile: GameProfile, seed: int) -> ActorHandle:
        """The recorder calls this once per connection; a client of another game or action set is refused."""
        # A ProtocolError reaches the client as ERROR 4006 and a close (recorder.server).
        self.spec.require_match(
            GameSpec.of_profile(profile), mine="this run plays", theirs="the emulator sent",
            error=lambda message: ProtocolError(message, ErrorCode.BAD_CONFIG), fix=f"load {self.game} in the emulator",
        )  # fmt: skip
        return self.actor.handle(seed)


def _read_dataset_json(run_dir: Path) -> DatasetInfo:
    """The dataset description a new online run wrote (``OnlineSession._new_run``)."""
    path = run_dir / "dataset.json"
    try:
        d = json.loads(path.read_text())
        return DatasetInfo.from_dict({k: v for k, v in d.items() if k not in ("files", "mapped_share")})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read the run's dataset description ({exc})") from exc
