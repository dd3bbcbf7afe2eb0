"""The zstd direct-chunk layer on its own."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import zstandard

from dataset.compression import (
    ZSTD_FILTER_ID,
    ChunkCodec,
    create_zstd_dataset,
    dataset_filters,
    iter_chunks,
    read_rows,
    write_rows,
)
from dataset.errors import DatasetError


def test_chunks_are_plain_zstd_frames_with_content_size_and_checksum() -> None:
    # The HDF5 zstd filter sizes its output from the frame's content size.
    data = np.arange(1000, dtype=np.uint16).reshape(10, 100)
    blob = ChunkCodec(3).compress(data)
    params = zstandard.get_frame_parameters(blob)
    assert params.content_size == data.nbytes
    assert params.has_checksum
    assert zstandard.ZstdDecompressor().decompress(blob) == data.tobytes()


def test_rows_streamed_as_parts_make_the_same_chunk_as_one_array() -> None:
    rows = np.random.default_rng(0).integers(0, 3, (5, 6, 7), dtype=np.uint8)
    codec = ChunkCodec(3)
    padded = np.zeros((8, 6, 7), np.uint8)
    padded[:5] = rows
    from_parts = codec.compress_parts(list(rows), padded.nbytes)  # zero-padded to 8 rows
    assert codec.decompress(from_parts, padded.nbytes) == padded.tobytes()
    with pytest.raises(ValueError, match="bytes of rows"):
        codec.compress_parts(list(rows), 10)


def _decodes_wrong(codec: ChunkCodec, blob: bytes, raw: bytes) -> bool:
    try:
        return codec.decompress(blob, len(raw)) != raw
    except DatasetError:
        return False


def test_every_single_byte_change_is_caught_or_harmless() -> None:
    # Issue 11: a changed byte must never decode to different data. Every byte of a few
    # frames (random rows are stored raw inside zstd, where only the checksum can tell),
    # changed in several ways; a few changes to bits zstd ignores leave the data intact.
    rng = np.random.default_rng(1)
    codec = ChunkCodec(3)
    samples = [
        rng.integers(0, 256, 1500, dtype=np.uint8),  # incompressible: raw blocks
        np.where(rng.random(3000) < 0.2, rng.integers(0, 256, 3000), 7).astype(np.uint8),
        np.zeros(2000, np.uint8),
    ]
    for data in samples:
        raw = data.tobytes()
        blob = codec.compress(data)
        for i in range(len(blob)):
            for flip in (0x01, 0x10, 0x80, 0xFF):
                damaged = bytearray(blob)
                damaged[i] ^= flip
                assert not _decodes_wrong(codec, bytes(damaged), raw), (i, flip)
        # A frame whose declared size was damaged is refused before anything is allocated.
        huge = bytearray(blob)
        huge[5] ^= 0x40
        with pytest.raises(DatasetError, match="damaged"):
            codec.decompress(bytes(huge), len(raw))


def test_frames_without_checksum_are_refused_unless_allowed() -> None:
    data = np.arange(64, dtype=np.uint8)
    old = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(data.tobytes())  # schema 1
    with pytest.raises(DatasetError, match="no checksum"):
        ChunkCodec().decompress(old, 64)
    assert ChunkCodec(require_checksum=False).decompress(old, 64) == data.tobytes()


def test_write_read_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 5, (45, 6, 7), dtype=np.uint8)
    codec = ChunkCodec(3)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        ds = create_zstd_dataset(f, "d", (6, 7), np.uint8, chunk_rows=10, level=3)
        assert ds.shape == (0, 6, 7) and ds.chunks == (10, 6, 7) and ds.maxshape[0] is None
        write_rows(ds, 0, data[:20], codec)
        write_rows(ds, 20, data[20:], codec)
        assert ds.shape == (45, 6, 7)
        for start, stop in [(0, 45), (0, 1), (9, 11), (10, 20), (37, 45), (44, 45), (5, 5)]:
            np.testing.assert_array_equal(read_rows(ds, start, stop, codec), data[start:stop])
        firsts = [first for first, _ in iter_chunks(ds, codec)]
        assert firsts == [0, 10, 20, 30, 40]
        np.testing.assert_array_equal(np.concatenate([c for _, c in iter_chunks(ds)]), data)
        with pytest.raises(ValueError, match="aligned"):
            write_rows(ds, 45, data[:1], codec)
        assert dataset_filters(ds)[0].filter_id == ZSTD_FILTER_ID
        assert dataset_filters(ds)[0].values == (3,)


def test_raw_chunk_with_filter_skipped_is_read_only_without_checksums(tmp_path: Path) -> None:
    # filter_mask bit 0 = the optional zstd filter was not applied to this chunk (another tool wrote it).
    data = np.arange(16, dtype=np.int32).reshape(4, 4)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        ds = create_zstd_dataset(f, "d", (4,), np.int32, chunk_rows=4, level=1, rows=4)
        ds.id.write_direct_chunk((0, 0), data.tobytes(), filter_mask=1)
        np.testing.assert_array_equal(read_rows(ds, 0, 4, ChunkCodec(require_checksum=False)), data)
        # A raw chunk has no checksum: a schema-2 reader refuses it.
        with pytest.raises(DatasetError, match="damaged"):
            read_rows(ds, 0, 4)


def test_other_filters_fall_back_to_h5py_only_without_checksums(tmp_path: Path) -> None:
    data = np.arange(100, dtype=np.float32).reshape(25, 4)
    lax = ChunkCodec(require_checksum=False)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        ds = f.create_dataset("g", data=data, chunks=(8, 4), compression="gzip")
        np.testing.assert_array_equal(read_rows(ds, 3, 20, lax), data[3:20])
        np.testing.assert_array_equal(np.concatenate([c for _, c in iter_chunks(ds, lax)]), data)
        with pytest.raises(DatasetError, match="no checksums"):
            read_rows(ds, 3, 20)
        with pytest.raises(DatasetError, match="no checksums"):
            next(iter_chunks(ds))


def test_corrupt_chunk_is_a_dataset_error(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as f:
        ds = create_zstd_dataset(f, "d", (4,), np.uint8, chunk_rows=4, level=1, rows=4)
        ds.id.write_direct_chunk((0, 0), b"garbage, not zstd", filter_mask=0)
        with pytest.raises(DatasetError, match="damaged"):
            read_rows(ds, 0, 4)
        short = ChunkCodec(1).compress(np.zeros(3, np.uint8))  # valid zstd, wrong size
        ds.id.write_direct_chunk((0, 0), short, filter_mask=0)
        with pytest.raises(DatasetError, match="expected 16"):
            read_rows(ds, 0, 4)


def test_bad_level() -> None:
    with pytest.raises(DatasetError, match="level"):
        ChunkCodec(0)
