"""The files are standard HDF5: a reader with the hdf5plugin Zstd filter sees the same data."""

from __future__ import annotations

import h5py
import hdf5plugin  # registers the HDF5 Zstd filter (32015) with h5py
import numpy as np

from dataset.compression import ZSTD_FILTER_ID, dataset_filters
from dataset.episode import EpisodeReader


def test_hdf5plugin_reads_identical_arrays(episode_factory) -> None:
    ep = episode_factory(19, chunk_frames=8)
    assert hdf5plugin.FILTERS["zstd"] == ZSTD_FILTER_ID
    assert h5py.h5z.filter_avail(ZSTD_FILTER_ID)
    with h5py.File(ep.path, "r") as f, EpisodeReader(ep.path) as r:
        # Normal slicing goes through the HDF5 filter pipeline, not our direct-chunk path.
        np.testing.assert_array_equal(f["frames"][8:16], ep.frames[8:16])
        np.testing.assert_array_equal(f["frames"][:], ep.frames)
        np.testing.assert_array_equal(f["ram"][:], ep.ram)
        np.testing.assert_array_equal(f["buttons"][:], ep.buttons)
        np.testing.assert_array_equal(f["rewards"][:], ep.rewards)
        np.testing.assert_array_equal(f["frame_counters"][:], ep.counters)
        assert f["start_state"][:].tobytes() == ep.start_state
        for name, ds in f.items():
            assert [x.filter_id for x in dataset_filters(ds)] == [ZSTD_FILTER_ID], name
            np.testing.assert_array_equal(ds[:], r._all(name), err_msg=name)
