"""Zstd-compressed HDF5 datasets written and read chunk by chunk, without an HDF5 plugin.

The files declare the *registered* HDF5 Zstandard filter (id 32015, registered
by the HDF Group for the ``HDF5Plugin-Zstandard`` filter; see
https://github.com/HDFGroup/hdf5_plugins/blob/master/docs/RegisteredFilterPlugins.md)
on every chunked dataset, so ``h5dump``/``h5py`` + ``hdf5plugin``/HDFView open them
like any other compressed file. The project itself never runs that filter: it
compresses each chunk with the ``zstandard`` package (one plain zstd frame of
the chunk's C-order bytes, content size included, which is exactly what the
filter produces and expects) and moves the bytes with ``H5Dwrite_chunk`` /
``H5Dread_chunk`` (h5py's ``write_direct_chunk`` / ``read_direct_chunk``).

The filter is declared ``H5Z_FLAG_OPTIONAL`` so that HDF5 without the plugin
can still create the dataset; a chunk written with filter_mask bit 0 set would
be stored raw, and :func:`read_rows` handles that case too.

Doing the compression ourselves also lets the writer compress on a background
thread: ``zstandard`` releases the GIL while it compresses.
"""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import zstandard

from dataset.errors import DatasetError

__all__ = [
    "ZSTD_FILTER_ID",
    "ChunkCodec",
    "FilterInfo",
    "compress_rows",
    "create_zstd_dataset",
    "dataset_filters",
    "h5dump_hint",
    "iter_chunks",
    "plugin_folder",
    "read_rows",
    "write_compressed",
    "write_rows",
]

#: HDF5 registered filter id of Zstandard (HDF Group registry, "HDF5Plugin-Zstandard").
ZSTD_FILTER_ID = 32015


@dataclass(frozen=True)
class FilterInfo:
    """One entry of a dataset's filter pipeline, as ``describe`` shows it."""

    filter_id: int
    name: str
    flags: int
    values: tuple[int, ...]


class ChunkCodec:
    """Compresses and decompresses chunks as plain zstd frames.

    ``zstandard`` compressor objects are not safe to share between threads, so
    each thread gets its own (thread-local); the objects are cheap to keep.
    """

    def __init__(self, level: int = 3) -> None:
        if not 1 <= level <= 22:
            raise DatasetError(f"zstd level {level} is out of range; use 1..22")
        self.level = level
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        comp = getattr(self._local, "comp", None)
        if comp is None:
            # write_content_size: the HDF5 zstd filter sizes its output buffer from it.
            comp = zstandard.ZstdCompressor(level=self.level, write_content_size=True)
            self._local.comp = comp
        return comp

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        dec = getattr(self._local, "dec", None)
        if dec is None:
            dec = zstandard.ZstdDecompressor()
            self._local.dec = dec
        return dec

    def compress(self, chunk: np.ndarray) -> bytes:
        """One zstd frame holding ``chunk``'s bytes in C order."""
        return self._compressor().compress(np.ascontiguousarray(chunk).data)

    def decompress(self, data: bytes, nbytes: int) -> bytes:
        """Inverse of :meth:`compress`; refuses a frame that is not ``nbytes`` long."""
        try:
            raw = self._decompressor().decompress(data, max_output_size=nbytes)
        except zstandard.ZstdError as exc:
            raise DatasetError(f"corrupt zstd chunk ({exc}); the file is damaged") from exc
        if len(raw) != nbytes:
            raise DatasetError(f"zstd chunk holds {len(raw)} bytes, expected {nbytes}; the file is damaged")
        return raw


def create_zstd_dataset(
    group: h5py.Group,
    name: str,
    row_shape: tuple[int, ...],
    dtype: np.dtype | type,
    chunk_rows: int,
    level: int,
    rows: int = 0,
) -> h5py.Dataset:
    """Create a resizable (unlimited first axis) chunked dataset declaring the zstd filter.

    Uses the low-level API because h5py's ``create_dataset(compression=32015)``
    refuses a filter that is not registered in this process.
    """
    if chunk_rows < 1:
        raise DatasetError(f"chunk size {chunk_rows} must be at least 1 row")
    dtype = np.dtype(dtype)
    shape = (rows, *row_shape)
    maxshape = (h5py.h5s.UNLIMITED, *row_shape)
    space = h5py.h5s.create_simple(shape, maxshape)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((chunk_rows, *row_shape))
    dcpl.set_filter(ZSTD_FILTER_ID, h5py.h5z.FLAG_OPTIONAL, (level,))
    tid = h5py.h5t.py_create(dtype, logical=True)
    dsid = h5py.h5d.create(group.id, name.encode(), tid, space, dcpl=dcpl)
    return h5py.Dataset(dsid)


def _chunk_rows(dset: h5py.Dataset) -> int:
    if dset.chunks is None:
        raise DatasetError(f"dataset {dset.name} is not chunked")
    return dset.chunks[0]


def _is_zstd_direct(dset: h5py.Dataset) -> bool:
    """True when our direct-chunk path can decode ``dset`` (zstd is its only filter)."""
    if dset.chunks is None:
        return False
    ids = [f.filter_id for f in dataset_filters(dset)]
    return ids == [ZSTD_FILTER_ID]


def compress_rows(rows: np.ndarray, chunk_rows: int, codec: ChunkCodec) -> list[bytes]:
    """Compress ``rows`` into one zstd frame per chunk of ``chunk_rows`` rows.

    ``rows`` may end with a partial chunk (the episode's tail): it is zero-padded
    to a full chunk, because HDF5 stores every chunk at full size; the dataset
    extent hides the padding. Touches no file, so several threads may run it at once.
    """
    blobs = []
    for off in range(0, len(rows), chunk_rows):
        block = rows[off : off + chunk_rows]
        if len(block) < chunk_rows:
            padded = np.zeros((chunk_rows, *block.shape[1:]), dtype=block.dtype)
            padded[: len(block)] = block
            block = padded
        blobs.append(codec.compress(block))
    return blobs


def write_compressed(dset: h5py.Dataset, first_row: int, n_rows: int, blobs: list[bytes]) -> None:
    """Store chunks made by :func:`compress_rows`, growing the dataset to cover ``n_rows`` new rows."""
    crow = _chunk_rows(dset)
    if first_row % crow:
        raise ValueError(f"first_row {first_row} is not aligned to chunks of {crow}")
    end = first_row + n_rows
    if end > dset.shape[0]:
        dset.resize(end, axis=0)
    for i, blob in enumerate(blobs):
        offset = (first_row + i * crow,) + (0,) * (dset.ndim - 1)
        dset.id.write_direct_chunk(offset, blob, filter_mask=0)


def write_rows(dset: h5py.Dataset, first_row: int, rows: np.ndarray, codec: ChunkCodec) -> None:
    """Compress and write whole chunks starting at chunk-aligned ``first_row``, growing the dataset."""
    write_compressed(dset, first_row, len(rows), compress_rows(rows, _chunk_rows(dset), codec))


def _read_chunk(dset: h5py.Dataset, chunk_start: int, codec: ChunkCodec) -> np.ndarray:
    """Decode one full stored chunk (``chunk_rows`` rows, padding included)."""
    crow = dset.chunks[0]
    row_shape = dset.shape[1:]
    nbytes = crow * int(np.prod(row_shape, dtype=np.int64)) * dset.dtype.itemsize
    offset = (chunk_start,) + (0,) * (dset.ndim - 1)
    try:
        mask, data = dset.id.read_direct_chunk(offset)
    except (KeyError, OSError, RuntimeError) as exc:
        raise DatasetError(f"chunk at row {chunk_start} of {dset.name} is missing or unreadable ({exc})") from exc
    # filter_mask bit 0 set = the (only, optional) filter was skipped: the chunk is raw.
    # h5py 3.16's read_direct_chunk reports mask 0 even then, so on a decoding
    # failure the chunk index (H5Dget_chunk_info_by_coord) has the last word.
    if mask & 1:
        raw = bytes(data)
    else:
        try:
            raw = codec.decompress(data, nbytes)
        except DatasetError as exc:
            if dset.id.get_chunk_info_by_coord(offset).filter_mask & 1:
                raw = bytes(data)
            else:
                raise DatasetError(f"{dset.name}, chunk at row {chunk_start}: {exc}") from exc
    if len(raw) != nbytes:
        got = len(raw)
        where = f"{dset.name}, chunk at row {chunk_start}"
        raise DatasetError(f"{where}: {got} bytes, expected {nbytes}; the file is damaged")
    return np.frombuffer(raw, dtype=dset.dtype).reshape((crow, *row_shape))


def read_rows(dset: h5py.Dataset, start: int, stop: int, codec: ChunkCodec | None = None) -> np.ndarray:
    """Rows ``start:stop`` (already clipped by the caller), decoding only the chunks needed.

    Datasets that are not zstd-only (e.g. written by another tool with gzip) fall
    back to h5py's normal slicing, so the reader never needs a plugin for ours
    and still works for anything HDF5 can decode by itself.
    """
    if not _is_zstd_direct(dset):
        return dset[start:stop]
    codec = codec or ChunkCodec()
    out = np.empty((max(stop - start, 0), *dset.shape[1:]), dtype=dset.dtype)
    if stop <= start:
        return out
    crow = dset.chunks[0]
    first = (start // crow) * crow
    for cstart in range(first, stop, crow):
        chunk = _read_chunk(dset, cstart, codec)
        lo = max(start, cstart)
        hi = min(stop, cstart + crow)
        out[lo - start : hi - start] = chunk[lo - cstart : hi - cstart]
    return out


def iter_chunks(dset: h5py.Dataset, codec: ChunkCodec | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, rows)`` per stored chunk, the tail clipped to the extent."""
    n = dset.shape[0]
    if n == 0:
        return
    if not _is_zstd_direct(dset):
        crow = dset.chunks[0] if dset.chunks else n
        for cstart in range(0, n, crow):
            yield cstart, dset[cstart : min(n, cstart + crow)]
        return
    codec = codec or ChunkCodec()
    crow = dset.chunks[0]
    for cstart in range(0, n, crow):
        chunk = _read_chunk(dset, cstart, codec)
        yield cstart, chunk[: min(crow, n - cstart)]


def dataset_filters(dset: h5py.Dataset) -> list[FilterInfo]:
    """The filter pipeline declared on ``dset`` (empty for contiguous datasets)."""
    dcpl = dset.id.get_create_plist()
    out = []
    for i in range(dcpl.get_nfilters()):
        code, flags, values, name = dcpl.get_filter(i)
        label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        if code == ZSTD_FILTER_ID and not label:
            label = "zstd"
        out.append(FilterInfo(int(code), label or str(code), int(flags), tuple(values)))
    return out


# --------------------------------------------------------------------------- other HDF5 tools


def plugin_folder() -> Path:
    """The folder of hdf5plugin's compiled HDF5 filters (the Zstd one, ``libh5zstd``, among them).

    HDF5 loads a filter it does not know from the folders in ``HDF5_PLUGIN_PATH``,
    so pointing that variable here lets plain ``h5py``, ``h5dump`` and HDFView
    decompress the episode files (hdf5plugin's documented use with other HDF5
    programs). In Python, ``import hdf5plugin`` registers the filters instead.
    """
    import hdf5plugin

    return Path(hdf5plugin.PLUGIN_PATH)


def h5dump_hint(episode: str, *, dataset: str = "/rewards", windows: bool | None = None) -> str:
    """The one command line that dumps ``dataset`` of ``episode`` with h5dump (plugin path set).

    POSIX shells take ``VAR=value command``; on Windows the line is for PowerShell.
    """
    folder = str(plugin_folder())
    if windows if windows is not None else os.name == "nt":
        return f'$env:HDF5_PLUGIN_PATH = "{folder}"; h5dump -d {dataset} "{episode}"'
    return f"HDF5_PLUGIN_PATH={shlex.quote(folder)} h5dump -d {dataset} {shlex.quote(episode)}"
