"""The replay store: recorded episodes as fixed, memory-mapped training data.

Three small parts, after Dopamine's replay buffer and its newer split into
accumulator / store / sampler:

* ``FrameCache`` - each observation preprocessed **once** (gray 84x84 by default)
  and written to ``frames.npy`` in a cache folder named by a fingerprint of the
  dataset files and the preprocessing. It is opened memory-mapped, so a dataset
  larger than RAM trains without being loaded (batch_rl #10, d3rlpy #140), and
  frames are stored once instead of once per stack slot (cleanrl #453: 26 GiB).
* ``TransitionIndex`` - pure numpy arrays, built from episode lengths and flags:
  for every transition the observation index it starts from, the first
  observation of its episode (stacks repeat that frame instead of crossing an
  episode start, as a fresh environment's frame stack does after ``reset``), and
  its n-step return, bootstrap observation and bootstrap discount. An n-step
  window stops at the episode's end; the discount is 0 when the end was
  ``terminated`` and gamma**k when it was ``truncated`` (a time limit is not a
  terminal state: Pardo et al. 2018, "Time Limits in Reinforcement Learning").
* ``ReplayStore.sample`` - uniform indices from a seeded ``numpy.random.Generator``
  and one fancy-indexing gather into a contiguous uint8 batch; no per-sample
  Python loop.

Layout of the episodes, concatenated in file order: episode e has N_e steps and
N_e + 1 observations; its observations occupy ``obs_start[e] : obs_start[e] + N_e + 1``
of ``frames.npy`` and step i goes from observation ``obs_start[e] + i`` to ``+ 1``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dataset.errors import DatasetError
from recorder.action_set import ActionSet
from recorder.profile import parse_profile
from trainer.config import PreprocessConfig
from trainer.preprocessing import output_shape, preprocess_frames

__all__ = [
    "CACHE_FORMAT_VERSION",
    "Batch",
    "DatasetInfo",
    "FrameCache",
    "ReplayStore",
    "TransitionIndex",
    "dataset_fingerprint",
    "default_cache_dir",
    "file_digest",
]

#: Bumped whenever the cache layout or the preprocessing code changes its output.
CACHE_FORMAT_VERSION = 1
_HASH_BLOCK = 1 << 22


def default_cache_dir() -> Path:
    """``$SONIC_RL_CACHE``, else ``$XDG_CACHE_HOME/sonic-rl/replay``, else ``~/.cache/...``."""
    if env := os.environ.get("SONIC_RL_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sonic-rl" / "replay"


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes: the dataset fingerprint follows content, not names or mtimes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def dataset_fingerprint(files: Sequence[Path]) -> str:
    """Fingerprint of an ordered list of episode files (stored in every checkpoint)."""
    h = hashlib.sha256(b"sonic-rl dataset v1\n")
    for path in files:
        h.update(file_digest(path).encode() + b"\n")
    return h.hexdigest()


def _cache_key(data_fingerprint: str, preprocess: PreprocessConfig) -> str:
    payload = json.dumps(
        {"v": CACHE_FORMAT_VERSION, "data": data_fingerprint, "pre": preprocess.to_dict()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- index


@dataclasses.dataclass(frozen=True, eq=False)
class TransitionIndex:
    """Per-transition index arrays (length T = total steps). Pure numpy, no I/O."""

    #: Observation index each transition starts from.
    obs: np.ndarray
    #: Observation index of the first frame of the transition's episode.
    episode_first_obs: np.ndarray
    #: Observation index the n-step target bootstraps from.
    next_obs: np.ndarray
    #: Sum of gamma**d * r_{t+d} over the (possibly shortened) n-step window.
    returns: np.ndarray
    #: gamma**k for a window of k steps; 0 when the window ended on ``terminated``.
    discounts: np.ndarray
    actions: np.ndarray

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @classmethod
    def build(
        cls,
        episode_steps: Sequence[int],
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        *,
        gamma: float,
        n_step: int,
    ) -> TransitionIndex:
        """Build the index from per-step arrays concatenated over episodes.

        Every episode ends at its last step whatever its flags say: a recording cut
        short without either flag (a crash, a disconnect) is treated as truncated,
        because nothing says its last observation was terminal.
        """
        lengths = np.asarray(episode_steps, dtype=np.int64)
        if np.any(lengths < 1):
            raise DatasetError("an episode has no steps; re-record it or leave it out")
        total = int(lengths.sum())
        for name, arr in (("actions", actions), ("rewards", rewards),
                          ("terminated", terminated), ("truncated", truncated)):
            if arr.shape != (total,):
                raise DatasetError(f"{name} has shape {arr.shape}; expected ({total},)")
        n_episodes = lengths.shape[0]
        step_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # first step of episode
        obs_start = step_start + np.arange(n_episodes)  # one extra observation per episode
        episode_of = np.repeat(np.arange(n_episodes), lengths)
        t = np.arange(total, dtype=np.int64)
        local = t - step_start[episode_of]
        obs = obs_start[episode_of] + local
        episode_end = (step_start + lengths)[episode_of]  # exclusive, in steps

        rewards = rewards.astype(np.float64)
        # A step ends its window if it ends the episode or is flagged either way.
        stop_here = terminated | truncated
        stop_here = stop_here.copy()
        stop_here[(step_start + lengths) - 1] = True

        returns = np.zeros(total, dtype=np.float64)
        k = np.zeros(total, dtype=np.int64)
        ended_terminal = np.zeros(total, dtype=bool)
        active = np.ones(total, dtype=bool)
        for d in range(n_step):
            j = t + d
            inside = active & (j < episode_end)
            jj = np.where(inside, j, 0)
            returns += np.where(inside, rewards[jj] * gamma**d, 0.0)
            k += inside
            ended_terminal |= inside & terminated[jj]
            active = inside & ~stop_here[jj]
        discounts = np.where(ended_terminal, 0.0, float(gamma) ** k)
        return cls(
            obs=obs,
            episode_first_obs=obs_start[episode_of],
            next_obs=obs + k,
            returns=returns.astype(np.float32),
            discounts=discounts.astype(np.float32),
            actions=actions.astype(np.int64),
        )

    def stack_indices(self, t: np.ndarray, frame_stack: int) -> np.ndarray:
        """(B, 2, frame_stack) observation indices of the state and the bootstrap state.

        Slots before the episode's first observation repeat that first observation.
        """
        offsets = np.arange(-(frame_stack - 1), 1, dtype=np.int64)
        first = self.episode_first_obs[t][:, None, None]
        ends = np.stack([self.obs[t], self.next_obs[t]], axis=1)[:, :, None]
        return np.maximum(ends + offsets, first)


# --------------------------------------------------------------------------- cache


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the cache knows about the dataset it was built from (``meta.json``)."""

    fingerprint: str
    game: str
    action_names: tuple[str, ...]
    button_names: tuple[str, ...]
    frame_skip: int
    profile_toml: str
    n_episodes: int
    n_transitions: int
    #: Human steps whose buttons were not exactly an action of the set.
    mapped_steps: int
    #: Human steps (recorded action -1), mapped or exact.
    human_steps: int

    @property
    def mapped_share(self) -> float:
        return self.mapped_steps / self.n_transitions if self.n_transitions else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["action_names"] = list(self.action_names)
        d["button_names"] = list(self.button_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetInfo:
        d = dict(d)
        d["action_names"] = tuple(d["action_names"])
        d["button_names"] = tuple(d["button_names"])
        return cls(**d)


def resolve_actions(
    actions: np.ndarray, buttons: np.ndarray, action_set: ActionSet
) -> tuple[np.ndarray, int, int]:
    """Fill human steps (action -1) with the action their buttons stand for (:meth:`ActionSet.resolve`)."""
    return action_set.resolve(actions, buttons)


class FrameCache:
    """Preprocessed frames plus per-step arrays in one folder keyed by fingerprint.

    The folder is built under a temporary name and renamed into place when
    complete (Minari's collector does the same), so an interrupted build is never
    mistaken for a cache.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        meta = json.loads((root / "meta.json").read_text())
        if meta.get("format_version") != CACHE_FORMAT_VERSION:
            raise DatasetError(f"{root}: replay cache of another version; delete the folder")
        self.info = DatasetInfo.from_dict(meta["dataset"])
        self.preprocess = PreprocessConfig.from_dict(meta["preprocess"])
        self.frames: np.ndarray = np.load(root / "frames.npy", mmap_mode="r")
        with np.load(root / "steps.npz", allow_pickle=False) as z:
            self.episode_steps = z["episode_steps"]
            self.actions = z["actions"]
            self.rewards = z["rewards"]
            self.terminated = z["terminated"]
            self.truncated = z["truncated"]

    @classmethod
    def open(
        cls,
        files: Sequence[Path],
        preprocess: PreprocessConfig,
        cache_dir: Path | None = None,
        *,
        fingerprint: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> FrameCache:
        """Open the cache for these files and preprocessing, building it on first use."""
        if not files:
            raise DatasetError("no episode files given; pass .h5 files recorded by sonic-rec")
        fingerprint = fingerprint or dataset_fingerprint(files)
        cache_dir = cache_dir or default_cache_dir()
        root = cache_dir / _cache_key(fingerprint, preprocess)
        if not (root / "meta.json").exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache_dir / f"{root.name}.partial-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                _build_cache(tmp, files, preprocess, fingerprint, progress)
                try:
                    tmp.rename(root)
                except OSError:
                    # Another process finished the same cache first: theirs is identical.
                    if not (root / "meta.json").exists():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return cls(root)


def _read_episode_headers(files: Sequence[Path]) -> list[dict[str, Any]]:
    from dataset.episode import EpisodeReader

    headers = []
    for path in files:
        try:
            with EpisodeReader(path) as ep:
                meta = ep.meta
                headers.append({
                    "path": path,
                    "game": meta.game,
                    "action_names": tuple(meta.action_names),
                    "button_names": tuple(meta.button_names),
                    "frame_skip": int(meta.frame_skip),
                    "profile_toml": meta.profile_toml,
                    "n_steps": int(ep.n_steps),
                    "frame_shape": tuple(ep.frame_shape),
                })
        except DatasetError:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: not an episode file ({exc}); pass files written by sonic-rec") from exc
    first = headers[0]
    for h in headers[1:]:
        for key, what in (("game", "games"), ("action_names", "action sets"),
                          ("button_names", "button layouts"), ("frame_skip", "frame skips")):
            if h[key] != first[key]:
                raise DatasetError(
                    f"{h['path']} and {first['path']} come from different {what} "
                    f"({h[key]!r} vs {first[key]!r}); train on one game and action set at a time"
                )
    return headers


def _build_cache(
    root: Path,
    files: Sequence[Path],
    preprocess: PreprocessConfig,
    fingerprint: str,
    progress: Callable[[str], None] | None,
) -> None:
    from dataset.episode import EpisodeReader

    headers = _read_episode_headers(files)
    steps = [h["n_steps"] for h in headers]
    if any(s < 1 for s in steps):
        bad = next(h["path"] for h in headers if h["n_steps"] < 1)
        raise DatasetError(f"{bad}: episode has no steps; leave it out")
    n_obs = sum(steps) + len(steps)
    frames = np.lib.format.open_memmap(
        root / "frames.npy", mode="w+", dtype=np.uint8, shape=(n_obs, *output_shape(preprocess))
    )
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in ("actions", "rewards", "terminated", "truncated")}
    mapped = human = 0
    action_set: ActionSet | None = None
    offset = 0
    for i, h in enumerate(headers):
        if progress is not None:
            progress(f"preprocessing {h['path']} ({i + 1}/{len(headers)})")
        with EpisodeReader(h["path"]) as ep:
            n = ep.n_steps
            for first, chunk in ep.iter_frame_chunks():
                frames[offset + first : offset + first + len(chunk)] = preprocess_frames(chunk, preprocess)
            actions = np.asarray(ep.actions())
            if (actions < 0).any():
                action_set = action_set or parse_profile(h["profile_toml"]).action_set(h["button_names"])
                actions, m, hu = resolve_actions(actions, ep.buttons(), action_set)
                mapped += m
                human += hu
            n_actions = len(h["action_names"])
            if actions.size and (actions.max() >= n_actions):
                raise DatasetError(
                    f"{h['path']}: action {int(actions.max())} outside the {n_actions}-action set"
                )
            arrays["actions"].append(actions.astype(np.int16))
            arrays["rewards"].append(np.asarray(ep.rewards(), dtype=np.float32))
            arrays["terminated"].append(np.asarray(ep.terminated(), dtype=bool))
            arrays["truncated"].append(np.asarray(ep.truncated(), dtype=bool))
        offset += n + 1
    frames.flush()
    del frames
    np.savez(
        root / "steps.npz",
        episode_steps=np.asarray(steps, dtype=np.int64),
        **{k: np.concatenate(v) for k, v in arrays.items()},
    )
    first = headers[0]
    info = DatasetInfo(
        fingerprint=fingerprint,
        game=first["game"],
        action_names=first["action_names"],
        button_names=first["button_names"],
        frame_skip=first["frame_skip"],
        profile_toml=first["profile_toml"],
        n_episodes=len(headers),
        n_transitions=sum(steps),
        mapped_steps=mapped,
        human_steps=human,
    )
    meta = {
        "format_version": CACHE_FORMAT_VERSION,
        "dataset": info.to_dict(),
        "preprocess": preprocess.to_dict(),
        "files": [str(h["path"]) for h in headers],
    }
    # meta.json last: its presence marks the folder complete.
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


# --------------------------------------------------------------------------- store


@dataclasses.dataclass(frozen=True, eq=False)
class Batch:
    """A sampled batch, contiguous host arrays ready for one copy to the device."""

    #: (B, 2, stack*C, h, w) uint8: [:, 0] the state, [:, 1] the bootstrap state.
    states: np.ndarray
    actions: np.ndarray  # (B,) int64
    returns: np.ndarray  # (B,) float32, n-step
    discounts: np.ndarray  # (B,) float32, gamma**k or 0 at a terminal

    def __len__(self) -> int:
        return int(self.actions.shape[0])


class ReplayStore:
    """Uniform sampling of stacked n-step transitions over a frame array.

    ``frames`` is any (M, C, h, w) uint8 array: the memory-mapped cache in
    training, a plain array in tests.
    """

    def __init__(
        self,
        frames: np.ndarray,
        index: TransitionIndex,
        *,
        frame_stack: int = 4,
        info: DatasetInfo | None = None,
    ) -> None:
        if len(index) == 0:
            raise DatasetError("the dataset has no transitions; record longer episodes")
        self.frames = frames
        self.index = index
        self.frame_stack = frame_stack
        self.info = info
        c, h, w = frames.shape[1:]
        self.state_shape = (frame_stack * c, h, w)

    @classmethod
    def from_cache(
        cls,
        cache: FrameCache,
        *,
        gamma: float,
        n_step: int,
        frame_stack: int,
        clip_rewards: bool,
    ) -> ReplayStore:
        rewards = np.clip(cache.rewards, -1.0, 1.0) if clip_rewards else cache.rewards
        index = TransitionIndex.build(
            cache.episode_steps,
            cache.actions,
            rewards,
            cache.terminated,
            cache.truncated,
            gamma=gamma,
            n_step=n_step,
        )
        return cls(cache.frames, index, frame_stack=frame_stack, info=cache.info)

    def __len__(self) -> int:
        return len(self.index)

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, len(self.index), size=batch_size, dtype=np.int64)

    def gather(self, t: np.ndarray, out: np.ndarray | None = None) -> Batch:
        """The batch of transitions ``t``: one gather for all 2*B*stack frames."""
        idx = self.index.stack_indices(t, self.frame_stack)  # (B, 2, S)
        order = np.argsort(idx, axis=None)  # sorted reads are kinder to a memmap's page cache
        flat = idx.reshape(-1)
        gathered = np.empty((flat.shape[0], *self.frames.shape[1:]), dtype=np.uint8)
        gathered[order] = self.frames[flat[order]]
        states = gathered.reshape(t.shape[0], 2, *self.state_shape)
        if out is not None:
            out[...] = states
            states = out
        return Batch(
            states=states,
            actions=self.index.actions[t],
            returns=self.index.returns[t],
            discounts=self.index.discounts[t],
        )

    def sample(self, batch_size: int, rng: np.random.Generator, out: np.ndarray | None = None) -> Batch:
        return self.gather(self.sample_indices(batch_size, rng), out=out)
