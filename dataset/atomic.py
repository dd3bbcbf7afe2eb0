"""Crash-safe file writes: the one place that writes a temporary file, fsyncs it and renames it into place.

A reader sees either the old file or the whole new one, never a half-written
one, even after a crash or a power cut:

1. the data goes to a temporary name in the target's folder (same file system,
   so the rename is atomic);
2. the temporary file is flushed and ``fsync``-ed;
3. ``os.replace`` renames it over the target (atomic on POSIX and, within a
   volume, on Windows);
4. the folder is ``fsync``-ed so the rename itself is durable (POSIX: a rename
   lives in the directory entry; Windows has no directory handles to fsync, and
   NTFS journals the rename, so this step is skipped there).

Episode files (``dataset.episode``), checkpoints, run configs and the online
run's metadata all go through :func:`commit` or :func:`atomic_write`.

Temporary names say who owns them: ``.NAME.partial-PID@HOST`` (:func:`temp_path_for`),
so that ``dataset.leftovers`` can tell a file a live process is still writing from
one a crashed process left behind, on Windows as on POSIX, without any lock.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import IO

from dataset import portability
from dataset.errors import ConfigError

__all__ = [
    "TEMP_MARK",
    "atomic_write",
    "atomic_write_text",
    "check_writable_folder",
    "commit",
    "fsync_dir",
    "host_name",
    "owner_tag",
    "temp_path_for",
]

#: Temporary files (and folders) are named ``.NAME.partial-PID@HOST``: hidden, and naming the
#: process and machine that own them, so a clean-up can tell a live writer's file from a
#: crashed one's (``dataset.leftovers``; a PID means nothing on another machine sharing the folder).
TEMP_MARK = ".partial-"


@functools.cache
def host_name() -> str:
    """This machine's name as temporary names carry it: lower case, only ``[a-z0-9.-]``."""
    name = re.sub(r"[^a-z0-9.-]+", "-", socket.gethostname().lower()).strip("-.")
    return name or "localhost"


def owner_tag() -> str:
    """``PID@HOST`` of this process, as :func:`temp_path_for` puts it in a name."""
    return f"{os.getpid()}@{host_name()}"


def temp_path_for(final: Path) -> Path:
    """The temporary name this process writes ``final`` under (a file or a folder)."""
    final = Path(final)
    return final.with_name(f".{final.name}{TEMP_MARK}{owner_tag()}")


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where folders cannot be opened: Windows)."""
    if not portability.can_fsync_folders():
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    # Opened for writing: Windows' FlushFileBuffers needs a handle with write access.
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(temp: Path, final: Path) -> Path:
    """fsync the finished ``temp``, rename it to ``final`` and fsync the folder; returns ``final``."""
    _fsync_file(temp)
    os.replace(temp, final)
    fsync_dir(final.parent)
    return final


def atomic_write(final: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``final`` by calling ``write`` on a binary file object; all or nothing."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(final)
    try:
        with open(temp, "wb") as f:
            write(f)
        return commit(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def atomic_write_text(final: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``final``; all or nothing."""
    return atomic_write(final, lambda f: f.write(text.encode("utf-8")))



#: Bytes the probe of :func:`check_writable_folder` writes: one file-system block, so that a file
#: system with no free block left refuses it as it would the first chunk of an episode.
_PROBE_BYTES = 4096


def check_writable_folder(folder: Path, option: str = "--out") -> None:
    """Create ``folder`` if missing and prove that a file can be written and synced there.

    A read-only, full or missing-parent folder then fails at start, as one line naming ``option``
    (issue 11 item 2), not as a traceback or an internal error at the first episode. The probe is
    a temporary name this process owns (so ``sonic-rec verify --clean`` knows it if we are killed)
    and is removed at once.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder} is a file, not a folder: choose a folder for the output")
    probe = temp_path_for(folder / "write-probe")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(bytes(_PROBE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot write to {option} {folder} ({why}): choose a writable folder with free space"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
