"""The online replay store and the mixed sampler of ``sonic-train online``.

``OnlineStore`` grows while the run plays: every episode file the recorder
completes is read back by the offline cache's own reader (``trainer.episode_arrays``:
frames preprocessed once, human steps mapped to actions) and appended. The store is therefore
built from the *files*, never from a second in-memory copy of what was sent on
the wire: a crash loses at most the episodes in flight, and a restarted run
rebuilds the same store by reading the run's online folder again.

Readers never take a lock. Appends write into rows past the current end of a
preallocated frame array (doubling it when full) and then publish a new
immutable snapshot (a ``ReplayStore`` over the filled rows plus a rebuilt
``TransitionIndex``) with one reference assignment, so a sampler in another
thread always sees a complete snapshot.

``MixedSampler`` draws a fixed share of every batch from the online store and the
rest from the offline store: "symmetric sampling" (Ball et al. 2023, RLPD, 50/50
by default), the offline-to-online buffer of torchrl and d3rlpy (#279). Keeping
offline data in every batch is one of the two guards against the collapse at the
start of naive fine-tuning (d3rlpy #215); the other is the CQL term the run keeps.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dataset.errors import DatasetError
from trainer.config import PreprocessConfig
from trainer.episode_arrays import read_episode, read_header
from trainer.game_spec import GameSpec
from trainer.preprocessing import output_shape
from trainer.replay import Batch, ReplayStore
from trainer.transition_index import StepArrays, TransitionIndex

__all__ = ["MixedSampler", "OnlineEpisode", "OnlineStore"]

_INITIAL_CAPACITY = 4096  # observations; doubled as the store grows


@dataclasses.dataclass(frozen=True)
class OnlineEpisode:
    """One episode file as the online store took it in."""

    path: Path
    steps: int
    episode_return: float
    terminated: bool


class OnlineStore:
    """A growing store of online episodes, sampled like ``ReplayStore``.

    ``game`` and ``action_names`` are the run's (``spec``): a file of another game or
    action set is refused (``DatasetError``) instead of being mixed into training.
    """

    def __init__(
        self,
        preprocess: PreprocessConfig,
        *,
        game: str,
        action_names: Sequence[str],
        gamma: float,
        n_step: int,
        frame_stack: int,
        clip_rewards: bool,
        life_loss_terminal: bool = False,
    ) -> None:
        self.preprocess = preprocess
        self.spec = GameSpec(game, tuple(action_names))
        self.gamma = gamma
        self.n_step = n_step
        self.frame_stack = frame_stack
        self.clip_rewards = clip_rewards
        self.life_loss_terminal = life_loss_terminal
        c, h, w = output_shape(preprocess)
        self.state_shape = (frame_stack * c, h, w)
        self._frames = np.empty((_INITIAL_CAPACITY, c, h, w), dtype=np.uint8)
        self._n_obs = 0
        self._steps: list[StepArrays] = []
        self._write_lock = threading.Lock()  # appends only; readers use the published snapshot
        self._snapshot: ReplayStore | None = None
        self.episodes: list[OnlineEpisode] = []

    # ------------------------------------------------------------------ appends

    def add_file(self, path: Path) -> OnlineEpisode:
        """Read one complete episode file (``trainer.episode_arrays``) and append it; returns what was added."""
        header = read_header(Path(path))
        self.spec.require_match(
            header.spec, mine="this run plays", theirs=f"{path} holds", error=DatasetError,
            fix="move the file out of the online folder",
        )  # fmt: skip
        arrays = read_episode(header, self.preprocess)
        episode = OnlineEpisode(header.path, header.n_steps, arrays.episode_return, arrays.terminal)
        with self._write_lock:
            self._append(arrays.frames, arrays.steps)
            self.episodes.append(episode)
        return episode

    def _append(self, frames: np.ndarray, steps: StepArrays) -> None:
        need = self._n_obs + frames.shape[0]
        if need > self._frames.shape[0]:
            capacity = self._frames.shape[0]
            while capacity < need:
                capacity *= 2
            # A new array: published snapshots keep viewing the old one, which stays valid.
            grown = np.empty((capacity, *self._frames.shape[1:]), dtype=np.uint8)
            grown[: self._n_obs] = self._frames[: self._n_obs]
            self._frames = grown
        # Rows past the published end: no reader looks at them yet.
        self._frames[self._n_obs : need] = frames
        self._n_obs = need
        self._steps.append(steps)
        index = TransitionIndex.of_steps(StepArrays.concat(self._steps), gamma=self.gamma, n_step=self.n_step,
                                         clip_rewards=self.clip_rewards,
                                         life_loss_terminal=self.life_loss_terminal)  # fmt: skip
        self._snapshot = ReplayStore(self._frames[: self._n_obs], index, frame_stack=self.frame_stack)

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        snap = self._snapshot
        return 0 if snap is None else len(snap)

    @property
    def n_episodes(self) -> int:
        return len(self.episodes)

    def snapshot(self) -> ReplayStore | None:
        """The current store (immutable; ``None`` until the first episode)."""
        return self._snapshot

    def sample(self, batch_size: int, rng: np.random.Generator, out: np.ndarray | None = None) -> Batch:
        snap = self._snapshot
        if snap is None:
            raise DatasetError("the online store is empty; no online episode has finished yet")
        return snap.sample(batch_size, rng, out=out)


class MixedSampler:
    """``fraction`` of every batch from the online store, the rest from the offline one.

    Duck-types ``ReplayStore.sample`` and ``state_shape`` so the learner's
    ``DeviceFeeder`` (pinned buffers, CUDA side-stream copies) works unchanged.
    Until the online store holds a transition, batches are wholly offline.
    """

    def __init__(self, offline: ReplayStore | None, online: OnlineStore, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise DatasetError(f"--online-fraction {fraction} must lie in [0, 1]")
        if offline is not None and offline.state_shape != online.state_shape:
            raise DatasetError(
                f"online states {online.state_shape} differ from offline states {offline.state_shape}"
            )
        self.offline = offline
        self.online = online
        # A run without offline data (online from scratch) samples the online store only.
        self.fraction = fraction if offline is not None else 1.0
        self.state_shape = online.state_shape

    def split(self, batch_size: int) -> tuple[int, int]:
        """(offline, online) counts of a batch of ``batch_size``."""
        n_online = round(self.fraction * batch_size) if len(self.online) else 0
        return batch_size - n_online, n_online

    def sample(self, batch_size: int, rng: np.random.Generator, out: np.ndarray | None = None) -> Batch:
        n_off, n_on = self.split(batch_size)
        snap = self.online.snapshot()
        if n_on == 0 or snap is None:
            if self.offline is None:
                raise DatasetError("the online store is empty; no online episode has finished yet")
            return self.offline.sample(batch_size, rng, out=out)
        if out is None:
            out = np.empty((batch_size, 2, *self.state_shape), dtype=np.uint8)
        off = self.offline.sample(n_off, rng, out=out[:n_off]) if n_off and self.offline is not None else None
        on = snap.sample(n_on, rng, out=out[n_off:])
        return Batch.concat(out, [b for b in (off, on) if b is not None])
