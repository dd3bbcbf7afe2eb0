"""The files are standard HDF5: a reader with the hdf5plugin Zstd filter sees the same data."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin  # registers the HDF5 Zstd filter (32015) with h5py
import numpy as np

from dataset.compression import ZSTD_FILTER_ID, dataset_filters, h5dump_hint, plugin_folder
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


def test_h5dump_hint_names_the_zstd_filter_folder(episode_factory) -> None:
    """The hint's folder holds the Zstd filter, and plain h5py (no hdf5plugin import) reads the file with it."""
    ep = episode_factory(9, chunk_frames=4)
    line = h5dump_hint(str(ep.path))
    env_part, _, command = line.partition(" ")
    key, _, folder = env_part.partition("=")
    assert key == "HDF5_PLUGIN_PATH" and command == f"h5dump -d /rewards {shlex.quote(str(ep.path))}"
    folder_path = Path(shlex.split(folder)[0])
    assert folder_path == plugin_folder() and folder_path.is_dir()
    assert any("zstd" in f.name for f in folder_path.iterdir()), list(folder_path.iterdir())
    # A fresh interpreter that never imports hdf5plugin: HDF5 must load the filter from the folder.
    code = "import sys, h5py, numpy; f = h5py.File(sys.argv[1]); numpy.save(sys.stdout.buffer, f['frames'][:])"
    env = {**os.environ, "HDF5_PLUGIN_PATH": str(folder_path)}
    done = subprocess.run([sys.executable, "-c", code, str(ep.path)], capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    np.testing.assert_array_equal(np.load(io.BytesIO(done.stdout)), ep.frames)
    powershell = h5dump_hint("C:\\data\\x.h5", windows=True)
    assert powershell == f'$env:HDF5_PLUGIN_PATH = "{folder_path}"; h5dump -d /rewards "C:\\data\\x.h5"'


def test_show_h5dump_hint_command(episode_factory) -> None:
    ep = episode_factory(3)
    done = subprocess.run(
        [sys.executable, "-c", "from recorder.cli import main; main()", "show", "--h5dump-hint", str(ep.path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == h5dump_hint(str(ep.path))
    assert "HDFView" in done.stderr
