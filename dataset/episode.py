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
dataset into place): the writer writes ``.NAME.h5.partial-PID@HOST``
(``dataset.atomic.temp_path_for``) in the target folder and only
:meth:`EpisodeWriter.close` flushes it and commits it to ``NAME.h5``
(``dataset.atomic.commit``: fsync, rename, fsync the folder); the ``complete``
attribute is set last. A reader refuses anything else with
:class:`~dataset.errors.DatasetError`.

No late failure (issue 11): :meth:`EpisodeWriter.begin`, :meth:`~EpisodeWriter.step`
and :meth:`~EpisodeWriter.add_gap` refuse, with DatasetError and before storing
anything, every value the file cannot hold or ``sonic-rec verify`` would reject
(a frame counter >= 2^63, a NaN reward, an undeclared button bit, ...), so
:meth:`~EpisodeWriter.close` has nothing left to refuse and an episode's earlier
steps are never lost to one bad value.

Integrity (schema 2): every chunk is a zstd frame with a content checksum
(:mod:`dataset.compression`), and ``metadata_sha256`` covers the root attributes and
the datasets' shapes; the reader checks both, so damage raises DatasetError rather
than feeding wrong data to training.

Performance and memory: :meth:`EpisodeWriter.step` runs on the recorder's event
loop (500-2000 steps/s per client), so it only keeps references to the frame and
RAM (copying only arrays the caller could change) and appends the small values to
typed arrays. Full chunks are compressed and written by background threads
(``zstandard`` releases the GIL), which stream the rows straight into zstd: no
gathering buffer, so nothing is allocated per chunk or kept between episodes.
A chunk holds at most :data:`MAX_CHUNK_BYTES` and at most :data:`_MAX_PENDING`
chunks are in flight (back-pressure if the disk cannot keep up), which bounds a
writer's memory: see "Memory" in docs/dataset-format.md.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import enum
import hashlib
import json
import math
import operator
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from dataset.atomic import commit, temp_path_for
from dataset.compression import (
    ChunkCodec,
    create_zstd_dataset,
    iter_chunks,
    read_rows,
    write_compressed,
    write_rows,
)
from dataset.errors import DatasetError, StorageError
from dataset.leftovers import parse_temp_name

__all__ = [
    "DEFAULT_CHUNK_FRAMES",
    "DIGEST_ATTR",
    "END_REASON_EXPLANATIONS",
    "FRAME_COUNTER_LIMIT",
    "MAX_CHUNK_BYTES",
    "READABLE_SCHEMAS",
    "SCHEMA_VERSION",
    "Actor",
    "EndReason",
    "EpisodeMeta",
    "EpisodeReader",
    "EpisodeWriter",
    "chunk_rows_for",
    "is_partial_name",
    "layout_digest",
    "undeclared_button_bits",
]

#: Version of the layout in docs/dataset-format.md; bumped on any incompatible change.
#: 2: every chunk carries a zstd content checksum and ``metadata_sha256`` covers the
#: attributes and shapes (issue 11). 1: the same layout without either.
SCHEMA_VERSION = 2

#: Schemas this version reads. Schema 1 files (written before checksums) are read as
#: they are: their damage can only show as a chunk that does not decode.
READABLE_SCHEMAS = (1, 2)

#: Frames per chunk. Measured on 1,001 real Airstriker observations with
#: benchmarks/storage.py (docs/dataset-format.md): whole file, zstd-3, 142x at 1,
#: 304x at 8, 339x at 16, 357x at 32, 366x at 64 (gzip-4: 132-148x). 32 gets
#: within 3% of 64 while halving the writer's memory and the cost of a random
#: single-frame read (1.4 ms vs 3.0 ms: one 6.9 MB chunk to decode).
DEFAULT_CHUNK_FRAMES = 32

#: Most bytes one chunk of frames plus RAM may hold; fewer rows per chunk above it
#: (:func:`chunk_rows_for`). 32 Genesis rows (224x320x3 + 64 KiB: 8.6 MiB) or SNES rows
#: still fit; a 1024x1024 screen with 1 MiB of RAM (the protocol's largest) gets 3.
#: zstd level 3 matches within a 2 MiB window, so rows of 3 MiB gain nothing from
#: sharing a chunk anyway. Bounds a writer's memory (issue 11).
MAX_CHUNK_BYTES = 12 * 1024 * 1024

#: Frame counters are stored as uint64 but compared and recorded in gaps as int64.
FRAME_COUNTER_LIMIT = 2**63

#: Chunk rows of the small per-step arrays (written once, at close).
_SMALL_CHUNK_ROWS = 4096

#: Compressor threads per writer: chunks compress in parallel (zstandard releases the GIL),
#: while writes into the file stay serialised. Two is what a 2-core machine can use.
_COMPRESSOR_THREADS = 2

#: Chunks handed off and not yet written, per writer: one per compressor thread plus one
#: queued to absorb jitter; a further full chunk makes step() wait (back-pressure).
_MAX_PENDING = _COMPRESSOR_THREADS + 1

_F32_MAX = float(np.finfo(np.float32).max)
_I32 = 2**31
_U32 = 2**32
_MAX_BUTTONS = 32  # button masks are uint32


def chunk_rows_for(frame_shape: tuple[int, ...], ram_size: int, requested: int = DEFAULT_CHUNK_FRAMES) -> int:
    """Rows per chunk for this geometry: ``requested``, fewer if a chunk would exceed MAX_CHUNK_BYTES."""
    row_bytes = math.prod(frame_shape) + ram_size
    return max(1, min(requested, MAX_CHUNK_BYTES // max(1, row_bytes)))


def undeclared_button_bits(button_names: tuple[str, ...] | list[str]) -> int:
    """Mask of the bits of a uint32 button mask that no button name declares.

    0 when no names are given (the masks are then not interpreted) or all 32 are.
    The writer refuses masks with these bits and ``verify`` reports them: one rule.
    """
    n = len(button_names)
    if n == 0 or n >= _MAX_BUTTONS:
        return 0
    return (_U32 - 1) ^ ((1 << n) - 1)


class _Column:
    """A growing typed array (capacity doubles): a few bytes per step instead of Python objects."""

    def __init__(self, dtype: type, row_shape: tuple[int, ...] = ()) -> None:
        self._data = np.empty((256, *row_shape), dtype=dtype)
        self.n = 0

    def append(self, value: object) -> None:
        if self.n == len(self._data):
            grown = np.empty((2 * self.n, *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self.n] = self._data
            self._data = grown
        self._data[self.n] = value
        self.n += 1

    def array(self) -> np.ndarray:
        return self._data[: self.n]


def _int_in(what: str, value: object, lo: int, hi: int) -> int:
    """``value`` as an int in ``lo <= value < hi``, else DatasetError."""
    try:
        v = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise DatasetError(f"{what} {value!r} is not an integer") from None
    if not lo <= v < hi:
        raise DatasetError(f"{what} {v} is outside the storable range {lo}..{hi - 1}")
    return v


def _finite(what: str, value: object, limit: float = math.inf) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DatasetError(f"{what} {value!r} is not a number") from None
    if not abs(v) <= limit:  # also catches NaN
        raise DatasetError(f"{what} {v} is not a finite {'float32' if limit < math.inf else 'number'}")
    return v


def _plain(value: object) -> object:
    """An attribute value as JSON can hold it (for :func:`layout_digest`)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


#: Root attribute holding :func:`layout_digest` (schema 2).
DIGEST_ATTR = "metadata_sha256"


def layout_digest(f: h5py.File) -> str:
    """SHA-256 of the root attributes (but ``complete`` and the digest) and every dataset's shape,
    dtype and chunk shape: what chunk checksums cannot see, but a reader trusts.

    A tool that edits an episode file on purpose stores the new value in ``f.attrs[DIGEST_ATTR]``.
    """
    attrs = {k: _plain(v) for k, v in f.attrs.items() if k not in ("complete", DIGEST_ATTR)}
    layout = {
        name: [list(obj.shape), obj.dtype.str, list(obj.chunks or ())]
        for name, obj in f.items()
        if isinstance(obj, h5py.Dataset)
    }
    text = json.dumps({"attrs": attrs, "datasets": layout}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


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
    #: ``sonic-train online`` spent its --steps or --updates budget with the episode still open:
    #: cut short like Ctrl-C, but on purpose, so it is told apart from ``interrupted`` (issue 12).
    BUDGET = 22
    #: The agent driving ``recorder.gym_env.BridgeEnv`` called ``reset()`` with the episode open.
    AGENT_RESET = 23

    @property
    def terminal(self) -> bool:
        return self.value < 16

    @property
    def label(self) -> str:
        return self.name.lower()


_ACTOR_CODES = frozenset(int(a) for a in Actor)


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
    EndReason.BUDGET: "the run's step or update budget was spent",
    EndReason.AGENT_RESET: "the agent reset the environment before the episode ended",
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
    """True for a writer's temporary file name (``.NAME.h5.partial-PID@HOST``, or an older form)."""
    return parse_temp_name(Path(path).name) is not None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-.") or "x"


def _stamp(created: str) -> str:
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        when = dt.datetime.now(dt.UTC)
    return when.strftime("%Y%m%dT%H%M%S")


#: How HDF5 names the errno of a failed write in its error text.
_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")


def _disk_error(exc: BaseException) -> OSError | None:
    """``exc`` as the OSError of a write the disk refused, or None when it is something else.

    h5py raises OSError for most failed writes, but RuntimeError for a failed flush ("Unable to
    synchronously flush file (file write failed: ..., errno = 27, ...)"): the errno is only in
    the text (found with RLIMIT_FSIZE at an episode's first flush).
    """
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, RuntimeError) and "write failed" in str(exc) and (m := _ERRNO_IN_TEXT.search(str(exc))):
        code = int(m.group(1))
        return OSError(code, os.strerror(code))
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _consumed(rows: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Yield ``rows`` in order, dropping the list's reference to each as it goes: a row (and the
    message it views) is freed as soon as zstd has taken it, not when the whole chunk is done."""
    rows.reverse()
    while rows:
        yield rows.pop()


class EpisodeWriter:
    """Writes one episode file; see the module docstring for the guarantees.

    Call :meth:`begin` with observation 0, :meth:`step` once per step, then
    :meth:`close` (or :meth:`abandon`). Not thread-safe: one writer per episode,
    driven from one thread (the recorder's event loop).

    ``chunk_frames`` is an upper bound: large screens get fewer rows per chunk
    (:func:`chunk_rows_for`); the attribute holds what is used.
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
        if len(meta.button_names) > _MAX_BUTTONS:
            raise DatasetError(f"{len(meta.button_names)} button names; a button mask holds at most {_MAX_BUTTONS}")
        self.meta = meta
        self.frame_shape = tuple(int(x) for x in frame_shape)
        self.ram_size = int(ram_size)
        self.buttons_per_step = int(buttons_per_step)
        self.chunk_frames = chunk_rows_for(self.frame_shape, self.ram_size, int(chunk_frames))
        self.level = level
        self._codec = ChunkCodec(level)
        self._undeclared_buttons = undeclared_button_bits(meta.button_names)
        # -1 is "no action" (human play); without profile actions any int16 is kept.
        self._action_limit = len(meta.action_names) or 2**15
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError.of(exc, directory) from exc
        base = f"{_safe(meta.game)}_{_stamp(meta.created)}_{_safe(meta.session_id)}_{meta.episode_index:05d}"
        self.path = self._unique(directory, base)
        self.temp_path = temp_path_for(self.path)
        self.n_steps = 0
        self._closed = False
        self._begun = False

        # "w-": fail rather than clobber if two writers ever race for one name.
        try:
            self._file = h5py.File(self.temp_path, "w-")
        except OSError as exc:
            raise StorageError.of(exc, directory) from exc
        try:
            self._file.attrs["schema_version"] = SCHEMA_VERSION
            self._file.attrs["complete"] = 0
            for key, value in meta.to_attrs().items():
                self._file.attrs[key] = value
            self._frames = create_zstd_dataset(
                self._file, "frames", self.frame_shape, np.uint8, self.chunk_frames, level
            )
            self._ram = create_zstd_dataset(self._file, "ram", (self.ram_size,), np.uint8, self.chunk_frames, level)
            if start_state is not None:
                state = np.frombuffer(bytes(start_state), dtype=np.uint8)
                rows = max(1, min(len(state), 1 << 22))
                ds = create_zstd_dataset(self._file, "start_state", (), np.uint8, rows, level)
                write_rows(ds, 0, state, self._codec)
            self._file.flush()
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._file.close()
            self.temp_path.unlink(missing_ok=True)
            if isinstance(exc, (ValueError, TypeError, OverflowError, UnicodeError)):
                raise DatasetError(f"episode metadata cannot be stored ({_one_line(exc)})") from exc
            if (disk := _disk_error(exc)) is not None:
                raise StorageError.of(disk, directory) from exc
            raise
        self._frame_bytes = math.prod(self.frame_shape)

        # Rows of the chunk being filled. step() only keeps references (copying only arrays the
        # caller could still change): compressing them is the compressor threads' job, off the
        # recorder's event loop. They stream the rows straight into zstd (no gathering buffer:
        # a fresh one per chunk page-faults on first touch, which costs more than the copy,
        # ~90 us per Genesis step instead of ~20 us; zstd's own window is allocated once).
        self._rows_f: list[np.ndarray] = []
        self._rows_r: list[np.ndarray] = []
        self._flushed_rows = 0  # observation rows handed to the worker so far
        self._pool = concurrent.futures.ThreadPoolExecutor(_COMPRESSOR_THREADS, thread_name_prefix="episode-zstd")
        self._file_lock = threading.Lock()  # chunks compress concurrently; the file is written by one at a time
        self._pending: list[concurrent.futures.Future[None]] = []

        k = self.buttons_per_step
        self._buttons = _Column(np.uint32, (k,))
        self._actions = _Column(np.int16)
        self._actors = _Column(np.uint8)
        self._policy_versions = _Column(np.int32)
        self._rewards = _Column(np.float32)
        self._counters = _Column(np.uint64)
        self._timestamps = _Column(np.float64)
        self._gaps = _Column(np.int64, (3,))

    @staticmethod
    def _unique(directory: Path, base: str) -> Path:
        candidate = directory / f"{base}.h5"
        n = 1
        # Our own temporary name, and the ownerless one older versions used.
        while (
            candidate.exists()
            or temp_path_for(candidate).exists()
            or (directory / f".{candidate.name}.partial").exists()
        ):
            candidate = directory / f"{base}-{n}.h5"
            n += 1
        return candidate

    # -- checking values (before anything is stored) -------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DatasetError(f"episode writer for {self.path.name} is already closed")

    def _checked_observation(
        self, where: str, frame: np.ndarray, ram: np.ndarray, frame_counter: object, timestamp: object
    ) -> tuple[int, float]:
        if frame.shape != self.frame_shape:
            raise DatasetError(
                f"{where}: frame shape {frame.shape} differs from the episode's {self.frame_shape}; "
                "end the episode (SCREEN_CHANGED) and start a new one"
            )
        if ram.shape != (self.ram_size,):
            raise DatasetError(f"{where}: RAM of {ram.shape} bytes differs from the episode's {self.ram_size}")
        if frame.dtype != np.uint8 or ram.dtype != np.uint8:
            raise DatasetError(f"{where}: frame and RAM must be uint8, got {frame.dtype} and {ram.dtype}")
        counter = _int_in(f"{where}: frame counter", frame_counter, 0, FRAME_COUNTER_LIMIT)
        return counter, _finite(f"{where}: timestamp", timestamp)

    def _checked_buttons(self, where: str, buttons: np.ndarray) -> list[int]:
        if not isinstance(buttons, np.ndarray):
            buttons = np.asarray(buttons)
        if buttons.shape != (self.buttons_per_step,):
            raise DatasetError(
                f"{where}: {buttons.shape} button masks, expected ({self.buttons_per_step},): "
                "one per emulated frame of the step"
            )
        if buttons.dtype.kind not in "uib":
            raise DatasetError(f"{where}: button masks of dtype {buttons.dtype}; expected unsigned integers")
        masks = buttons.tolist()  # a few ints: plain Python is faster than numpy ufuncs here
        bits = 0
        for m in masks:
            if m < 0:
                raise DatasetError(f"{where}: button masks {masks} are negative")
            bits |= int(m)
        if bits >= _U32:
            raise DatasetError(f"{where}: button masks {masks} do not fit in 32 bits")
        if bits & self._undeclared_buttons:
            raise DatasetError(
                f"{where}: button masks {masks} set bits beyond the {len(self.meta.button_names)} declared buttons"
            )
        return masks

    def _checked_step(
        self,
        *,
        frame: np.ndarray,
        ram: np.ndarray,
        frame_counter: object,
        timestamp: object,
        buttons: np.ndarray,
        action: object,
        actor: object,
        policy_version: object,
        reward: object,
    ) -> tuple[int, float, list[int], int, int, int, float]:
        self._check_open()
        if not self._begun:
            raise DatasetError("step() before begin(): an episode needs its start observation")
        where = f"step {self.n_steps + 1}"
        counter, ts = self._checked_observation(where, frame, ram, frame_counter, timestamp)
        masks = self._checked_buttons(where, buttons)
        act = _int_in(f"{where}: action", action, -1, self._action_limit)
        who = _int_in(f"{where}: actor", actor, 0, 256)
        if who not in _ACTOR_CODES:
            raise DatasetError(f"{where}: actor {who} is not one of {[a.value for a in Actor]}")
        version = _int_in(f"{where}: policy version", policy_version, -_I32, _I32)
        rew = _finite(f"{where}: reward", reward, _F32_MAX)
        return counter, ts, masks, act, who, version, rew

    def check_step(self, **step: Any) -> None:
        """Raise the DatasetError :meth:`step` would raise for these keywords, storing nothing.

        Lets a caller validate a whole message before it changes any state of its own.
        """
        self._checked_step(**step)

    # -- observations ----------------------------------------------------------------

    def _keep_observation(self, frame: np.ndarray, ram: np.ndarray, counter: int, ts: float) -> None:
        # A read-only array (a view of an immutable message, as the recorder passes) cannot
        # change under us; anything writable might be reused by the caller, so copy it.
        self._rows_f.append(frame if not frame.flags.writeable else frame.copy())
        self._rows_r.append(ram if not ram.flags.writeable else ram.copy())
        self._counters.append(counter)
        self._timestamps.append(ts)

    def _hand_off_if_full(self) -> None:
        if len(self._rows_f) == self.chunk_frames:
            self._hand_off()

    def _hand_off(self) -> None:
        """Give the chunk's rows to a compressor thread (waits when too many are in flight)."""
        self._raise_worker_errors()
        while len(self._pending) >= _MAX_PENDING:  # back-pressure bounds the rows held in memory
            concurrent.futures.wait(self._pending, return_when=concurrent.futures.FIRST_COMPLETED)
            self._raise_worker_errors()
        rows_f, rows_r, first = self._rows_f, self._rows_r, self._flushed_rows
        self._rows_f, self._rows_r = [], []
        self._flushed_rows += len(rows_f)  # before submitting: the worker empties the list
        self._pending.append(self._pool.submit(self._write_chunk, rows_f, rows_r, first))

    def _write_chunk(self, rows_f: list[np.ndarray], rows_r: list[np.ndarray], first: int) -> None:
        # Runs on a compressor thread; file writes are serialised by _file_lock.
        n = len(rows_f)
        frames = self._codec.compress_parts(_consumed(rows_f), self.chunk_frames * self._frame_bytes)
        ram = self._codec.compress_parts(_consumed(rows_r), self.chunk_frames * self.ram_size)
        with self._file_lock:
            # Chunks may finish out of order; each write only ever grows a dataset.
            write_compressed(self._frames, first, n, [frames])
            write_compressed(self._ram, first, n, [ram])

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
        counter, ts = self._checked_observation("observation 0", frame, ram, frame_counter, timestamp)
        self._keep_observation(frame, ram, counter, ts)
        self._begun = True
        try:
            self._hand_off_if_full()
        except (OSError, RuntimeError) as exc:
            raise self._failed(exc) from exc

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

        Values the file cannot hold or ``verify`` would reject raise DatasetError and
        store nothing: the episode stays as it was and can still be closed. Every
        ``chunk_frames``-th call hands a full chunk to a compressor thread and re-raises
        that thread's earlier error, if any: a disk that refused a write (full, quota,
        size limit) raises StorageError, the episode already discarded (:meth:`_failed`).
        """
        counter, ts, masks, act, who, version, rew = self._checked_step(
            frame=frame, ram=ram, frame_counter=frame_counter, timestamp=timestamp, buttons=buttons,
            action=action, actor=actor, policy_version=policy_version, reward=reward,
        )  # fmt: skip
        self._keep_observation(frame, ram, counter, ts)
        self._buttons.append(masks)
        self._actions.append(act)
        self._actors.append(who)
        self._policy_versions.append(version)
        self._rewards.append(rew)
        self.n_steps += 1
        try:
            self._hand_off_if_full()
        except (OSError, RuntimeError) as exc:
            raise self._failed(exc) from exc

    def add_gap(self, step: int, expected_frame: int, got_frame: int) -> None:
        """Record that observation ``step`` (its row in ``frames``/``frame_counters``,
        i.e. the 1-based number of the step that produced it) carried frame counter
        ``got_frame`` where ``expected_frame`` was due: frames dropped or repeated,
        as reported by the recorder. Call it before or after that step's
        :meth:`step` (``step`` is at most one past the steps recorded so far);
        several gaps may name the same observation. A gap naming a step the episode
        never got (it ended first) describes nothing stored and is left out of the file.
        """
        self._check_open()
        row = _int_in("gap step", step, 1, self.n_steps + 2)
        expected = _int_in(f"gap at step {row}: expected frame", expected_frame, 0, FRAME_COUNTER_LIMIT)
        got = _int_in(f"gap at step {row}: frame counter", got_frame, 0, FRAME_COUNTER_LIMIT)
        self._gaps.append((row, expected, got))

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
        Every value was checked when it was given, so only the disk can fail here: then
        StorageError, the episode discarded and its temporary file removed.
        """
        self._check_open()
        try:
            reason = EndReason(reason)
        except ValueError:
            raise DatasetError(f"{reason!r} is not an end reason; use one of {[r.label for r in EndReason]}") from None
        if not self._begun:
            self.abandon()
            self.temp_path.unlink(missing_ok=True)
            raise DatasetError("episode closed before its first observation; nothing was saved")
        try:
            if self._rows_f:
                self._hand_off()
            self._drain()
            self._pool.shutdown(wait=True)
            n = self.n_steps
            terminated = np.zeros(n, dtype=bool)
            truncated = np.zeros(n, dtype=bool)
            if n:
                (terminated if reason.terminal else truncated)[-1] = True
            rewards = self._rewards.array()
            self._write_small("buttons", self._buttons.array())
            self._write_small("actions", self._actions.array())
            self._write_small("actors", self._actors.array())
            self._write_small("policy_versions", self._policy_versions.array())
            self._write_small("rewards", rewards)
            self._write_small("terminated", terminated)
            self._write_small("truncated", truncated)
            self._write_small("frame_counters", self._counters.array())
            self._write_small("timestamps", self._timestamps.array())
            gaps = self._gaps.array()
            self._write_small("gaps", gaps[gaps[:, 0] <= n])
            attrs = self._file.attrs
            attrs["n_steps"] = n
            attrs["end_reason"] = int(reason)
            attrs["end_reason_label"] = reason.label
            # Sum in float64 of the stored float32 rewards, so check() can recompute it.
            attrs["return"] = float(rewards.astype(np.float64).sum())
            attrs["chunk_frames"] = self.chunk_frames
            attrs["zstd_level"] = self.level
            attrs["closed"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            attrs[DIGEST_ATTR] = layout_digest(self._file)
            self._file.flush()
            # Set last: a file whose close was cut short never claims to be complete.
            attrs["complete"] = 1
            self._file.close()
            self._closed = True
            commit(self.temp_path, self.path)
        except (OSError, RuntimeError) as exc:
            raise self._failed(exc) from exc
        except BaseException:
            self.abandon()
            raise
        return self.path

    def _failed(self, exc: OSError | RuntimeError) -> StorageError:
        """The disk refused a write (full, quota, size limit, read-only): a file with a chunk missing
        cannot be finished, so the episode is discarded, which also frees its space (issue 11
        item 2: never a file that ``verify`` rejects, never a leftover to clean). Re-raises
        ``exc`` when it is not the disk's (a RuntimeError of our own), after abandoning the file.
        """
        self.abandon()
        disk = _disk_error(exc)
        if disk is None:
            raise exc
        with contextlib.suppress(OSError):
            self.temp_path.unlink(missing_ok=True)
        return StorageError.of(disk, self.path.parent)

    def abandon(self) -> None:
        """Close the file handle without completing or renaming it (tests, fatal errors).

        The temporary file stays on disk; readers refuse it, ``sonic-rec ls``
        reports it and ``sonic-rec verify --clean`` removes it once this process
        has ended (``dataset.leftovers``).
        """
        self._closed = True
        with contextlib.suppress(Exception):
            self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            if self._file.id.valid:
                self._file.close()


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
            raise DatasetError(f"{self.path} is not an HDF5 file ({_one_line(exc)})") from exc
        try:
            self._open_checks()
        except BaseException:
            self._file.close()
            raise
        # Schema 2 promises a checksum in every chunk: a chunk without one is damage.
        self._codec = ChunkCodec(require_checksum=self.checksummed)

    def _open_checks(self) -> None:
        try:
            self._read_header()
        except DatasetError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise DatasetError(
                f"{self.path}: episode metadata is unreadable ({_one_line(exc)}); the file is damaged"
            ) from exc

    def _read_header(self) -> None:
        attrs = self._file.attrs
        if "schema_version" not in attrs:
            raise DatasetError(f"{self.path} is an HDF5 file but not a sonic-rl episode")
        version = int(attrs["schema_version"])
        if version not in READABLE_SCHEMAS:
            raise DatasetError(
                f"{self.path} uses episode schema {version}; this sonic-rl reads schemas "
                f"{', '.join(map(str, READABLE_SCHEMAS))}; use a matching sonic-rl version"
            )
        #: The file's schema; 1 = written before checksums (damage inside a chunk may go unseen).
        self.schema_version = version
        self.checksummed = version >= 2
        if int(attrs.get("complete", 0)) != 1:
            raise DatasetError(
                f"{self.path} is an incomplete episode (its writer never finished); "
                "delete it or record the episode again"
            )
        if self.checksummed and _plain(attrs.get(DIGEST_ATTR)) != layout_digest(self._file):
            raise DatasetError(
                f"{self.path}: its attributes or dataset shapes do not match the checksum written with them; "
                "the file is damaged"
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
        except (OSError, RuntimeError, ValueError) as exc:
            raise DatasetError(f"{self.path}: dataset {name!r} is unreadable ({_one_line(exc)})") from exc

    def _rows(self, name: str, start: int, stop: int | None) -> np.ndarray:
        ds = self._dataset(name)
        start, stop, _ = slice(start, stop).indices(ds.shape[0])
        try:
            return read_rows(ds, start, max(start, stop), self._codec)
        except DatasetError as exc:
            raise DatasetError(f"{self.path.name}: {exc}") from exc

    def _all(self, name: str) -> np.ndarray:
        return self._rows(name, 0, None)

    def frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Observations ``start:stop`` as (n, H, W, 3) uint8; decodes only the chunks needed."""
        return self._rows("frames", start, stop)

    def iter_frame_chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index of the first frame, frames) for each stored chunk, in order."""
        return self.iter_chunks("frames")

    def iter_chunks(self, name: str) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) for each stored chunk of dataset ``name``, in order; each chunk is checked."""
        ds = self._dataset(name)
        try:
            yield from iter_chunks(ds, self._codec)
        except DatasetError as exc:
            raise DatasetError(f"{self.path.name}: {exc}") from exc

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
        try:
            return {name: obj for name, obj in self._file.items() if isinstance(obj, h5py.Dataset)}
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise DatasetError(f"{self.path}: its datasets are unreadable ({_one_line(exc)})") from exc

    @property
    def attrs(self) -> dict[str, object]:
        """All root attributes, decoded (for ``describe``)."""
        out: dict[str, object] = {}
        for key, value in self._file.attrs.items():
            out[key] = value.decode() if isinstance(value, bytes) else value
        return out
