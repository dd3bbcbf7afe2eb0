"""Re-simulate a recorded embedded-emulator episode and compare it bit for bit.

An episode file holds the emulator's exact start state and every button mask
of every frame, so an embedded emulator (stable-retro or ale-py, both
deterministic: ../shared/emulators.md, ``recorder.ale_client``) must reproduce
each stored frame and RAM snapshot. This is the check that a recording lost no
input (the complaint of gym-retro issue 122).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.episode import EpisodeMeta, EpisodeReader
from dataset.errors import DatasetError, ProfileError, ReplayMismatch
from recorder.emulator import Emulator, emulator_class, kind_of_recording

__all__ = ["ReplayReport", "can_replay", "open_emulator", "replay_episode", "replay_files"]


@dataclass(frozen=True)
class ReplayReport:
    path: Path
    steps: int
    frames: int


def can_replay(reader: EpisodeReader) -> bool:
    """Only embedded-emulator episodes (stable-retro, ale-py) with a stored start state can be re-simulated."""
    return kind_of_recording(reader.meta.emulator) is not None and reader.start_state() is not None


def open_emulator(meta: EpisodeMeta) -> Emulator:
    """The embedded emulator that recorded an episode, running its game (from the stored profile)."""
    from recorder.profile import parse_profile

    kind = kind_of_recording(meta.emulator)
    if kind is None:
        raise DatasetError(f"episodes of {meta.emulator!r} cannot be re-simulated here")
    try:
        game = parse_profile(meta.profile_toml, f"the {meta.game} profile in the episode").embedded_game(kind)
    except ProfileError:
        game = meta.game  # a file from before [retro] was read from its profile: the id was the game
    return emulator_class(kind)(game)  # type: ignore[call-arg]


def replay_episode(path: Path, emulator: Emulator | None = None) -> ReplayReport:
    """Replay ``path``; raise ReplayMismatch at the first frame or RAM byte that differs.

    ``emulator`` may be a ready emulator for the same game (stable-retro: one per process).
    """
    with EpisodeReader(path) as ep:
        if not can_replay(ep):
            raise DatasetError(
                f"{path.name}: not an embedded-emulator episode with a start state; it cannot be replayed"
            )
        emu = emulator if emulator is not None else open_emulator(ep.meta)
        start = ep.start_state()
        assert start is not None
        emu.set_state(start)
        buttons = ep.buttons()
        names = ep.meta.button_names
        if tuple(names) != emu.buttons:
            raise DatasetError(f"{path.name}: recorded buttons {names} differ from the emulator's {emu.buttons}")
        # Observation 0: a savestate holds RAM and CPU state but not the rendered screen, so only
        # its RAM can be compared; every later frame is rendered by the replay and compared whole.
        _compare(path, 0, None, ep.ram(0, 1)[0], emu)
        frames = 0
        for first, chunk in ep.iter_frame_chunks():
            ram_chunk = ep.ram(first, first + len(chunk))
            for j in range(len(chunk)):
                i = first + j
                if i == 0:
                    continue
                for mask in buttons[i - 1]:
                    emu.step(int(mask), 1)
                    frames += 1
                _compare(path, i, chunk[j], ram_chunk[j], emu)
        return ReplayReport(path, ep.n_steps, frames)


def _compare(path: Path, index: int, frame: np.ndarray | None, ram: np.ndarray, emu: Emulator) -> None:
    screen = emu.screen()
    if frame is not None and not np.array_equal(screen, frame):
        n = int((screen != frame).any(axis=-1).sum())
        raise ReplayMismatch(f"{path.name}: observation {index}: {n} pixels differ from the re-simulated screen")
    live = emu.ram()
    if not np.array_equal(live, ram):
        where = int(np.flatnonzero(live != ram)[0])
        raise ReplayMismatch(
            f"{path.name}: observation {index}: RAM differs first at 0x{where:04X} "
            f"(stored {ram[where]}, re-simulated {live[where]})"
        )


def replay_files(paths: list[Path]) -> list[tuple[Path, str | None, int]]:
    """Replay episodes of ONE game with one emulator: [(path, problem or None, frames replayed)].

    stable-retro allows one emulator per process, so callers run one call per game,
    each in its own process.
    """
    out: list[tuple[Path, str | None, int]] = []
    emu: Emulator | None = None
    for path in paths:
        try:
            if emu is None:
                with EpisodeReader(path) as ep:
                    emu = open_emulator(ep.meta)
            report = replay_episode(path, emu)
            out.append((path, None, report.frames))
        except (ReplayMismatch, DatasetError) as exc:
            out.append((path, str(exc), 0))
    return out
