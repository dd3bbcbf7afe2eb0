"""Fixtures for the episode-file tests: small synthetic episodes, fast on 2 cores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dataset.episode import Actor, EndReason, EpisodeMeta, EpisodeWriter

FRAME_SHAPE = (24, 32, 3)
RAM_SIZE = 256
BUTTONS_PER_STEP = 4
FRAME_SKIP = 4


def make_meta(**overrides: object) -> EpisodeMeta:
    fields: dict[str, object] = {
        "game": "Airstriker-Genesis-v0",
        "rom_name": "Airstriker (Genesis)",
        "rom_hash": "sha1:0123456789abcdef",
        "emulator": "stable-retro 1.0.1",
        "core": "genesis_plus_gx",
        "system": "Genesis",
        "client_name": "test-client",
        "client_version": "0.0.1",
        "recorder_version": "0.1.0",
        "profile_toml": 'id = "Airstriker-Genesis-v0"\n[actions]\nnoop = []\n',
        "frame_skip": FRAME_SKIP,
        "mode": "policy",
        "policy_id": "random",
        "button_names": ("B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT"),
        "action_names": ("noop", "left", "right", "fire"),
        "episode_index": 3,
        "session_id": "ab12cd",
        "created": "2026-01-02T03:04:05+00:00",
        "extra": (("checkpoint", "runs/x/ckpt-100.pt"), ("epsilon", "0.05")),
    }
    fields.update(overrides)
    return EpisodeMeta(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Episode:
    """What was fed to a writer, to compare with what a reader gives back."""

    path: Path
    frames: np.ndarray
    ram: np.ndarray
    counters: np.ndarray
    timestamps: np.ndarray
    buttons: np.ndarray
    actions: np.ndarray
    actors: np.ndarray
    policy_versions: np.ndarray
    rewards: np.ndarray
    start_state: bytes | None


def write_episode(
    directory: Path,
    n_steps: int,
    *,
    chunk_frames: int = 8,
    reason: EndReason = EndReason.GAME_OVER,
    start_state: bytes | None = b"\x01\x02state" * 100,
    seed: int = 0,
    meta: EpisodeMeta | None = None,
    gaps: tuple[tuple[int, int, int], ...] = (),
    counters: np.ndarray | None = None,
) -> Episode:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n_steps + 1, *FRAME_SHAPE), dtype=np.uint8)
    # Mostly-constant RAM with a few changing bytes, like a real game's.
    ram = np.zeros((n_steps + 1, RAM_SIZE), dtype=np.uint8)
    ram[:, :8] = rng.integers(0, 256, (n_steps + 1, 8), dtype=np.uint8)
    if counters is None:
        counters = np.arange(n_steps + 1, dtype=np.uint64) * FRAME_SKIP + 100
    timestamps = 1.7e9 + np.arange(n_steps + 1) / 60.0
    buttons = rng.integers(0, 256, (n_steps, BUTTONS_PER_STEP), dtype=np.uint16)
    actions = rng.integers(-1, 4, n_steps).astype(np.int16)
    actors = np.where(actions < 0, Actor.HUMAN, Actor.POLICY).astype(np.uint8)
    versions = np.arange(n_steps, dtype=np.int32) // 5
    rewards = rng.normal(size=n_steps).astype(np.float32)
    writer = EpisodeWriter(
        directory,
        meta or make_meta(),
        frame_shape=FRAME_SHAPE,
        ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP,
        start_state=start_state,
        chunk_frames=chunk_frames,
    )
    writer.begin(frames[0], ram[0], int(counters[0]), float(timestamps[0]))
    for i in range(n_steps):
        writer.step(
            frame=frames[i + 1],
            ram=ram[i + 1],
            frame_counter=int(counters[i + 1]),
            timestamp=float(timestamps[i + 1]),
            buttons=buttons[i],
            action=int(actions[i]),
            actor=Actor(int(actors[i])),
            policy_version=int(versions[i]),
            reward=float(rewards[i]),
        )
    for gap in gaps:
        writer.add_gap(*gap)
    path = writer.close(reason)
    return Episode(
        path, frames, ram, counters, timestamps, buttons, actions, actors, versions, rewards,
        start_state,
    )  # fmt: skip


@pytest.fixture
def episode_factory(tmp_path: Path) -> Callable[..., Episode]:
    def factory(n_steps: int, **kwargs: object) -> Episode:
        return write_episode(tmp_path, n_steps, **kwargs)  # type: ignore[arg-type]

    return factory
