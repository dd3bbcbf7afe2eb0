"""EpisodeWriter / EpisodeReader: round trips, crash safety, ends, gaps, edge cases."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dataset.episode import (
    SCHEMA_VERSION,
    Actor,
    EndReason,
    EpisodeReader,
    EpisodeWriter,
    is_partial_name,
)
from dataset.errors import DatasetError
from tests.dataset.conftest import (
    BUTTONS_PER_STEP,
    FRAME_SHAPE,
    RAM_SIZE,
    Episode,
    make_meta,
    write_episode,
)


def assert_round_trip(ep: Episode) -> None:
    n = len(ep.rewards)
    with EpisodeReader(ep.path) as r:
        assert r.n_steps == n
        assert r.meta == make_meta()
        assert r.frame_shape == FRAME_SHAPE
        assert r.ram_size == RAM_SIZE
        np.testing.assert_array_equal(r.frames(), ep.frames)
        np.testing.assert_array_equal(r.ram(), ep.ram)
        np.testing.assert_array_equal(r.frame_counters(), ep.counters)
        np.testing.assert_array_equal(r.timestamps(), ep.timestamps)
        np.testing.assert_array_equal(r.buttons(), ep.buttons.reshape(n, BUTTONS_PER_STEP))
        np.testing.assert_array_equal(r.actions(), ep.actions)
        np.testing.assert_array_equal(r.actors(), ep.actors)
        np.testing.assert_array_equal(r.policy_versions(), ep.policy_versions)
        np.testing.assert_array_equal(r.rewards(), ep.rewards)
        assert r.frames().dtype == np.uint8 and r.ram().dtype == np.uint8
        assert r.buttons().dtype == np.uint32 and r.actions().dtype == np.int16
        assert r.actors().dtype == np.uint8 and r.policy_versions().dtype == np.int32
        assert r.rewards().dtype == np.float32 and r.frame_counters().dtype == np.uint64
        assert r.timestamps().dtype == np.float64
        assert r.terminated().dtype == bool and r.truncated().dtype == bool
        assert r.start_state() == ep.start_state
        assert r.episode_return == pytest.approx(float(ep.rewards.astype(np.float64).sum()))


@pytest.mark.parametrize("n_steps", [1, 7, 8, 9, 30])
def test_round_trip_across_chunk_boundaries(episode_factory, n_steps: int) -> None:
    # chunk_frames=8 and N+1 observations: 7 fills one chunk exactly, 8 and 30 do not.
    assert_round_trip(episode_factory(n_steps, chunk_frames=8))


def test_attributes(episode_factory) -> None:
    ep = episode_factory(5, reason=EndReason.LEVEL_END)
    with h5py.File(ep.path, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f.attrs["complete"] == 1
        assert f.attrs["game"] == "Airstriker-Genesis-v0"
        assert f.attrs["rom_hash"] == "sha1:0123456789abcdef"
        assert f.attrs["emulator"] == "stable-retro 1.0.1"
        assert f.attrs["core"] == "genesis_plus_gx"
        assert f.attrs["frame_skip"] == 4
        assert "[actions]" in f.attrs["profile_toml"]
        assert f.attrs["end_reason"] == EndReason.LEVEL_END
        assert f.attrs["end_reason_label"] == "level_end"
        assert f.attrs["n_steps"] == 5
        # The start state is a dataset, not an attribute (a Genesis state is ~1 MB,
        # past HDF5's 64 KiB attribute limit for compact storage).
        assert "start_state" in f and "start_state" not in f.attrs


@pytest.mark.parametrize("start", [0, 3, 7, 8, 15])
@pytest.mark.parametrize("stop", [None, 1, 8, 9, 16, 17, 100, -1])
def test_frame_slices_match_numpy(episode_factory, start: int, stop: int | None) -> None:
    ep = episode_factory(16, chunk_frames=8)
    with EpisodeReader(ep.path) as r:
        np.testing.assert_array_equal(r.frames(start, stop), ep.frames[start:stop])
        np.testing.assert_array_equal(r.ram(start, stop), ep.ram[start:stop])


def test_iter_frame_chunks(episode_factory) -> None:
    ep = episode_factory(20, chunk_frames=8)
    with EpisodeReader(ep.path) as r:
        chunks = list(r.iter_frame_chunks())
        assert r.chunk_frames == 8
    assert [first for first, _ in chunks] == [0, 8, 16]
    assert [len(c) for _, c in chunks] == [8, 8, 5]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), ep.frames)


def test_empty_episode(episode_factory) -> None:
    ep = episode_factory(0, reason=EndReason.DISCONNECT, start_state=None)
    with EpisodeReader(ep.path) as r:
        assert r.n_steps == 0
        assert r.frames().shape == (1, *FRAME_SHAPE)
        np.testing.assert_array_equal(r.frames(), ep.frames)
        assert r.buttons().shape == (0, BUTTONS_PER_STEP)
        assert r.rewards().shape == (0,)
        assert r.terminated().shape == (0,) and r.truncated().shape == (0,)
        assert r.frame_counters().shape == (1,)
        assert r.gaps().shape == (0, 3)
        assert r.start_state() is None
        assert r.end_reason is EndReason.DISCONNECT


@pytest.mark.parametrize("reason", list(EndReason))
def test_terminated_and_truncated_kept_apart(episode_factory, reason: EndReason) -> None:
    ep = episode_factory(6, reason=reason)
    with EpisodeReader(ep.path) as r:
        term, trunc = r.terminated(), r.truncated()
        assert r.end_reason is reason
    assert not term[:-1].any() and not trunc[:-1].any()
    assert term[-1] == reason.terminal
    assert trunc[-1] == (not reason.terminal)


def test_end_reason_codes() -> None:
    assert {r.label for r in EndReason if r.terminal} == {"life_lost", "game_over", "level_end"}
    assert EndReason.STEP_LIMIT.label == "step_limit" and not EndReason.STEP_LIMIT.terminal
    assert Actor.HUMAN == 0 and Actor.POLICY == 1


def test_gaps_recorded(episode_factory) -> None:
    counters = np.arange(11, dtype=np.uint64) * 4
    counters[4:] += 4  # observation 4 landed on frame 20 instead of 16: one step dropped
    ep = episode_factory(10, counters=counters, gaps=((4, 16, 20),))
    with EpisodeReader(ep.path) as r:
        gaps = r.gaps()
        np.testing.assert_array_equal(r.frame_counters(), counters)
    assert gaps.dtype == np.int64
    np.testing.assert_array_equal(gaps, [[4, 16, 20]])


def test_crash_leaves_only_a_partial_file_that_readers_refuse(tmp_path: Path) -> None:
    writer = EpisodeWriter(
        tmp_path, make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None, chunk_frames=4,
    )  # fmt: skip
    frame = np.zeros(FRAME_SHAPE, np.uint8)
    ram = np.zeros(RAM_SIZE, np.uint8)
    writer.begin(frame, ram, 0, 0.0)
    for i in range(10):  # past two chunk boundaries, so chunks reached the file
        writer.step(
            frame=frame, ram=ram, frame_counter=4 * (i + 1), timestamp=float(i),
            buttons=np.zeros(BUTTONS_PER_STEP, np.uint16), action=0, actor=Actor.POLICY,
            policy_version=0, reward=0.0,
        )  # fmt: skip
    writer.abandon()
    assert writer.temp_path.exists() and not writer.path.exists()
    assert writer.temp_path.parent == writer.path.parent  # same folder: os.replace is atomic
    assert is_partial_name(writer.temp_path) and writer.temp_path.name.startswith(".")
    with pytest.raises(DatasetError, match="unfinished"):
        EpisodeReader(writer.temp_path)
    # Renamed by hand, it is still refused: the complete flag is only set by close().
    renamed = tmp_path / "renamed.h5"
    writer.temp_path.rename(renamed)
    with pytest.raises(DatasetError, match="incomplete"):
        EpisodeReader(renamed)


def test_final_name_appears_only_on_close(tmp_path: Path) -> None:
    writer = EpisodeWriter(
        tmp_path, make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None,
    )  # fmt: skip
    assert writer.temp_path.exists() and not writer.path.exists()
    writer.begin(np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8), 0, 0.0)
    path = writer.close(EndReason.CLIENT_STOP)
    assert path == writer.path and path.exists() and not writer.temp_path.exists()
    assert path.name == "Airstriker-Genesis-v0_20260102T030405_ab12cd_00003.h5"
    with pytest.raises(DatasetError):
        writer.step(
            frame=np.zeros(FRAME_SHAPE, np.uint8), ram=np.zeros(RAM_SIZE, np.uint8),
            frame_counter=4, timestamp=1.0, buttons=np.zeros(BUTTONS_PER_STEP, np.uint16),
            action=0, actor=Actor.POLICY, policy_version=0, reward=0.0,
        )  # fmt: skip


def test_same_metadata_never_overwrites(tmp_path: Path) -> None:
    a = write_episode(tmp_path, 2, seed=1)
    b = write_episode(tmp_path, 2, seed=2)
    assert a.path != b.path
    with EpisodeReader(a.path) as ra, EpisodeReader(b.path) as rb:
        np.testing.assert_array_equal(ra.frames(), a.frames)
        np.testing.assert_array_equal(rb.frames(), b.frames)


def test_close_without_begin_saves_nothing(tmp_path: Path) -> None:
    writer = EpisodeWriter(
        tmp_path, make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None,
    )  # fmt: skip
    with pytest.raises(DatasetError, match="first observation"):
        writer.close(EndReason.DISCONNECT)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    writer = EpisodeWriter(
        tmp_path, make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None,
    )  # fmt: skip
    ok_frame, ok_ram = np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8)
    step = {
        "frame": ok_frame, "ram": ok_ram, "frame_counter": 4, "timestamp": 1.0,
        "buttons": np.zeros(BUTTONS_PER_STEP, np.uint16), "action": 0,
        "actor": Actor.POLICY, "policy_version": 0, "reward": 0.0,
    }  # fmt: skip
    with pytest.raises(DatasetError, match="before begin"):
        writer.step(**step)
    with pytest.raises(DatasetError, match="SCREEN_CHANGED"):
        writer.begin(np.zeros((10, 10, 3), np.uint8), ok_ram, 0, 0.0)
    writer.begin(ok_frame, ok_ram, 0, 0.0)
    with pytest.raises(DatasetError, match="button masks"):
        writer.step(**{**step, "buttons": np.zeros(BUTTONS_PER_STEP + 1, np.uint16)})
    with pytest.raises(DatasetError, match="RAM"):
        writer.step(**{**step, "ram": np.zeros(RAM_SIZE + 1, np.uint8)})
    writer.abandon()
    with pytest.raises(DatasetError, match="RGB"):
        EpisodeWriter(
            tmp_path, make_meta(), frame_shape=(24, 32, 4), ram_size=RAM_SIZE,
            buttons_per_step=BUTTONS_PER_STEP, start_state=None,
        )  # fmt: skip


def test_writer_does_not_keep_references_to_caller_arrays(tmp_path: Path) -> None:
    # The recorder decodes each message into reused buffers: the writer must copy.
    writer = EpisodeWriter(
        tmp_path, make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None, chunk_frames=4,
    )  # fmt: skip
    frame = np.zeros(FRAME_SHAPE, np.uint8)
    ram = np.zeros(RAM_SIZE, np.uint8)
    buttons = np.zeros(BUTTONS_PER_STEP, np.uint16)
    writer.begin(frame, ram, 0, 0.0)
    for i in range(1, 7):
        frame[:] = i
        ram[:] = i
        buttons[:] = i
        writer.step(
            frame=frame, ram=ram, frame_counter=4 * i, timestamp=float(i), buttons=buttons,
            action=0, actor=Actor.POLICY, policy_version=0, reward=0.0,
        )  # fmt: skip
    path = writer.close(EndReason.STEP_LIMIT)
    with EpisodeReader(path) as r:
        assert r.frames()[:, 0, 0, 0].tolist() == list(range(7))
        assert r.ram()[:, 0].tolist() == list(range(7))
        assert r.buttons()[:, 0].tolist() == list(range(1, 7))


def test_not_an_episode_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        EpisodeReader(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DatasetError, match="not a sonic-rl episode"):
        EpisodeReader(other)
    with pytest.raises(DatasetError, match="does not exist"):
        EpisodeReader(tmp_path / "missing.h5")


def test_newer_schema_refused(episode_factory) -> None:
    ep = episode_factory(2)
    with h5py.File(ep.path, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(DatasetError, match="schema"):
        EpisodeReader(ep.path)


def test_errors_are_one_line(tmp_path: Path) -> None:
    try:
        EpisodeReader(tmp_path / ".x.h5.partial")
    except DatasetError as exc:
        assert "\n" not in str(exc)
    else:
        pytest.fail("a partial file was accepted")


def test_compressor_thread_errors_surface_and_nothing_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataset.episode as episode_module

    def failing_write_rows(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(episode_module, "write_rows", failing_write_rows)
    writer = EpisodeWriter(
        tmp_path, make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None, chunk_frames=2,
    )  # fmt: skip
    frame, ram = np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8)
    writer.begin(frame, ram, 0, 0.0)
    with pytest.raises(OSError, match="No space"):
        for i in range(50):
            writer.step(
                frame=frame, ram=ram, frame_counter=4 * (i + 1), timestamp=float(i),
                buttons=np.zeros(BUTTONS_PER_STEP, np.uint16), action=0,
                actor=Actor.POLICY, policy_version=0, reward=0.0,
            )  # fmt: skip
        writer.close(EndReason.STEP_LIMIT)
    writer.abandon()
    assert not writer.path.exists()
