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
from dataset.errors import DatasetError, StorageError
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


@pytest.mark.parametrize("where", ["chunk", "close", "flush", "commit"])
def test_a_disk_that_refuses_a_write_discards_the_episode_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Issue 11 item 2: a full disk is StorageError (one line), the file half-written is removed
    (it could only fail verify), and nothing is published: not a traceback, not a leftover."""
    import errno

    import dataset.episode as episode_module

    def no_space(*args: object, **kwargs: object) -> None:
        if where == "flush":  # as h5py reports a failed flush: the errno only in HDF5's text
            raise RuntimeError("Unable to synchronously flush file (file write failed: time = ..., errno = 28, "
                               "error message = 'No space left on device', buf = 0x55)")  # fmt: skip
        raise OSError(errno.ENOSPC, "Can't write data (file write failed: errno = 28)\nHDF5 stack ...")

    target = {"chunk": "write_compressed", "close": "write_rows", "flush": "write_rows", "commit": "commit"}[where]
    monkeypatch.setattr(episode_module, target, no_space)
    writer = EpisodeWriter(
        tmp_path, make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None, chunk_frames=2,
    )  # fmt: skip
    frame, ram = np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8)
    writer.begin(frame, ram, 0, 0.0)
    with pytest.raises(StorageError) as err:
        for i in range(50):
            writer.step(
                frame=frame, ram=ram, frame_counter=4 * (i + 1), timestamp=float(i),
                buttons=np.zeros(BUTTONS_PER_STEP, np.uint16), action=0,
                actor=Actor.POLICY, policy_version=0, reward=0.0,
            )  # fmt: skip
        writer.close(EndReason.STEP_LIMIT)
    assert str(err.value) == (
        f"output folder full: {tmp_path} (No space left on device); free some space there or choose another folder"
    )
    assert isinstance(err.value, DatasetError)  # a UsageError: `record` prints it and exits 2
    assert list(tmp_path.iterdir()) == []  # neither the episode nor its temporary file


def test_a_runtime_error_not_of_the_disk_is_not_taken_for_a_full_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataset.episode as episode_module

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug, not the disk")

    monkeypatch.setattr(episode_module, "write_rows", bug)
    writer = _writer(tmp_path)
    writer.begin(np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8), 0, 0.0)
    with pytest.raises(RuntimeError, match="a bug"):
        writer.close(EndReason.STEP_LIMIT)


def test_storage_errors_tell_a_full_disk_from_one_that_refuses_writes(tmp_path: Path) -> None:
    import errno

    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        assert str(StorageError.of(OSError(code, "x"), tmp_path)).startswith(f"output folder full: {tmp_path} (")
    read_only = StorageError.of(OSError(errno.EROFS, "x"), tmp_path)
    assert str(read_only).startswith(f"cannot write to the output folder {tmp_path} (Read-only file system)")
    assert "\n" not in str(StorageError.of(OSError("line 1\nline 2"), tmp_path))


# -- issue 11: nothing fails late --------------------------------------------------------


def _writer(tmp_path: Path, **kwargs: object) -> EpisodeWriter:
    return EpisodeWriter(
        tmp_path, make_meta(**kwargs), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None, chunk_frames=4,
    )  # fmt: skip


def _step_args(i: int, **overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "frame": np.full(FRAME_SHAPE, i % 256, np.uint8), "ram": np.full(RAM_SIZE, i % 256, np.uint8),
        "frame_counter": 4 * i, "timestamp": float(i), "buttons": np.full(BUTTONS_PER_STEP, i % 256, np.uint16),
        "action": i % 4, "actor": Actor.POLICY, "policy_version": i, "reward": 0.5,
    }  # fmt: skip
    args.update(overrides)
    return args


UNSTORABLE_STEPS = [
    ({"frame_counter": 2**63}, "frame counter"),  # issue 11: OverflowError at close lost 26 episodes
    ({"frame_counter": 2**64}, "frame counter"),
    ({"frame_counter": -1}, "frame counter"),
    ({"frame_counter": 4.0}, "not an integer"),
    ({"timestamp": float("nan")}, "timestamp"),
    ({"reward": float("nan")}, "reward"),
    ({"reward": float("inf")}, "reward"),
    ({"reward": 1e39}, "float32"),  # would be stored as inf, which verify rejects
    ({"action": 4}, "action"),  # only 4 profile actions
    ({"action": -2}, "action"),
    ({"actor": 7}, "actor"),
    ({"policy_version": 2**31}, "policy version"),
    ({"buttons": np.array([0, 0, 0, 1 << 8], np.uint32)}, "beyond the 8 declared buttons"),
    ({"buttons": np.array([0, 0, 0, -1], np.int64)}, "negative"),
    ({"buttons": np.array([0, 0, 0, 2**40], np.uint64)}, "32 bits"),
    ({"buttons": np.zeros(BUTTONS_PER_STEP, np.float32)}, "dtype"),
    ({"frame": np.zeros(FRAME_SHAPE, np.float32)}, "uint8"),
]


@pytest.mark.parametrize(("override", "message"), UNSTORABLE_STEPS)
def test_unstorable_values_are_refused_when_given_and_the_episode_survives(
    tmp_path: Path, override: dict[str, object], message: str
) -> None:
    from dataset.catalog import check

    writer = _writer(tmp_path)
    writer.begin(np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8), 0, 0.0)
    for i in range(1, 7):
        writer.step(**_step_args(i))  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match=message) as caught:
        writer.check_step(**_step_args(7, **override))  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    with pytest.raises(DatasetError, match=message):
        writer.step(**_step_args(7, **override))  # type: ignore[arg-type]
    writer.step(**_step_args(7))  # the refused step stored nothing: the episode goes on
    path = writer.close(EndReason.STEP_LIMIT)
    assert check(path) == []
    with EpisodeReader(path) as r:
        assert r.n_steps == 7
        assert r.frames()[:, 0, 0, 0].tolist() == list(range(8))
        assert r.policy_versions().tolist() == list(range(1, 8))


def test_unstorable_observation_zero_and_gaps_are_refused(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    frame, ram = np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8)
    with pytest.raises(DatasetError, match="frame counter"):
        writer.begin(frame, ram, 2**63, 0.0)
    writer.begin(frame, ram, 0, 0.0)
    writer.step(**_step_args(1))  # type: ignore[arg-type]
    for args, message in [
        ((0, 4, 8), "gap step"),  # observation 0 has no step before it
        ((3, 8, 12), "gap step"),  # only the next step (2) may be named ahead of its step()
        ((2, 2**63, 12), "expected frame"),
        ((2, 8, 2**63), "frame counter"),
    ]:
        with pytest.raises(DatasetError, match=message):
            writer.add_gap(*args)
    writer.add_gap(2, 8, 12)
    writer.step(**_step_args(2, frame_counter=12))  # type: ignore[arg-type]
    writer.add_gap(3, 16, 24)  # announced, but the episode ends before step 3
    path = writer.close(EndReason.CLIENT_STOP)
    with EpisodeReader(path) as r:
        np.testing.assert_array_equal(r.gaps(), [[2, 8, 12]])  # the gap of a step never taken is left out
    from dataset.catalog import check

    assert check(path) == []


def test_close_with_an_unknown_reason_keeps_the_episode(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.begin(np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8), 0, 0.0)
    writer.step(**_step_args(1))  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="not an end reason"):
        writer.close(99)  # type: ignore[arg-type]
    assert writer.close(EndReason.LEVEL_END).exists()


def test_metadata_and_folders_that_cannot_be_used_are_refused_at_creation(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="metadata cannot be stored"):
        _writer(tmp_path, episode_index=2**64)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
    with pytest.raises(DatasetError, match="button"):
        _writer(tmp_path, button_names=tuple(f"b{i}" for i in range(33)))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StorageError, match="cannot write to the output folder"):
        EpisodeWriter(
            not_a_folder / "sub", make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
            buttons_per_step=BUTTONS_PER_STEP, start_state=None,
        )  # fmt: skip


def test_temporary_name_names_its_owner(tmp_path: Path) -> None:
    import os

    from dataset.atomic import host_name

    writer = _writer(tmp_path)
    assert writer.temp_path.name == f".{writer.path.name}.partial-{os.getpid()}@{host_name()}"
    assert is_partial_name(writer.temp_path) and is_partial_name(tmp_path / ".x.h5.partial")
    writer.abandon()


# -- issue 11: memory ----------------------------------------------------------------------


def test_large_screens_get_fewer_rows_per_chunk() -> None:
    from dataset.episode import DEFAULT_CHUNK_FRAMES, MAX_CHUNK_BYTES, chunk_rows_for

    assert chunk_rows_for((224, 320, 3), 65536) == DEFAULT_CHUNK_FRAMES  # Genesis keeps 32
    assert chunk_rows_for((1024, 1024, 3), 1 << 20) == 3  # the protocol's largest
    assert chunk_rows_for((1024, 1024, 3), 1 << 20, 2) == 2
    for shape, ram in [((1024, 1024, 3), 1 << 20), ((64, 64, 3), 1 << 20), ((600, 800, 3), 0)]:
        rows = chunk_rows_for(shape, ram)
        assert rows * (int(np.prod(shape)) + ram) <= MAX_CHUNK_BYTES


# One client cycling through 20 screen sizes, up to the protocol's largest (1024x1024, 1 MiB RAM),
# with incompressible frames (the worst case for compressed output) and a fresh "message" per step.
_MEMORY_SCRIPT = r"""
import json, sys, tracemalloc
from pathlib import Path
import numpy as np
from dataset.episode import Actor, EndReason, EpisodeWriter, chunk_rows_for
from tests.dataset.conftest import make_meta

def rss(key):
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
    except OSError:
        return None

out = Path(sys.argv[1])
RAM = 1 << 20
sizes = [(1024, 1024)] + [(64 + 48 * i, 1024 - 40 * i) for i in range(1, 19)] + [(1024, 1024)]
base = np.random.default_rng(0).integers(0, 256, (2, 1024 * 1024 * 3 + RAM), dtype=np.uint8)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # restart the peak RSS (VmHWM) count here
except OSError:
    pass
baseline = rss("VmRSS")
tracemalloc.start()
after = []
for i, (h, w) in enumerate(sizes):
    shape = (h, w, 3)
    fb = h * w * 3
    writer = EpisodeWriter(out, make_meta(episode_index=i), frame_shape=shape, ram_size=RAM,
                           buttons_per_step=4, start_state=None)
    def obs(k):
        message = base[k % 2].copy()  # a fresh message per step, as the recorder receives them
        message.flags.writeable = False
        return message[:fb].reshape(shape), message[fb : fb + RAM]
    writer.begin(*obs(0), 0, 0.0)
    for s in range(1, 2 * chunk_rows_for(shape, RAM) + 2):
        writer.step(**dict(zip(("frame", "ram"), obs(s))), frame_counter=4 * s, timestamp=float(s),
                    buttons=np.zeros(4, np.uint32), action=0, actor=Actor.POLICY, policy_version=0, reward=0.0)
    writer.close(EndReason.STEP_LIMIT)
    after.append(tracemalloc.get_traced_memory()[0])
print(json.dumps({
    "traced_peak": tracemalloc.get_traced_memory()[1], "traced_after": after,
    "rss_baseline": baseline, "rss_peak": rss("VmHWM"), "rss_end": rss("VmRSS"), "files": len(list(out.glob("*.h5"))),
}))
"""


def test_memory_stays_bounded_while_one_client_cycles_through_20_screen_sizes(tmp_path: Path) -> None:
    """Issue 11: the old per-geometry buffer cache kept 1.58 GiB after 3 sizes at 1024x1024.

    The bound is docs/dataset-format.md's ("Memory"): a writer holds at most 6.25 chunks of
    rows and compressed output (the chunk being filled, one queued, and per compressor
    thread its rows plus up to 1.125x their size of output) plus zstd's ~3.5 MiB per
    compressor thread, and nothing stays allocated between episodes.
    """
    import json
    import subprocess
    import sys

    from dataset.episode import MAX_CHUNK_BYTES

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path)], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    assert m["files"] == 20
    mib = 2**20
    message = (1024 * 1024 * 3 + (1 << 20)) / mib  # the step's own message, held by the test
    # Python-visible memory (numpy rows, compressed chunks): the documented 6.25 chunks, + one message.
    assert m["traced_peak"] / mib <= 6.25 * MAX_CHUNK_BYTES / mib + message + 2, m
    # Nothing is kept from one episode to the next, whatever the screen size.
    assert max(m["traced_after"]) < 1 * mib, m
    if m["rss_peak"] is not None:  # Linux: the whole process, zstd and HDF5 included, allocator slack too
        assert (m["rss_peak"] - m["rss_baseline"]) / mib <= 160, m
        assert (m["rss_end"] - m["rss_baseline"]) / mib <= 96, m


# -- issue 11: silent corruption ------------------------------------------------------------


def flip_stored_byte(path: Path, name: str, chunk: int, where: str) -> None:
    """Flip every bit of one byte of a stored chunk on disk (bit rot, a bad copy)."""
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(chunk)
    pos = info.byte_offset + {"first": 0, "middle": info.size // 2, "last": info.size - 1}[where]
    with open(path, "r+b") as fh:
        fh.seek(pos)
        byte = fh.read(1)[0]
        fh.seek(pos)
        fh.write(bytes([byte ^ 0xFF]))


def stored_chunks(path: Path) -> list[tuple[str, int]]:
    with h5py.File(path, "r") as f:
        return [(name, i) for name, ds in f.items() for i in range(ds.id.get_num_chunks())]


def test_reader_raises_for_a_flipped_byte_in_any_chunk_rather_than_return_bad_data(tmp_path: Path) -> None:
    import shutil

    counters = np.arange(21, dtype=np.uint64) * 4
    counters[5:] += 4
    ep = write_episode(tmp_path / "src", 20, chunk_frames=8, counters=counters, gaps=((5, 20, 24),))
    chunks = stored_chunks(ep.path)
    names = {name for name, _ in chunks}
    assert {"frames", "ram", "start_state", "gaps", "rewards", "frame_counters"} <= names
    assert len([1 for name, _ in chunks if name == "frames"]) == 3
    for n, (name, chunk) in enumerate(chunks):
        for where in ("first", "middle", "last"):
            damaged = tmp_path / f"{n}-{where}.h5"
            shutil.copy(ep.path, damaged)
            flip_stored_byte(damaged, name, chunk, where)
            with EpisodeReader(damaged) as r, pytest.raises(DatasetError, match="damaged") as caught:
                getattr(r, name)()  # frames(), ram(), rewards(), start_state(), gaps(), ...
            message = str(caught.value)
            assert "\n" not in message and name in message and damaged.name in message
            if name == "frames":
                with EpisodeReader(damaged) as r, pytest.raises(DatasetError, match="damaged"):
                    list(r.iter_frame_chunks())


def test_changed_attributes_or_shapes_are_refused(episode_factory) -> None:
    ep = episode_factory(5)
    with h5py.File(ep.path, "r+") as f:
        f.attrs["frame_skip"] = 2
    with pytest.raises(DatasetError, match="do not match the checksum"):
        EpisodeReader(ep.path)
    ep = episode_factory(5, seed=1)
    with h5py.File(ep.path, "r+") as f:
        f["rewards"].resize(6, axis=0)
    with pytest.raises(DatasetError, match="do not match the checksum"):
        EpisodeReader(ep.path)


def downgrade_to_schema_1(path: Path) -> None:
    """Make ``path`` what the schema-1 writer wrote: the same chunks without checksums, no digest."""
    import zstandard

    with h5py.File(path, "r+") as f:
        for ds in f.values():
            for i in range(ds.id.get_num_chunks()):
                offset = ds.id.get_chunk_info(i).chunk_offset
                _, blob = ds.id.read_direct_chunk(offset)
                raw = zstandard.ZstdDecompressor().decompress(blob)
                old = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(raw)
                ds.id.write_direct_chunk(offset, old, filter_mask=0)
        f.attrs["schema_version"] = 1
        del f.attrs["metadata_sha256"]


def test_schema_1_files_are_still_read(episode_factory) -> None:
    ep = episode_factory(9, chunk_frames=4)
    downgrade_to_schema_1(ep.path)
    assert_round_trip(ep)
    with EpisodeReader(ep.path) as r:
        assert r.schema_version == 1 and not r.checksummed
    from dataset.catalog import check

    assert check(ep.path) == []
