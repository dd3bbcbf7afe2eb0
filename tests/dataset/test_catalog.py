"""find_episode_files / summarize / describe / check: what sonic-rec ls, show and verify use."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dataset.catalog import check, describe, find_episode_files, find_partial_files, summarize
from dataset.compression import ChunkCodec, write_rows
from dataset.episode import DIGEST_ATTR, EndReason, EpisodeWriter, layout_digest
from dataset.errors import DatasetError
from tests.dataset.conftest import (
    BUTTONS_PER_STEP,
    FRAME_SHAPE,
    RAM_SIZE,
    make_meta,
    write_episode,
)


def overwrite(path: Path, name: str, data: np.ndarray) -> None:
    """Rewrite a dataset in place the way our writer does (direct zstd chunks, checksums, digest),
    so that only the semantic checks can object."""
    with h5py.File(path, "r+") as f:
        write_rows(f[name], 0, data, ChunkCodec(3))
        f.attrs[DIGEST_ATTR] = layout_digest(f)


def test_check_passes_a_sound_file(episode_factory) -> None:
    assert check(episode_factory(20).path) == []
    assert check(episode_factory(0, reason=EndReason.INTERRUPTED).path) == []


def test_check_finds_a_corrupted_counter(episode_factory) -> None:
    ep = episode_factory(20)
    counters = ep.counters.copy()
    counters[7] = counters[6]  # a repeated frame nobody recorded as a gap
    overwrite(ep.path, "frame_counters", counters)
    problems = check(ep.path)
    assert any("step 7" in p and "not increasing" in p for p in problems), problems
    counters = ep.counters.copy()
    counters[12:] += 1  # one dropped frame, not recorded
    overwrite(ep.path, "frame_counters", counters)
    problems = check(ep.path)
    assert any("step 12" in p and "advanced 5" in p for p in problems), problems


def test_check_accepts_recorded_gaps_and_checks_them(tmp_path: Path) -> None:
    counters = np.arange(11, dtype=np.uint64) * 4
    counters[4:] += 4
    # Observation 4 (made by step number 4) carried frame 20 where 16 was due.
    ok = write_episode(tmp_path, 10, counters=counters, gaps=((4, 16, 20),), seed=1)
    assert check(ok.path) == []
    # The recorder may record a client's drop notice and then the jump, for one row.
    twice = write_episode(tmp_path, 10, counters=counters, gaps=((4, 16, 19), (4, 16, 20)), seed=4)
    assert check(twice.path) == []
    wrong = write_episode(tmp_path, 10, counters=counters, gaps=((4, 16, 24),), seed=2)
    assert any("recorded gap says 24" in p for p in check(wrong.path))
    bad_expected = write_episode(tmp_path, 10, counters=counters, gaps=((4, 12, 20),), seed=5)
    assert any("expects frame 12" in p for p in check(bad_expected.path))
    # The writer refuses such a gap (tests/dataset/test_episode.py); a file edited by hand may hold one.
    outside = write_episode(tmp_path, 10, seed=3)
    overwrite(outside.path, "gaps", np.array([[11, 44, 48]], np.int64))
    assert any("outside 1..10" in p for p in check(outside.path))


def test_check_finds_bad_end_flags(episode_factory) -> None:
    ep = episode_factory(10, reason=EndReason.GAME_OVER)
    both = np.zeros(10, bool)
    both[-1] = True
    overwrite(ep.path, "truncated", both)
    problems = check(ep.path)
    assert any("both terminated and truncated" in p for p in problems), problems
    early = np.zeros(10, bool)
    early[[4, 9]] = True
    overwrite(ep.path, "truncated", np.zeros(10, bool))
    overwrite(ep.path, "terminated", early)
    assert any("only the last step" in p for p in check(ep.path))


def test_check_finds_a_corrupt_frame_chunk(episode_factory) -> None:
    ep = episode_factory(20, chunk_frames=8)
    with h5py.File(ep.path, "r+") as f:
        f["frames"].id.write_direct_chunk((8, 0, 0, 0), b"\x00" * 64, filter_mask=0)
    problems = check(ep.path)
    assert any("frames" in p and "damaged" in p for p in problems), problems


def test_check_finds_shape_and_value_problems(episode_factory) -> None:
    ep = episode_factory(10)
    with h5py.File(ep.path, "r+") as f:
        # Grown, not shrunk: shrinking rewrites the edge chunk, which needs the zstd plugin.
        f["rewards"].resize(11, axis=0)
    # The shapes are covered by the file's metadata checksum...
    assert any("dataset shapes do not match the checksum" in p for p in check(ep.path))
    with h5py.File(ep.path, "r+") as f:
        f.attrs[DIGEST_ATTR] = layout_digest(f)
    # ... and checked against n_steps when the checksum was recomputed (an edit on purpose).
    assert any("rewards has 11 rows, expected 10" in p for p in check(ep.path))
    ep = episode_factory(10, seed=5)
    overwrite(ep.path, "actions", np.full(10, 7, np.int16))  # only 4 profile actions
    overwrite(ep.path, "actors", np.full(10, 9, np.uint8))
    problems = check(ep.path)
    assert any("action 7" in p for p in problems)
    assert any("unknown actor code 9" in p for p in problems)


def test_check_reports_unreadable_files_without_raising(tmp_path: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"nope")
    problems = check(junk)
    assert len(problems) == 1 and "not an HDF5 file" in problems[0]


def test_find_files_skips_and_reports_partial_ones(tmp_path: Path) -> None:
    a = write_episode(tmp_path, 2, seed=1).path
    sub = tmp_path / "sub"
    b = write_episode(sub, 2, seed=2).path
    writer = EpisodeWriter(
        tmp_path, make_meta(episode_index=9), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
        buttons_per_step=BUTTONS_PER_STEP, start_state=None,
    )  # fmt: skip
    writer.abandon()
    (tmp_path / "notes.txt").write_text("x")
    assert find_episode_files([tmp_path]) == sorted([a, b])
    assert find_episode_files([str(tmp_path / "*.h5")]) == [a]
    assert find_episode_files([a, a, tmp_path]) == sorted([a, b])
    assert find_episode_files([writer.temp_path]) == []
    assert find_partial_files([tmp_path]) == [writer.temp_path]
    with pytest.raises(DatasetError, match="does not exist"):
        find_episode_files([tmp_path / "nowhere"])
    with pytest.raises(DatasetError, match="no file matches"):
        find_episode_files([str(tmp_path / "*.nothing")])


def test_summarize(episode_factory) -> None:
    ep = episode_factory(12, reason=EndReason.LIFE_LOST)
    row = summarize(ep.path)
    assert row["game"] == "Airstriker-Genesis-v0"
    assert row["steps"] == 12
    assert row["end_reason"] == "life_lost" and row["terminal"] is True
    assert row["policy"] == "random"
    assert row["return"] == pytest.approx(float(ep.rewards.astype(np.float64).sum()))
    assert row["bytes"] == ep.path.stat().st_size
    assert row["bytes_per_step"] == pytest.approx(row["bytes"] / 12)
    assert row["created"] == "2026-01-02T03:04:05+00:00"
    assert row["gaps"] == 0
    assert row["size"].endswith("KiB")


def test_describe(episode_factory) -> None:
    text = describe(episode_factory(12).path)
    assert "end: game_over" in text
    assert "rom_hash: sha1:0123456789abcdef" in text
    frames_line = next(line for line in text.splitlines() if line.strip().startswith("frames"))
    assert "(13, 24, 32, 3)" in frames_line and "uint8" in frames_line
    assert "32015" in frames_line and "ratio=" in frames_line
    assert "[actions]" in text  # the profile is shown in full


def test_check_catches_a_flipped_byte_in_any_chunk_of_any_dataset(tmp_path: Path) -> None:
    """Issue 11: before checksums, a byte flipped inside a frame chunk passed verify and trained."""
    import shutil

    from tests.dataset.test_episode import flip_stored_byte, stored_chunks

    counters = np.arange(21, dtype=np.uint64) * 4
    counters[5:] += 4
    ep = write_episode(tmp_path / "src", 20, chunk_frames=8, counters=counters, gaps=((5, 20, 24),))
    assert check(ep.path) == []
    chunks = stored_chunks(ep.path)
    assert {name for name, _ in chunks} == {
        "frames", "ram", "start_state", "gaps", "buttons", "actions", "actors", "policy_versions", "rewards",
        "terminated", "truncated", "frame_counters", "timestamps",
    }  # fmt: skip
    for n, (name, chunk) in enumerate(chunks):
        for where in ("first", "middle", "last"):
            damaged = tmp_path / f"{n}-{where}.h5"
            shutil.copy(ep.path, damaged)
            flip_stored_byte(damaged, name, chunk, where)
            problems = check(damaged)
            assert any(f"/{name}, chunk" in p and "damaged" in p for p in problems), (name, chunk, where, problems)
