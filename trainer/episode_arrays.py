"""Episode file -> training arrays: the one rule by which the trainer reads a recorded episode.

The offline cache (``trainer.frame_cache``) and the online store
(``trainer.online_store``) both read episodes here:

* frames: every observation preprocessed once (``trainer.preprocessing``), N + 1 of them;
* actions: a policy's action as recorded; a human step (action ``-1``) gets the
  action its buttons stand for (``ActionSet.of_steps``: the mask held longest in
  the step, then the exact or nearest action), and the steps whose mask was not
  exactly an action's are counted; an action outside the set is refused;
* rewards, terminated, truncated as recorded (clipping belongs to the index:
  ``TransitionIndex.of_steps``);
* life_lost: the steps where the profile's ``lives`` variable fell, from the stored RAM
  (``--life-loss-terminal`` ends TD targets there).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dataset.episode import EpisodeReader
from dataset.errors import DatasetError
from recorder.profile import GameProfile, parse_profile
from trainer.config import PreprocessConfig
from trainer.game_spec import GameSpec
from trainer.preprocessing import output_shape, preprocess_frames
from trainer.transition_index import StepArrays

__all__ = ["EpisodeArrays", "EpisodeHeader", "read_episode", "read_header"]


@dataclasses.dataclass(frozen=True)
class EpisodeHeader:
    """What an episode file says about itself, read without touching its frames."""

    path: Path
    spec: GameSpec
    profile_toml: str
    n_steps: int


@dataclasses.dataclass(frozen=True, eq=False)
class EpisodeArrays:
    """One episode as training data."""

    header: EpisodeHeader
    #: (N + 1, C, h, w) uint8 preprocessed observations.
    frames: np.ndarray
    steps: StepArrays
    episode_return: float
    #: The episode ended in a terminal state (not cut short).
    terminal: bool
    #: Human steps (recorded action -1), and those of them whose buttons were not exactly an action.
    human_steps: int
    mapped_steps: int


def read_header(path: Path) -> EpisodeHeader:
    """The header of an episode file; a file that is not one is a one-line DatasetError."""
    path = Path(path)
    try:
        with EpisodeReader(path) as ep:
            return EpisodeHeader(path, GameSpec.of_episode(ep.meta), ep.meta.profile_toml, int(ep.n_steps))
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: not an episode file ({exc}); pass files written by sonic-rec") from exc


def read_episode(
    header: EpisodeHeader, preprocess: PreprocessConfig, *, frames_out: np.ndarray | None = None
) -> EpisodeArrays:
    """Read the episode ``header`` describes; frames go into ``frames_out`` ((N + 1, C, h, w)) when given."""
    path, n = header.path, header.n_steps
    if n < 1:
        raise DatasetError(f"{path}: episode has no steps; leave it out")
    frames = frames_out
    if frames is None:
        frames = np.empty((n + 1, *output_shape(preprocess)), dtype=np.uint8)
    with EpisodeReader(path) as ep:
        for first, chunk in ep.iter_frame_chunks():
            frames[first : first + len(chunk)] = preprocess_frames(chunk, preprocess)
        profile = parse_profile(header.profile_toml)
        actions, mapped, human = np.asarray(ep.actions()).astype(np.int64), 0, 0
        if (actions < 0).any():
            action_set = profile.action_set(header.spec.button_names or ())
            actions, mapped, human = action_set.resolve(actions, ep.buttons())
        n_actions = len(header.spec.action_names)
        if actions.size and actions.max() >= n_actions:
            raise DatasetError(f"{path}: action {int(actions.max())} outside the {n_actions}-action set")
        steps = StepArrays(
            episode_steps=np.array([n], dtype=np.int64),
            actions=actions.astype(np.int16),
            rewards=np.asarray(ep.rewards(), dtype=np.float32),
            terminated=np.asarray(ep.terminated(), dtype=bool),
            truncated=np.asarray(ep.truncated(), dtype=bool),
            life_lost=_life_lost(ep, profile, n),
        )
        return EpisodeArrays(header, frames, steps, float(ep.episode_return), bool(ep.end_reason.terminal),
                             human_steps=human, mapped_steps=mapped)  # fmt: skip


def _life_lost(ep: EpisodeReader, profile: GameProfile, n_steps: int) -> np.ndarray:
    """(N,) bool: step i took the profile's ``lives`` variable below its value before the step.

    Read from the stored RAM, chunk by chunk (only the variable's values are kept); ``lives`` may
    be composed (Demon Attack's is ``lives_displayed + 1 - over``). All False when the profile has
    no ``lives`` variable (Pong) or the file no RAM of its size.
    """
    if not profile.has_variable("lives") or ep.ram_size != profile.ram_size:
        return np.zeros(n_steps, dtype=bool)
    lives = np.concatenate([profile.read_rows(chunk, "lives") for _first, chunk in ep.iter_chunks("ram")])
    if lives.shape[0] != n_steps + 1:
        raise DatasetError(f"{ep.path}: {lives.shape[0]} RAM rows for {n_steps + 1} observations; re-record it")
    return lives[1:] < lives[:-1]
