"""One HDF5 file per episode: :class:`EpisodeWriter` and :class:`EpisodeReader`.

The layout is specified in docs/dataset-format.md. In short, for an episode of
N steps the file holds N+1 observations (``frames``, ``ram``,
``frame_counters``, ``timestamps``; observation 0 is the start, as in Minari)
and N per-step rows (``buttons``, ``actions``, ``actors``, ``policy_versions``,
``rewards``, ``terminated``, ``truncated``), plus ``gaps`` and, when the client
sent one, ``start_state``. Every dataset is chunked and declares the
registered HDF5 Zstd filter (32015); the chunks are compressed by us
(:mod:`dataset.compression`), so neither writing nor reading needs a plugin.

Crash safety (the lesson of EnvLogger, whose docs warn that a missing
``close()`` loses data, and of Minari's collector, which moves a finished
dataset into place): the writer writes ``.NAME.h5.partial`` in the target
folder and only :meth:`EpisodeWriter.close` flushes it and commits it to
``NAME.h5`` (``dataset.atomic.commit``: fsync, rename, fsync the folder); the
``complete`` attribute is set last. A
reader refuses anything else with :class:`~dataset.errors.DatasetError`.

Performance: :meth:`EpisodeWriter.step` runs on the recorder's event loop
(500-2000 steps/s per client), so it only copies the frame and RAM into a
preallocated chunk buffer and appends the small values to lists. Full chunks
are compressed and written by one background thread (``zstandard`` releases
the GIL); a small pool of buffers bounds the memory and applies back-pressure
if the disk cannot keep up.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import enum
import json
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from dataset.atomic import commit
from dataset.compression import (
    ChunkCodec,
    compress_rows,
    create_zstd_dataset,
    iter_chunks,
    read_rows,
    write_compressed,
    write_rows,
)
from dataset.errors import DatasetError

__all__ = [
    "DEFAULT_CHUNK_FRAMES",
    "END_REASON_EXPLANATIONS",
    "PARTIAL_SUFFIX",
    "SCHEMA_VERSION",
    "Actor",
    "EndReason",
    "EpisodeMeta",
    "EpisodeReader",
    "EpisodeWriter",
    "is_partial_name",
]

#: Version of the layout in docs/dataset-format.md; bumped on any incompatible change.
SCHEMA_VERSION = 1

#: Frames per chunk. Measured on 1,001 real Airstriker observations with
#: benchmarks/storage.py (docs/dataset-format.md): whole file, zstd-3, 142x at 1,
#: 304x at 8, 339x at 16, 357x at 32, 366x at 64 (gzip-4: 132-148x). 32 gets
#: within 3% of 64 while halving the writer's buffers and the cost of a random
#: single-frame read (1.4 ms vs 3.0 ms: one 6.9 MB chunk to decode).
DEFAULT_CHUNK_FRAMES = 32

#: The temporary name of a file being written is ``"." + final name + PARTIAL_SUFFIX``.
PARTIAL_SUFFIX = ".partial"

#: Chunk rows of the small per-step arrays (written once, at close).
_SMALL_CHUNK_ROWS = 4096

#: Chunk buffers in flight per writer (one filling, the others compressing/queued).
_BUFFER_POOL = 4

class _BufferCache:
    """Chunk buffers kept from one episode to the next, per buffer geometry.

    A fresh 9 MB buffer page-faults on first touch, which costs more than the
    copy into it (measured: ~90 us per Genesis step instead of ~20 us), and a
    recorder writes episode after episode of the same shape.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._free: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}

    def take(self, key: tuple[int, ...], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        with self._lock:
            free = self._free.get(key, [])
            taken, self._free[key] = free[:n], free[n:]
        return taken

    def give(self, key: tuple[int, ...], pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        with self._lock:
            free = self._free.setdefault(key, [])
            free.extend(pairs[: max(0, self._keep - len(free))])


#: Up to 16 buffer pairs (~150 MB for Genesis) stay allocated for the next episodes.
_BUFFERS = _BufferCache(keep=16)

#: Compressor threads per writer: chunks compress in parallel (zstandard releases the GIL),
#: while writes into the file stay serialised. Two is what a 2-core machine can use.
_COMPRESSOR_THREADS = 2


class Actor(enum.IntEnum):
    """Who chose the buttons of a step."""

    HUMAN = 0
    POLICY = 1


class EndReason(enum.IntEnum):
    """Why an episode ended. Values below 16 are terminal (the MDP really ended:
    ``terminated`` on the last step); the others cut the episode short
    (``truncated``), so a TD target must still bootstrap from the last observation
    (Pardo et al., "Time Limits in Reinforcement Learning", ICML 2018)."""

    # terminal (terminated=True on the last step)
    LIFE_LOST = 1
    GAME_OVER = 2
    LEVEL_END = 3
    # not terminal (truncated=True on the last step)
    STEP_LIMIT = 16
    DISCONNECT = 17
    INTERRUPTED = 18
    CLIENT_STOP = 19
    SCREEN_CHANGED = 20
    SERVER_STOP = 21

    @property
    def terminal(self) -> bool:
        return self.value < 16

    @property
    def label(self) -> str:
        return self.name.lower()


#: What each end reason means, for ``sonic-rec show``.
END_REASON_EXPLANATIONS: dict[EndReason, str] = {
    EndReason.LIFE_LOST: "the player lost a life",
    EndReason.GAME_OVER: "the game was over",
    EndReason.LEVEL_END: "the level was finished",
    EndReason.STEP_LIMIT: "the step limit was reached",
    EndReason.DISCONNECT: "the client disconnected",
    EndReason.INTERRUPTED: "the recorder was interrupted",
    EndReason.CLIENT_STOP: "the client asked to stop",
    EndReason.SCREEN_CHANGED: "the screen size changed mid-episode",
    EndReason.SERVER_STOP: "the recorder was shut down",
}


@dataclass(frozen=True)
class EpisodeMeta:
    """Episode-level metadata, stored as root attributes of the file."""

    game: str  # profile id, e.g. "Airstriker-Genesis-v0"
    rom_name: str
    rom_hash: str
    emulator: str  # "stable-retro 1.0.1" / "BizHawk 2.9.1"
    core: str  # "genesis_plus_gx"
    system: str  # "Genesis"
    client_name: str
    client_version: str
    recorder_version: str
    profile_toml: str  # full text of the game profile
    frame_skip: int
    mode: str  # "human" | "policy"
    policy_id: str  # "human", "random", "scripted", "dqn@runs/x/ckpt-100.pt", ...
    button_names: tuple[str, ...]  # bit i of a button mask = button_names[i]
    action_names: tuple[str, ...]  # the profile's discrete action set names (index = action)
    episode_index: int  # index of the episode within the recording session
    session_id: str  # short id of the recording session/connection
    created: str  # ISO 8601 UTC
    extra: tuple[tuple[str, str], ...] = ()  # free-form, e.g. (("checkpoint", "..."),)

    def to_attrs(self) -> dict[str, str | int]:
        """Attributes as stored: strings and ints; tuples as JSON text (readable by any tool)."""
        out: dict[str, str | int] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                out[f.name] = json.dumps([list(kv) for kv in value])
            elif isinstance(value, tuple):
                out[f.name] = json.dumps(list(value))
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_attrs(cls, attrs: h5py.AttributeManager, where: Path) -> EpisodeMeta:
        kwargs: dict[str, object] = {}
        try:
            for f in fields(cls):
                if f.name not in attrs:
                    if f.name == "extra":
                        continue
                    raise DatasetError(f"{where}: attribute {f.name!r} is missing; not an episode file")
                raw = attrs[f.name]
                if isinstance(raw, bytes):
                    raw = raw.decode()
                if f.name == "extra":
                    kwargs[f.name] = tuple((str(k), str(v)) for k, v in json.loads(raw))
                elif f.name in ("button_names", "action_names"):
                    kwargs[f.name] = tuple(str(x) for x in json.loads(raw))
                elif f.name in ("frame_skip", "episode_index"):
                    kwargs[f.name] = int(raw)
                else:
                    kwargs[f.name] = str(raw)
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{where}: malformed episode attributes ({exc})") from exc
        return cls(**kwargs)  # type: ignore[arg-type]


def is_partial_name(path: Path) -> bool:
    """True for a writer's temporary file name (``.NAME.h5.partial``)."""
    return path.name.endswith(PARTIAL_SUFFIX)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-.") or "x"


def _stamp(created: str) -> str:
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        when = dt.datetime.now(dt.UTC)
    return when.strftime("%Y%m%dT%H%M%S")


class EpisodeWriter:
    """Writes one episode file; see the module docstring for the guarantees.

    Call :meth:`begin` with observation 0, :meth:`step` once per step, then
    :meth:`close` (or :meth:`abandon`). Not thread-safe: one writer per episode,
    driven from one thread (the recorder's event loop).
    """

    def __init__(
        self,
        directory: Path,
        meta: EpisodeMeta,
        *,
        frame_shape: tuple[int, int, int],
        ram_size: int,
        buttons_per_step: int,
        start_state: bytes | None,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        level: int = 3,
    ) -> None:
        if len(frame_shape) != 3 or frame_shape[2] != 3 or min(frame_shape) < 1:
            raise DatasetError(f"frame shape {frame_shape} is not (height, width, 3) RGB")
        if ram_size < 0 or buttons_per_step < 1 or chunk_frames < 1:
            raise DatasetError(
                f"bad episode geometry (ram_size={ram_size}, buttons_per_step="
                f"{buttons_per_step}, chunk_frames={chunk_frames})"
            )
        self.meta = meta
        self.frame_shape = tuple(int(x) for x in frame_shape)
        self.ram_size = int(ram_size)
        self.buttons_per_step = int(buttons_per_step)
        self.chunk_frames = int(chunk_frames)
        self.level = level
        self._codec = ChunkCodec(level)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        base = f"{_safe(meta.game)}_{_stamp(meta.created)}_{_safe(meta.session_id)}_{meta.episode_index:05d}"
        self.path = self._unique(directory, base)
        self.temp_path = directory / f".{self.path.name}{PARTIAL_SUFFIX}"
        self.n_steps = 0
        self._closed = False
        self._begun = False

        # "w-": fail rather than clobber if two writers ever race for one name.
        self._file = h5py.File(self.temp_path, "w-")
        self._file.attrs["schema_version"] = SCHEMA_VERSION
        self._file.attrs["complete"] = 0
        for key, value in meta.to_attrs().items():
            self._file.attrs[key] = value
        self._frames = create_zstd_dataset(self._file, "frames", self.frame_shape, np.uint8, self.chunk_frames, level)
        self._ram = create_zstd_dataset(self._file, "ram", (self.ram_size,), np.uint8, self.chunk_frames, level)
        if start_state is not None:
            state = np.frombuffer(bytes(start_state), dtype=np.uint8)
            ds = create_zstd_dataset(self._file, "start_state", (), np.uint8, max(1, min(len(state), 1 << 22)), level)
            write_rows(ds, 0, state, self._codec)
        self._file.flush()

        # Chunk buffers the compressor threads gather rows into: a pool, kept across
        # episodes (first-touch page faults of a fresh 9 MB buffer cost more than the copy).
        self._free: queue.SimpleQueue[tuple[np.ndarray, np.ndarray]] = queue.SimpleQueue()
        self._buffer_key = (self.chunk_frames, *self.frame_shape, self.ram_size)
        reused = _BUFFERS.take(self._buffer_key, _BUFFER_POOL)
        for pair in reused + [self._new_buffers() for _ in range(_BUFFER_POOL - len(reused))]:
            self._free.put(pair)
        # Rows of the chunk being filled. step() only keeps references (copying only arrays the
        # caller could still change): gathering 32 rows into a buffer and compressing them is
        # the compressor threads' job, off the recorder's event loop.
        self._rows_f: list[np.ndarray] = []
        self._rows_r: list[np.ndarray] = []
        self._flushed_rows = 0  # observation rows handed to the worker so far
        self._pool = concurrent.futures.ThreadPoolExecutor(_COMPRESSOR_THREADS, thread_name_prefix="episode-zstd")
        self._file_lock = threading.Lock()  # chunks compress concurrently; the file is written by one at a time
        self._pending: list[concurrent.futures.Future[None]] = []

        self._buttons: list[np.ndarray] = []
        self._actions: list[int] = []
        self._actors: list[int] = []
        self._policy_versions: list[int] = []
        self._rewards: list[float] = []
        self._counters: list[int] = []
        self._timestamps: list[float] = []
        self._gaps: list[tuple[int, int, int]] = []

    @staticmethod
    def _unique(directory: Path, base: str) -> Path:
        candidate = directory / f"{base}.h5"
        n = 1
        while candidate.exists() or (directory / f".{candidate.name}{PARTIAL_SUFFIX}").exists():
            candidate = directory / f"{base}-{n}.h5"
            n += 1
        return candidate

    def _new_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        f = np.zeros((self.chunk_frames, *self.frame_shape), dtype=np.uint8)
        r = np.zeros((self.chunk_frames, self.ram_size), dtype=np.uint8)
        return f, r

    # -- observations ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DatasetError(f"episode writer for {self.path.name} is already closed")

    def _observe(self, frame: np.ndarray, ram: np.ndarray, frame_counter: int, ts: float) -> None:
        if frame.shape != self.frame_shape:
            raise DatasetError(
                f"frame shape {frame.shape} differs from the episode's {self.frame_shape}; "
                "end the episode (SCREEN_CHANGED) and start a new one"
            )
        if ram.shape != (self.ram_size,):
            raise DatasetError(f"RAM of {ram.shape} bytes differs from the episode's {self.ram_size}")
        # A read-only array (a view of an immutable message, as the recorder passes) cannot
        # change under us; anything writable might be reused by the caller, so copy it.
        self._rows_f.append(frame if not frame.flags.writeable else frame.copy())
        self._rows_r.append(ram if not ram.flags.writeable else ram.copy())
        self._counters.append(int(frame_counter))
        self._timestamps.append(float(ts))
        if len(self._rows_f) == self.chunk_frames:
            self._hand_off()

    def _hand_off(self) -> None:
        """Give the chunk's rows to a compressor thread (waits when too many are in flight)."""
        self._raise_worker_errors()
        while len(self._pending) >= _BUFFER_POOL:  # back-pressure bounds the rows held in memory
            concurrent.futures.wait(self._pending, return_when=concurrent.futures.FIRST_COMPLETED)
            self._raise_worker_errors()
        rows_f, rows_r, first = self._rows_f, self._rows_r, self._flushed_rows
        self._pending.append(self._pool.submit(self._write_chunk, rows_f, rows_r, first))
        self._flushed_rows += len(rows_f)
        self._rows_f, self._rows_r = [], []

    def _write_chunk(self, rows_f: list[np.ndarray], rows_r: list[np.ndarray], first: int) -> None:
        # Runs on a compressor thread; file writes are serialised by _file_lock.
        n = len(rows_f)
        fbuf, rbuf = self._free.get()
        try:
            np.stack(rows_f, out=fbuf[:n])
            np.stack(rows_r, out=rbuf[:n])
            frames = compress_rows(fbuf[:n], self.chunk_frames, self._codec)
            ram = compress_rows(rbuf[:n], self.chunk_frames, self._codec)
        finally:
            self._free.put((fbuf, rbuf))
        with self._file_lock:
            # Chunks may finish out of order; each write only ever grows a dataset.
            write_compressed(self._frames, first, n, frames)
            write_compressed(self._ram, first, n, ram)

    def _raise_worker_errors(self) -> None:
        still = []
        for fut in self._pending:
            if fut.done():
                fut.result()  # re-raises the worker's exception (disk full, ...)
            else:
                still.append(fut)
        self._pending = still

    def begin(self, frame: np.ndarray, ram: np.ndarray, frame_counter: int, timestamp: float) -> None:
        """Record observation 0 (the state the first step starts from)."""
        self._check_open()
        if self._begun:
            raise DatasetError("begin() was already called for this episode")
        self._observe(frame, ram, frame_counter, timestamp)
        self._begun = True

    def step(
        self,
        *,
        frame: np.ndarray,
        ram: np.ndarray,
        frame_counter: int,
        timestamp: float,
        buttons: np.ndarray,
        action: int,
        actor: Actor,
        policy_version: int,
        reward: float,
    ) -> None:
        """Record one step: its inputs and the observation it led to (observation n+1).

        Every ``chunk_frames``-th call hands a full chunk to the compressor thread and
        re-raises that thread's earlier error, if any (e.g. ``OSError``: disk full);
        after such an error call :meth:`abandon`.
        """
        self._check_open()
        if not self._begun:
            raise DatasetError("step() before begin(): an episode needs its start observation")
        if buttons.shape != (self.buttons_per_step,):
            raise DatasetError(
                f"{buttons.shape} button masks, expected ({self.buttons_per_step},): one per emulated frame of the step"
            )
        self._observe(frame, ram, frame_counter, timestamp)
        self._buttons.append(buttons.astype(np.uint32, copy=True))
        self._actions.append(int(action))
        self._actors.append(int(actor))
        self._policy_versions.append(int(policy_version))
        self._rewards.append(float(reward))
        self.n_steps += 1

    def add_gap(self, step: int, expected_frame: int, got_frame: int) -> None:
        """Record that observation ``step`` (its row in ``frames``/``frame_counters``,
        i.e. the 1-based number of the step that produced it) carried frame counter
        ``got_frame`` where ``expected_frame`` was due: frames dropped or repeated,
        as reported by the recorder. Call it before or after that step's
        :meth:`step`; several gaps may name the same observation."""
        self._check_open()
        self._gaps.append((int(step), int(expected_frame), int(got_frame)))

    # -- finishing -------------------------------------------------------------------

    def _drain(self) -> None:
        concurrent.futures.wait(self._pending)
        pending, self._pending = self._pending, []
        for fut in pending:
            fut.result()

    def _write_small(self, name: str, data: np.ndarray) -> None:
        rows = max(1, min(len(data), _SMALL_CHUNK_ROWS))
        ds = create_zstd_dataset(self._file, name, data.shape[1:], data.dtype, rows, self.level)
        write_rows(ds, 0, data, self._codec)

    def close(self, reason: EndReason) -> Path:
        """Finish the file: remaining chunks, per-step arrays, attributes, fsync, rename.

        The last step gets ``terminated`` if ``reason.terminal`` else ``truncated``.
        Returns the final path. Raises DatasetError (and removes the temporary
        file) if :meth:`begin` was never called: there is no episode to keep.
        """
        self._check_open()
        reason = EndReason(reason)
        if not self._begun:
            self.abandon()
            self.temp_path.unlink(missing_ok=True)
            raise DatasetError("episode closed before its first observation; nothing was saved")
        try:
            if self._rows_f:
                self._hand_off()
            self._drain()
            self._pool.shutdown(wait=True)
            self._return_buffers()
            n = self.n_steps
            terminated = np.zeros(n, dtype=bool)
            truncated = np.zeros(n, dtype=bool)
            if n:
                (terminated if reason.terminal else truncated)[-1] = True
            k = self.buttons_per_step
            buttons = np.stack(self._buttons) if n else np.zeros((0, k), np.uint32)
            rewards = np.asarray(self._rewards, dtype=np.float32)
            self._write_small("buttons", buttons.astype(np.uint32))
            self._write_small("actions", np.asarray(self._actions, dtype=np.int16))
            self._write_small("actors", np.asarray(self._actors, dtype=np.uint8))
            self._write_small("policy_versions", np.asarray(self._policy_versions, dtype=np.int32))
            self._write_small("rewards", rewards)
            self._write_small("terminated", terminated)
            self._write_small("truncated", truncated)
            self._write_small("frame_counters", np.asarray(self._counters, dtype=np.uint64))
            self._write_small("timestamps", np.asarray(self._timestamps, dtype=np.float64))
            gaps = np.asarray(self._gaps, dtype=np.int64).reshape(-1, 3)
            self._write_small("gaps", gaps)
            attrs = self._file.attrs
            attrs["n_steps"] = n
            attrs["end_reason"] = int(reason)
            attrs["end_reason_label"] = reason.label
            # Sum in float64 of the stored float32 rewards, so check() can recompute it.
            attrs["return"] = float(rewards.astype(np.float64).sum())
            attrs["chunk_frames"] = self.chunk_frames
            attrs["zstd_level"] = self.level
            attrs["closed"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self._file.flush()
            # Set last: a file whose close was cut short never claims to be complete.
            attrs["complete"] = 1
            self._file.close()
            self._closed = True
            commit(self.temp_path, self.path)
        except BaseException:
            self.abandon()
            raise
        return self.path

    def abandon(self) -> None:
        """Close the file handle without completing or renaming it (tests, fatal errors).

        The ``.partial`` file stays on disk; readers refuse it and ``sonic-rec ls``
        reports it.
        """
        self._closed = True
        with contextlib.suppress(Exception):
            self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            if self._file.id.valid:
                self._file.close()

    def _return_buffers(self) -> None:
        """Hand the chunk buffers to the next episode (only once no worker can touch them)."""
        pairs = []
        while not self._free.empty():
            pairs.append(self._free.get())
        _BUFFERS.give(self._buffer_key, pairs)


class EpisodeReader:
    """Reads one complete episode file; a context manager.

    Frames and RAM are read lazily, decoding only the chunks a slice touches;
    the small per-step arrays are read on demand.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if is_partial_name(self.path):
            raise DatasetError(
                f"{self.path} is an unfinished episode (still being written, or its recorder "
                "crashed); only complete .h5 files can be read"
            )
        if not self.path.is_file():
            raise DatasetError(f"{self.path} does not exist or is not a file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise DatasetError(f"{self.path} is not an HDF5 file ({exc})") from exc
        try:
            self._open_checks()
        except BaseException:
            self._file.close()
            raise
        self._codec = ChunkCodec()

    def _open_checks(self) -> None:
        attrs = self._file.attrs
        if "schema_version" not in attrs:
            raise DatasetError(f"{self.path} is an HDF5 file but not a sonic-rl episode")
        version = int(attrs["schema_version"])
        if version != SCHEMA_VERSION:
            raise DatasetError(
                f"{self.path} uses episode schema {version}; this sonic-rl reads "
                f"schema {SCHEMA_VERSION}; use a matching sonic-rl version"
            )
        if int(attrs.get("complete", 0)) != 1:
            raise DatasetError(
                f"{self.path} is an incomplete episode (its writer never finished); "
                "delete it or record the episode again"
            )
        self.meta = EpisodeMeta.from_attrs(attrs, self.path)
        try:
            self.end_reason = EndReason(int(attrs["end_reason"]))
            self.n_steps = int(attrs["n_steps"])
            frames = self._file["frames"]
            ram = self._file["ram"]
        except (KeyError, ValueError) as exc:
            raise DatasetError(f"{self.path}: episode data is missing ({exc})") from exc
        self.frame_shape = tuple(int(x) for x in frames.shape[1:])
        self.ram_size = int(ram.shape[1])
        self.chunk_frames = int(frames.chunks[0]) if frames.chunks else int(frames.shape[0])
        self.episode_return = float(attrs.get("return", 0.0))

    # -- context manager -------------------------------------------------------------

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __repr__(self) -> str:
        return (
            f"EpisodeReader({str(self.path)!r}, game={self.meta.game!r}, steps={self.n_steps}, "
            f"frames={self.frame_shape}, end={self.end_reason.label})"
        )

    # -- data ------------------------------------------------------------------------

    def _dataset(self, name: str) -> h5py.Dataset:
        try:
            return self._file[name]
        except KeyError as exc:
            raise DatasetError(f"{self.path}: dataset {name!r} is missing") from exc

    def _rows(self, name: str, start: int, stop: int | None) -> np.ndarray:
        ds = self._dataset(name)
        start, stop, _ = slice(start, stop).indices(ds.shape[0])
        return read_rows(ds, start, max(start, stop), self._codec)

    def _all(self, name: str) -> np.ndarray:
        return self._rows(name, 0, None)

    def frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Observations ``start:stop`` as (n, H, W, 3) uint8; decodes only the chunks needed."""
        return self._rows("frames", start, stop)

    def iter_frame_chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index of the first frame, frames) for each stored chunk, in order."""
        return iter_chunks(self._dataset("frames"), self._codec)

    def ram(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Main RAM of observations ``start:stop`` as (n, ram_size) uint8."""
        return self._rows("ram", start, stop)

    def buttons(self) -> np.ndarray:
        """(N, K) uint32 button masks (protocol u32: up to 32 buttons), one per emulated frame of a step."""
        return self._all("buttons")

    def actions(self) -> np.ndarray:
        """(N,) int16 discrete action index, -1 where none (human play)."""
        return self._all("actions")

    def actors(self) -> np.ndarray:
        """(N,) uint8 :class:`Actor` values."""
        return self._all("actors")

    def policy_versions(self) -> np.ndarray:
        return self._all("policy_versions")

    def rewards(self) -> np.ndarray:
        return self._all("rewards")

    def terminated(self) -> np.ndarray:
        return self._all("terminated")

    def truncated(self) -> np.ndarray:
        return self._all("truncated")

    def frame_counters(self) -> np.ndarray:
        """(N+1,) uint64 emulator frame counter of each observation."""
        return self._all("frame_counters")

    def timestamps(self) -> np.ndarray:
        """(N+1,) float64 unix time at the recorder when each observation arrived."""
        return self._all("timestamps")

    def gaps(self) -> np.ndarray:
        """(G, 3) int64 rows of (step, expected_frame, got_frame)."""
        return self._all("gaps").reshape(-1, 3)

    def start_state(self) -> bytes | None:
        """The emulator state the episode started from, if the client sent it."""
        if "start_state" not in self._file:
            return None
        return self._all("start_state").tobytes()

    def datasets(self) -> dict[str, h5py.Dataset]:
        """The file's datasets by name (for ``describe``/``check``)."""
        return {name: obj for name, obj in self._file.items() if isinstance(obj, h5py.Dataset)}

    @property
    def attrs(self) -> dict[str, object]:
        """All root attributes, decoded (for ``describe``)."""
        out: dict[str, object] = {}
        for key, value in self._file.attrs.items():
            out[key] = value.decode() if isinstance(value, bytes) else value
        return out
