"""``sonic-rec export``: the real command on episodes the real recorder made, and the action rule for human steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import minari
import numpy as np
import pytest

from dataset.episode import EndReason, EpisodeReader
from dataset.minari_export import export_minari
from recorder.export import action_resolver
from tests.trainer.conftest import write_episode

GAME = "Airstriker-Genesis-v0"
SONIC_REC = [sys.executable, "-c", "from recorder.cli import main; main()"]


def sonic_rec(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([*SONIC_REC, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short real Airstriker episodes from the embedded emulator."""
    out = tmp_path_factory.mktemp("recorded")
    done = sonic_rec("record", "--emulator", "retro", "--game", GAME, "--port", "0", "--out", str(out),
                     "--episodes", "2", "--max-steps", "40", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_export_video_command(recorded: Path, tmp_path: Path) -> None:
    files = sorted(recorded.glob("*.h5"))
    done = sonic_rec("export", "video", str(recorded), "--overlay", "--no-progress", "-o", str(tmp_path / "videos"))
    assert done.returncode == 0, done.stderr
    assert "wrote 2 video(s), 82 frames" in done.stderr
    for f in files:
        video = tmp_path / "videos" / f"{f.stem}.mp4"
        assert decoded_frames(video) == 41, video
    gif = tmp_path / "one.gif"
    done = sonic_rec("export", "video", str(files[0]), "-o", str(gif), "--no-progress")
    assert done.returncode == 0, done.stderr
    with av.open(str(gif)) as container, EpisodeReader(files[0]) as ep:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        np.testing.assert_array_equal(frames, ep.frames())  # a real episode's GIF is lossless
    bad = sonic_rec("export", "video", str(recorded), "-o", str(tmp_path / "x.gif"))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "pass a folder" in bad.stderr


def test_export_minari_command(recorded: Path, tmp_path: Path) -> None:
    root = tmp_path / "minari"
    done = sonic_rec("export", "minari", str(recorded), "sonic-rl/airstriker/scripted-v0", "--no-progress",
                     "--observations", "both", MINARI_DATASETS_PATH=str(root))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 episodes, 80 steps" in done.stderr
    again = sonic_rec("export", "minari", str(recorded), "sonic-rl/airstriker/scripted-v0",
                      MINARI_DATASETS_PATH=str(root))  # fmt: skip
    assert again.returncode == 2 and "already exists" in again.stderr and again.stderr.count("\n") == 1
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        dataset = minari.load_dataset("sonic-rl/airstriker/scripted-v0")
        episodes = list(dataset.iterate_episodes())
    for got, path in zip(episodes, sorted(recorded.glob("*.h5")), strict=True):
        with EpisodeReader(path) as ep:
            np.testing.assert_array_equal(got.observations["frame"], ep.frames())
            np.testing.assert_array_equal(got.observations["ram"], ep.ram())
            np.testing.assert_array_equal(got.actions, ep.actions())  # policy steps: the recorded actions
            np.testing.assert_array_equal(got.rewards, ep.rewards())
            np.testing.assert_array_equal(got.truncations, ep.truncated())
            np.testing.assert_array_equal(got.terminations, ep.terminated())
            np.testing.assert_array_equal(got.infos["frame_counter"], ep.frame_counters())


def test_human_steps_get_the_action_set_rule(tmp_path: Path) -> None:
    right, b, a, left, up = 1 << 7, 1 << 0, 1 << 1, 1 << 6, 1 << 4  # Airstriker's button bits
    buttons = np.array([
        [right] * 4,                       # exact: right (3)
        [right | b] * 3 + [0],             # held longest: right+B, exact right_fire (5)
        [a] * 4,                           # A is in no action: nearest is noop (0), mapped
        [left | up] * 4,                   # UP is in no action: nearest is left (2), mapped
        [b] * 4,                           # a policy step: its recorded action stays
    ], dtype=np.uint32)  # fmt: skip
    path = write_episode(tmp_path / "data", rewards=[0, 1, 0, 1, 0], end=EndReason.GAME_OVER,
                         actions=[-1, -1, -1, -1, 1], buttons=buttons)  # fmt: skip
    result = export_minari([path], "human-v0", datasets_path=tmp_path / "minari", resolve_actions=action_resolver())
    assert (result.human_steps, result.mapped_steps) == (4, 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
        (episode,) = minari.load_dataset("human-v0").iterate_episodes()
    assert episode.actions.tolist() == [3, 5, 0, 2, 1]
    assert episode.infos["recorded_action"].tolist() == [-1, -1, -1, -1, -1, 1]
