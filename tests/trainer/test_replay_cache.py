"""The on-disk replay cache over real episode files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataset.episode import EndReason
from dataset.errors import DatasetError
from tests.trainer.conftest import write_episode
from trainer.config import PreprocessConfig
from trainer.frame_cache import FrameCache, dataset_fingerprint
from trainer.preprocessing import preprocess_frames
from trainer.replay import ReplayStore

PRE = PreprocessConfig(height=12, width=16)


def test_cache_holds_each_observation_once_in_episode_order(
    two_episode_files: list[Path], tmp_path: Path
) -> None:
    cache = FrameCache.open(two_episode_files, PRE, tmp_path / "cache")
    assert isinstance(cache.frames, np.memmap)
    assert cache.frames.shape == (4 + 3, 1, 12, 16)
    # Flat frames keep their value through gray + area resize.
    assert cache.frames[:, 0, 0, 0].tolist() == [10, 11, 12, 13, 100, 101, 102]
    assert cache.steps.episode_steps.tolist() == [3, 2]
    assert cache.steps.terminated.tolist() == [False, False, True, False, False]
    assert cache.steps.truncated.tolist() == [False, False, False, False, True]
    assert cache.info.game == "Airstriker-Genesis-v0" and cache.info.n_transitions == 5

    store = ReplayStore.from_cache(cache, gamma=0.5, n_step=3, frame_stack=4, clip_rewards=False)
    assert store.index.returns.tolist() == [3, 4, 4, 16, 16]
    assert store.index.discounts.tolist() == [0, 0, 0, 0.25, 0.5]
    batch = store.gather(np.array([3]))
    assert batch.states[0, :, :, 0, 0].tolist() == [[100, 100, 100, 100], [100, 100, 101, 102]]


def test_cache_is_reused_and_keyed_by_preprocessing(two_episode_files: list[Path], tmp_path: Path) -> None:
    a = FrameCache.open(two_episode_files, PRE, tmp_path / "cache")
    b = FrameCache.open(two_episode_files, PRE, tmp_path / "cache")
    c = FrameCache.open(two_episode_files, PreprocessConfig(height=8, width=8), tmp_path / "cache")
    assert a.root == b.root and a.root != c.root
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([a.root.name, c.root.name])


def test_fingerprint_follows_content(two_episode_files: list[Path], tmp_path: Path) -> None:
    copy = tmp_path / "renamed.h5"
    copy.write_bytes(two_episode_files[0].read_bytes())
    assert dataset_fingerprint([copy]) == dataset_fingerprint([two_episode_files[0]])
    assert dataset_fingerprint(two_episode_files) != dataset_fingerprint(two_episode_files[::-1])


def test_mixed_games_are_refused_in_one_line(tmp_path: Path) -> None:
    a = write_episode(tmp_path, rewards=[1], end=EndReason.LIFE_LOST)
    b = write_episode(tmp_path, rewards=[1], end=EndReason.LIFE_LOST, game="Other-Genesis-v0", index=1)
    with pytest.raises(DatasetError, match="different games") as err:
        FrameCache.open([a, b], PRE, tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_mixed_action_sets_are_refused(tmp_path: Path) -> None:
    a = write_episode(tmp_path, rewards=[1], end=EndReason.LIFE_LOST)
    b = write_episode(tmp_path, rewards=[1], end=EndReason.LIFE_LOST, index=1,
                      action_names=("noop", "fire"), actions=[0])
    with pytest.raises(DatasetError, match="different action sets"):
        FrameCache.open([a, b], PRE, tmp_path / "cache")


def test_a_file_that_is_not_an_episode_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.h5"
    bogus.write_text("hello")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        FrameCache.open([bogus], PRE, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.partial-*"))


def test_human_steps_get_the_nearest_action_and_the_share_is_reported(tmp_path: Path) -> None:
    # Airstriker buttons: bit 0 = B (fire), bit 6 = LEFT, bit 4 = UP (used by no action).
    b, left, up = 1, 1 << 6, 1 << 4
    buttons = np.array([[b] * 4, [left | b] * 4, [up | b] * 4, [up] * 4], dtype=np.uint16)
    path = write_episode(tmp_path, rewards=[0, 0, 0, 0], end=EndReason.LIFE_LOST,
                         actions=[-1, -1, -1, -1], buttons=buttons)
    cache = FrameCache.open([path], PRE, tmp_path / "cache")
    # fire, left_fire, fire (UP ignored), noop (UP ignored)
    assert cache.steps.actions.tolist() == [1, 4, 1, 0]
    assert (cache.info.mapped_steps, cache.info.human_steps) == (2, 4)
    assert cache.info.mapped_share == 0.5


def test_preprocessing_is_luma_then_area_resize() -> None:
    frames = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    frames[0, :2, :2] = (255, 0, 0)  # red top-left quadrant
    out = preprocess_frames(frames, PreprocessConfig(height=2, width=2))
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[76, 0], [0, 0]]  # round(0.299 * 255)
    crop = preprocess_frames(frames, PreprocessConfig(height=2, width=2, crop=(0, 2, 0, 2), grayscale=False))
    assert crop[0, :, 0, 0].tolist() == [255, 0, 0]


def test_lost_lives_are_read_from_the_stored_ram_and_cut_targets_only_when_asked(tmp_path: Path) -> None:
    # Airstriker's lives variable over 6 observations: a life lost in step 1 and in step 4; the
    # rise in step 2 (a bonus ship) is no loss.
    path = write_episode(tmp_path, rewards=[1, 1, 1, 1, 1], end=EndReason.LIFE_LOST, lives=[3, 3, 2, 4, 4, 3])
    cache = FrameCache.open([path], PRE, tmp_path / "cache")
    assert cache.steps.life_lost.tolist() == [False, True, False, False, True]
    assert cache.steps.terminated.tolist() == [False, False, False, False, True]  # as recorded
    kw = {"gamma": 0.5, "n_step": 3, "frame_stack": 1, "clip_rewards": True}
    plain = ReplayStore.from_cache(cache, **kw)
    cut = ReplayStore.from_cache(cache, **kw, life_loss_terminal=True)
    assert plain.index.discounts.tolist() == [0.125, 0.125, 0.0, 0.0, 0.0]
    assert cut.index.discounts.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]
    assert cut.index.next_obs.tolist() == [2, 2, 5, 5, 5]


def test_ram_of_another_size_than_the_profiles_has_no_lost_lives(two_episode_files: list[Path],
                                                                    tmp_path: Path) -> None:  # fmt: skip
    cache = FrameCache.open(two_episode_files, PRE, tmp_path / "cache")  # 16 bytes of RAM, not 64 KiB
    assert not cache.steps.life_lost.any()
