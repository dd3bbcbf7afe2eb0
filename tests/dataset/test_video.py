"""Episode -> video: every observation is one decoded frame, GIFs are exact, the overlay stays in its box."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dataset.episode import Actor, EndReason, EpisodeReader, EpisodeWriter
from dataset.errors import UsageError
from dataset.video import Overlay, VideoFormat, VideoOptions, video_targets, write_video
from tests.dataset.conftest import make_meta

BUTTONS = ("B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT")
ACTIONS = ("noop", "left", "right", "fire")


def scene_episode(directory: Path, n_steps: int, *, shape: tuple[int, int] = (120, 200), colors: int = 6,
                  chunk_frames: int = 8) -> tuple[Path, np.ndarray]:  # fmt: skip
    """A console-like episode: a few colours, a square that moves, and two repeated frames."""
    rng = np.random.default_rng(1)
    h, w = shape
    palette = rng.integers(0, 256, (colors, 3), dtype=np.uint8)
    background = palette[rng.integers(0, colors - 1, (h // 4, w // 4))].repeat(4, 0).repeat(4, 1)
    background = np.pad(background, ((0, h - background.shape[0]), (0, w - background.shape[1]), (0, 0)))
    frames = np.repeat(background[None], n_steps + 1, axis=0)
    for i in range(n_steps + 1):
        y, x = (3 * i) % max(1, h - 8), (5 * i) % max(1, w - 8)
        frames[i, y : y + 8, x : x + 8] = palette[-1]
    frames[3] = frames[2]  # identical consecutive observations still make two video frames
    frames[4] = frames[2]
    writer = EpisodeWriter(
        directory, make_meta(button_names=BUTTONS, action_names=ACTIONS), frame_shape=(h, w, 3), ram_size=16,
        buttons_per_step=4, start_state=None, chunk_frames=chunk_frames,
    )  # fmt: skip
    ram = np.zeros(16, np.uint8)
    writer.begin(frames[0], ram, 0, 0.0)
    for i in range(n_steps):
        action = i % 5 - 1  # -1: a human step
        held = np.array([1 << 7, 1 << 7, (1 << 7) | 1, 0], np.uint32) if i % 2 else np.zeros(4, np.uint32)
        writer.step(frame=frames[i + 1], ram=ram, frame_counter=4 * (i + 1), timestamp=float(i + 1),
                    buttons=held, action=action, actor=Actor.HUMAN if action < 0 else Actor.POLICY,
                    policy_version=0, reward=float(i % 3))  # fmt: skip
    return writer.close(EndReason.LIFE_LOST), frames


def decode(path: Path) -> tuple[np.ndarray, Fraction]:
    """Every frame a decoder gets out of ``path``, and the stream's average rate."""
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        return frames, Fraction(rate)


@pytest.mark.parametrize("fmt", list(VideoFormat))
def test_decoded_frame_count_equals_observations(tmp_path: Path, fmt: VideoFormat) -> None:
    episode, frames = scene_episode(tmp_path, 45)  # 46 observations: 5 chunks of 8 and a partial one
    done: list[int] = []
    result = write_video(episode, tmp_path / f"out.{fmt}", VideoOptions(fmt), done.append)
    decoded, rate = decode(result.path)
    assert result.frames == len(decoded) == len(frames) == 46
    assert sum(done) == 46 and result.fps == Fraction(15)  # 60 frames/s / frame skip 4
    if fmt is VideoFormat.GIF:
        np.testing.assert_array_equal(decoded, frames)  # 6 colours: the GIF is lossless
        assert rate == Fraction(50, 3)  # whole 1/100 s delays: 6/100 s per frame
    else:
        assert rate == 15
        # H.264 in yuv420p is lossy (chroma is shared by 2x2 pixels), but each frame is its own source's.
        error = np.abs(decoded.astype(np.int16)[:, None] - frames[None].astype(np.int16)).mean(axis=(2, 3, 4))
        assert error.diagonal().max() < 12
        assert (error.argmin(axis=1) == np.arange(46))[5:].all()  # (observations 2-4 are one picture)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_overlay_changes_only_its_box(tmp_path: Path) -> None:
    episode, frames = scene_episode(tmp_path, 12)
    with EpisodeReader(episode) as ep:
        overlay = Overlay(ep)
    h, w = overlay.box(frames.shape[1:])
    assert 0 < h < frames.shape[1] and 0 < w < frames.shape[2]
    assert overlay.text(0).splitlines() == ["step 0/12", "reward -  return 0", "buttons -"]
    # Step 2 (observation 2): reward 1, return 0 + 1, RIGHT for 3 frames and B for one; action 0 = noop.
    assert overlay.text(2).splitlines() == ["step 2/12", "reward +1  return 1", "buttons B RIGHT [noop]"]
    assert overlay.text(1).splitlines()[2] == "buttons -"  # a human step (action -1): no action name
    plain = write_video(episode, tmp_path / "plain.gif", VideoOptions(VideoFormat.GIF))
    marked = write_video(episode, tmp_path / "marked.gif", VideoOptions(VideoFormat.GIF, overlay=True))
    a, _ = decode(plain.path)
    b, _ = decode(marked.path)
    changed = np.any(a != b, axis=-1)  # (frames, H, W)
    assert not changed[:, h:, :].any() and not changed[:, :, w:].any()
    assert changed[:, :h, :w].any(axis=(1, 2)).all()  # the box (darkened, with text) on every frame
    for i in range(len(frames)):
        np.testing.assert_array_equal(b[i], overlay.draw(frames[i], i))  # the GIF holds exactly the overlay
    # Text differs between frames (the step number at least), inside the box only.
    assert np.any(b[1, :h, :w] != b[2, :h, :w])


def test_mp4_pads_odd_sizes_and_takes_fps(tmp_path: Path) -> None:
    episode, frames = scene_episode(tmp_path, 9, shape=(33, 47))
    result = write_video(episode, tmp_path / "odd.mp4", VideoOptions(VideoFormat.MP4, fps=30))
    decoded, rate = decode(result.path)
    assert decoded.shape == (10, 34, 48, 3) and rate == 30 and result.seconds == pytest.approx(1 / 3)
    assert np.abs(decoded[:, :33, :47].astype(int) - frames).mean() < 12


def test_gif_with_many_colours_is_quantised_frame_for_frame(tmp_path: Path) -> None:
    ramp = np.arange(32 * 48 * 3, dtype=np.int64).reshape(32, 48, 3) % 251
    noisy = tmp_path / "noisy"
    writer = EpisodeWriter(noisy, make_meta(), frame_shape=(32, 48, 3), ram_size=4, buttons_per_step=1,
                           start_state=None, chunk_frames=4)  # fmt: skip
    writer.begin(ramp.astype(np.uint8), np.zeros(4, np.uint8), 0, 0.0)
    for i in range(6):
        writer.step(frame=((ramp + 7 * i) % 256).astype(np.uint8), ram=np.zeros(4, np.uint8), frame_counter=4 * i + 4,
                    timestamp=float(i), buttons=np.zeros(1, np.uint32), action=0, actor=Actor.POLICY,
                    policy_version=0, reward=0.0)  # fmt: skip
    path = writer.close(EndReason.STEP_LIMIT)
    result = write_video(path, tmp_path / "many.gif", VideoOptions(VideoFormat.GIF))
    decoded, _ = decode(result.path)
    with EpisodeReader(path) as ep:
        original = ep.frames()
    assert len(np.unique(original.reshape(-1, 3), axis=0)) > 256
    assert len(decoded) == 7 and np.abs(decoded.astype(int) - original).mean() < 8


def test_video_targets(tmp_path: Path) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "sub" / "b.h5"
    assert video_targets([a, b], None) == [(a, tmp_path / "a.mp4", VideoFormat.MP4),
                                           (b, tmp_path / "sub" / "b.mp4", VideoFormat.MP4)]  # fmt: skip
    assert video_targets([a, b], tmp_path / "videos", "gif")[1] == (b, tmp_path / "videos" / "b.gif", VideoFormat.GIF)
    assert video_targets([a], tmp_path / "clip.GIF") == [(a, tmp_path / "clip.GIF", VideoFormat.GIF)]
    with pytest.raises(UsageError, match="one video but 2 episodes"):
        video_targets([a, b], tmp_path / "clip.mp4")
    with pytest.raises(UsageError, match="contradicts"):
        video_targets([a], tmp_path / "clip.mp4", "gif")
    with pytest.raises(UsageError, match=r"name a \.mp4 or \.gif file"):
        video_targets([a], tmp_path / "clip.avi")
