"""benchmarks/storage.py keeps working (tiny inputs; the real run is `python -m benchmarks.storage`)."""

from __future__ import annotations

import numpy as np

from benchmarks.storage import compare_codecs, measure_step_cost


def test_compare_codecs_reports_both_codecs() -> None:
    frames = np.zeros((17, 24, 32, 3), np.uint8)
    frames[:, 4:8, 4:8] = np.arange(17, dtype=np.uint8)[:, None, None, None]
    ram = np.zeros((17, 256), np.uint8)
    result = compare_codecs(frames, ram, chunk_frames=8)
    assert set(result) == {"zstd-3", "gzip-4"}
    raw_per_step = (frames.nbytes + ram.nbytes) / 16
    for row in result.values():
        assert row["ratio"] > 1
        assert abs(row["bytes_per_step"] * row["ratio"] - raw_per_step) < 1e-6 * raw_per_step
        assert row["write_fps"] > 0 and row["read_fps"] > 0


def test_measure_step_cost() -> None:
    frames = np.zeros((9, 24, 32, 3), np.uint8)
    ram = np.zeros((9, 256), np.uint8)
    cost = measure_step_cost(frames, ram, chunk_frames=4, rate=2000.0)
    assert 0 < cost["median_us"] <= cost["p99_us"] <= cost["max_us"]
