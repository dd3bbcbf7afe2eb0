"""The frame cache: a dataset's observations preprocessed once, on disk, memory-mapped.

Each observation is preprocessed **once** (gray 84x84 by default) and written to
``frames.npy`` in a cache folder named by a fingerprint of the dataset files and
the preprocessing. It is opened memory-mapped, so a dataset larger than RAM
trains without being loaded (batch_rl #10, d3rlpy #140), and frames are stored
once instead of once per stack slot (cleanrl #453: 26 GiB). The per-step arrays
sit beside it in ``steps.npz``. Episodes are read by ``trainer.episode_arrays``,
the online store's reader too.
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
from trainer.config import PreprocessConfig
from trainer.episode_arrays import EpisodeHeader, read_episode, read_header
from trainer.game_spec import GameSpec
from trainer.preprocessing import output_shape
from trainer.transition_index import StepArrays

__all__ = [
    "CACHE_FORMAT_VERSION",
    "DatasetInfo",
    "FrameCache",
    "dataset_fingerprint",
    "default_cache_dir",
    "file_digest",
]

#: Bumped whenever the cache layout or the preprocessing code changes its output.
CACHE_FORMAT_VERSION = 3  # 2: steps.npz holds life_lost; 3: composed `lives` variables counted too
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

    @property
    def spec(self) -> GameSpec:
        return GameSpec(self.game, self.action_names, self.button_names, self.frame_skip)

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
            self.steps = StepArrays(*(z[name] for name in StepArrays.NAMES))

    @classmethod
    def open(
        cls,
        files: Sequence[Path],
        preprocess: PreprocessConfig,
        cache_dir: Path | None = None,
        *,
        fingerprint: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> FrameCache:
        """Open the cache for these files and preprocessing, building it on first use.

        While building, ``progress(done, total)`` is called before the first file and after each.
        """
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


def _read_headers(files: Sequence[Path]) -> list[EpisodeHeader]:
    """Headers of every file, which must all be of one game, action set, button layout and frame skip."""
    headers = [read_header(path) for path in files]
    first = headers[0]
    for h in headers[1:]:
        first.spec.require_match(
            h.spec, mine=f"{first.path} holds", theirs=f"{h.path} holds", error=DatasetError,
            fix="train on one game and action set at a time",
        )  # fmt: skip
    return headers


def _build_cache(
    root: Path,
    files: Sequence[Path],
    preprocess: PreprocessConfig,
    fingerprint: str,
    progress: Callable[[int, int], None] | None,
) -> None:
    headers = _read_headers(files)
    if bad := next((h.path for h in headers if h.n_steps < 1), None):
        raise DatasetError(f"{bad}: episode has no steps; leave it out")
    n_obs = sum(h.n_steps + 1 for h in headers)
    frames = np.lib.format.open_memmap(
        root / "frames.npy", mode="w+", dtype=np.uint8, shape=(n_obs, *output_shape(preprocess))
    )
    parts: list[StepArrays] = []
    mapped = human = 0
    offset = 0
    if progress is not None:
        progress(0, len(headers))
    for i, h in enumerate(headers):
        episode = read_episode(h, preprocess, frames_out=frames[offset : offset + h.n_steps + 1])
        parts.append(episode.steps)
        mapped += episode.mapped_steps
        human += episode.human_steps
        offset += h.n_steps + 1
        if progress is not None:
            progress(i + 1, len(headers))
    frames.flush()
    del frames
    steps = StepArrays.concat(parts)
    np.savez(root / "steps.npz", **steps.to_arrays())
    spec = headers[0].spec
    info = DatasetInfo(
        fingerprint=fingerprint,
        game=spec.game,
        action_names=spec.action_names,
        button_names=spec.button_names or (),
        frame_skip=int(spec.frame_skip or 0),
        profile_toml=headers[0].profile_toml,
        n_episodes=len(headers),
        n_transitions=steps.n_transitions,
        mapped_steps=mapped,
        human_steps=human,
    )
    meta = {
        "format_version": CACHE_FORMAT_VERSION,
        "dataset": info.to_dict(),
        "preprocess": preprocess.to_dict(),
        "files": [str(h.path) for h in headers],
    }
    # meta.json last: its presence marks the folder complete.
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
