"""Hand-built episode files for the trainer tests (written with the real EpisodeWriter)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataset.episode import Actor, EndReason, EpisodeMeta, EpisodeWriter
from recorder.profile import load_profile
from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.config import TrainConfig
from trainer.offline import train_offline

GAME = "Airstriker-Genesis-v0"
FRAME_SHAPE = (24, 32, 3)


def write_episode(
    directory: Path,
    *,
    rewards: Sequence[float],
    end: EndReason,
    actions: Sequence[int] | None = None,
    buttons: np.ndarray | None = None,
    first_value: int = 0,
    index: int = 0,
    game: str = GAME,
    action_names: tuple[str, ...] | None = None,
    frame_shape: tuple[int, int, int] = FRAME_SHAPE,
    lives: Sequence[int] | None = None,
) -> Path:
    """An episode whose observation j is a flat gray frame of value ``first_value + j``.

    RAM is 16 zero bytes, or with ``lives`` (one value per observation) the profile's whole
    RAM holding observation j's value in its ``lives`` variable.
    """
    profile = load_profile(GAME)
    n = len(rewards)
    actions = list(actions) if actions is not None else [i % len(profile.actions) for i in range(n)]
    if buttons is None:
        buttons = np.zeros((n, 4), dtype=np.uint16)
    meta = EpisodeMeta(
        game=game, rom_name="test", rom_hash="0" * 40, emulator="test", core="test",
        system="Genesis", client_name="tests", client_version="0", recorder_version="0",
        profile_toml=profile.text, frame_skip=4, mode="policy", policy_id="test",
        button_names=profile.buttons, action_names=action_names or profile.action_names,
        episode_index=index, session_id=f"s{first_value}",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    writer = EpisodeWriter(
        directory, meta, frame_shape=frame_shape, ram_size=16 if lives is None else profile.ram_size,
        buttons_per_step=buttons.shape[1], start_state=None, chunk_frames=4,
    )
    lives_var = profile.variable("lives")

    def ram_at(j: int) -> np.ndarray:
        if lives is None:
            return np.zeros(16, dtype=np.uint8)
        ram = np.zeros(profile.ram_size, dtype=np.uint8)
        cell = np.array([lives[j]], dtype=lives_var.dtype).view(np.uint8)
        ram[lives_var.address : lives_var.address + cell.size] = cell
        return ram

    def frame(j: int) -> np.ndarray:
        return np.full(frame_shape, (first_value + j) % 256, dtype=np.uint8)

    writer.begin(frame(0), ram_at(0), 0, 0.0)
    for i in range(n):
        writer.step(
            frame=frame(i + 1), ram=ram_at(i + 1), frame_counter=4 * (i + 1), timestamp=float(i + 1),
            buttons=buttons[i], action=actions[i],
            actor=Actor.HUMAN if actions[i] < 0 else Actor.POLICY, policy_version=0,
            reward=float(rewards[i]),
        )
    return writer.close(end)


@pytest.fixture
def two_episode_files(tmp_path: Path) -> list[Path]:
    data = tmp_path / "data"
    a = write_episode(data, rewards=[1, 2, 4], end=EndReason.LIFE_LOST, first_value=10, index=0)
    b = write_episode(data, rewards=[8, 16], end=EndReason.STEP_LIMIT, first_value=100, index=1)
    return [a, b]


def straight_and_resumed(
    config: TrainConfig, tmp_path: Path, stop_at: int = 3
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``config`` in one call and in two (stopped at ``stop_at`` updates, then ``--resume``).

    Returns the final checkpoints of both (uninterrupted, resumed).
    """
    train_offline(config, tmp_path / "straight", progress=False, tensorboard=False)
    train_offline(dataclasses.replace(config, updates=stop_at), tmp_path / "split", progress=False,
                  tensorboard=False)  # fmt: skip
    # Updates is the one learning-neutral flag a resume may raise.
    result = train_offline(config, tmp_path / "split", resume=True, explicit=["updates"], progress=False,
                           tensorboard=False)  # fmt: skip
    assert result.updates == config.updates
    return tuple(load_checkpoint(latest_checkpoint(tmp_path / run)) for run in ("straight", "split"))  # type: ignore[return-value,arg-type]
