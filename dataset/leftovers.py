"""Temporary files and folders left behind by crashed writers: finding them and removing the stale ones.

Every temporary name sonic-rl makes says who owns it (``dataset.atomic.temp_path_for``):
``.NAME.partial-PID@HOST``, for episode files being recorded, checkpoints and run files
being written, and replay-cache folders being built. This module is the one rule that
decides whether such a leftover may be deleted, for ``sonic-rec verify --clean`` and for
the trainer's run and cache folders:

- **running**: HOST is this machine and process PID is alive. Never removed. (If the PID
  was reused by an unrelated process after a crash, the file is kept until that process
  ends: the rule errs towards keeping.)
- **gone**: HOST is this machine and no process PID exists. Stale: removed by a clean-up.
- **unknown**: HOST is another machine (a folder shared over the network; a PID says
  nothing about another machine's processes), or the name carries no owner. Not removed.

Liveness is checked by asking the OS whether the PID exists (``os.kill(pid, 0)`` on
POSIX; ``OpenProcess`` + ``GetExitCodeProcess`` on Windows, where ``os.kill`` would
*terminate* the process), not by a lock: a lock needs a second handle on a file that
HDF5 or ``torch.save`` is writing, does not exist for folders on Windows, and a
lock-holding writer stuck on a network share would look the same as a dead one.

Names written by earlier versions are recognised too: ``.NAME.partial-PID`` and
``NAME.partial-PID`` (no host: taken to be this machine's), and the old episode name
``.NAME.h5.partial`` (no owner at all), which counts as gone once untouched for
:data:`OWNERLESS_STALE_SECONDS` (a live writer adds a chunk every few seconds).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dataset import portability
from dataset.atomic import host_name

__all__ = [
    "OWNERLESS_STALE_SECONDS",
    "Leftover",
    "Owner",
    "clean_stale",
    "find_leftovers",
    "is_temp_name",
    "parse_temp_name",
    "process_alive",
    "remove_stale",
]

#: An ownerless temporary name (``.NAME.h5.partial``, written by sonic-rl before names carried
#: their owner) counts as stale once its file has not changed for this long.
OWNERLESS_STALE_SECONDS = 24 * 3600

# ".NAME.partial-PID@HOST", ".NAME.partial-PID", "NAME.partial-PID[@HOST]" (the replay cache's
# folders), or the ownerless ".NAME.partial" (hidden only: a user's "x.partial" is not ours).
_OWNED = re.compile(r"^\.?(?P<final>.+?)\.partial-(?P<pid>\d{1,10})(?:@(?P<host>[A-Za-z0-9.-]+))?$")
_OWNERLESS = re.compile(r"^\.(?P<final>.+)\.partial$")


class Owner(enum.Enum):
    """What is known about the process that owns a temporary name."""

    RUNNING = "running"  # alive on this machine: never removed
    GONE = "gone"  # no longer running: the leftover is stale
    UNKNOWN = "unknown"  # another machine's, or no owner in the name: kept


@dataclass(frozen=True)
class Leftover:
    """One temporary file or folder found by :func:`find_leftovers`."""

    path: Path
    final_name: str  # the name it would have been renamed to
    pid: int | None
    host: str | None  # None: the name does not say (taken as this machine when a PID is given)
    owner: Owner
    size: int  # bytes (for a folder, the files in it)

    @property
    def stale(self) -> bool:
        """True when a clean-up may remove it (its owner is known to be gone)."""
        return self.owner is Owner.GONE

    def explain(self) -> str:
        """Why it is (or is not) stale, in a few words for a one-line report."""
        if self.pid is None:
            if self.owner is Owner.GONE:
                return f"left by an older sonic-rl, untouched for over {OWNERLESS_STALE_SECONDS // 3600} h"
            return "left by an older sonic-rl (no owner in its name), changed recently"
        where = f"process {self.pid}" + (f" on {self.host}" if self.host else "")
        if self.owner is Owner.RUNNING:
            return f"being written by {where}, which is running"
        if self.owner is Owner.GONE:
            return f"left by {where}, which is no longer running"
        return f"written by {where}; whether it still runs cannot be told from this machine"


def parse_temp_name(name: str) -> tuple[str, int | None, str | None] | None:
    """``(final name, pid, host)`` of a temporary name, or None if ``name`` is not one."""
    m = _OWNED.match(name)
    if m:
        host = m.group("host")
        return m.group("final"), int(m.group("pid")), host.lower() if host else None
    m = _OWNERLESS.match(name)
    if m:
        return m.group("final"), None, None
    return None


def is_temp_name(name: str) -> bool:
    """True for a name :func:`dataset.atomic.temp_path_for` makes (or an earlier version made)."""
    return parse_temp_name(name) is not None


def _windows_process_alive(pid: int) -> bool:
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    # Declared, so that a 64-bit HANDLE is not truncated to a C int.
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.GetExitCodeProcess.restype = wintypes.BOOL
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    process_query_limited_information = 0x1000
    still_active = 259
    error_access_denied = 5
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        # Access denied: the process exists but belongs to someone else. Anything else
        # (ERROR_INVALID_PARAMETER): there is no such process.
        return ctypes.get_last_error() == error_access_denied  # type: ignore[attr-defined]
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: keep
        # A process that exited with code 259 would look alive: the rule errs towards keeping.
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (errs towards True when it cannot tell)."""
    if not 0 < pid < 2**31:  # no OS hands out such a PID (Windows: multiples of 4 below 2^32, in practice far less)
        return False
    if pid == os.getpid():
        return True
    if not portability.POSIX:
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence and permission check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return True  # e.g. EINVAL for a PID beyond the system's range: cannot tell, keep
    return True


def _owner(path: Path, pid: int | None, host: str | None, now: float) -> Owner:
    if pid is None:
        try:
            age = now - path.stat().st_mtime
        except OSError:
            return Owner.UNKNOWN
        return Owner.GONE if age > OWNERLESS_STALE_SECONDS else Owner.UNKNOWN
    if host is not None and host != host_name():
        return Owner.UNKNOWN
    return Owner.RUNNING if process_alive(pid) else Owner.GONE


def _size(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            total = 0
            for root, _, files in os.walk(path):
                for name in files:
                    with contextlib.suppress(OSError):
                        total += (Path(root) / name).lstat().st_size
            return total
        return path.lstat().st_size
    except OSError:
        return 0


def _leftover(path: Path, now: float) -> Leftover | None:
    parsed = parse_temp_name(path.name)
    if parsed is None:
        return None
    final, pid, host = parsed
    return Leftover(path, final, pid, host, _owner(path, pid, host, now), _size(path))


def find_leftovers(paths: Iterable[Path | str]) -> list[Leftover]:
    """Temporary files and folders under ``paths`` (folders searched recursively), sorted by path.

    A temporary folder is reported as one leftover, not searched into. Paths that do
    not exist are skipped (a run folder not made yet has no leftovers).
    """
    now = time.time()
    found: dict[Path, Leftover] = {}
    for item in paths:
        top = Path(item)
        if not top.is_dir():
            left = _leftover(top, now) if top.exists() or top.is_symlink() else None
            if left:
                found.setdefault(top.resolve(), left)
            continue
        for root, dirs, files in os.walk(top):
            here = Path(root)
            kept = []
            for name in dirs:
                left = _leftover(here / name, now)
                if left:
                    found.setdefault(left.path.resolve(), left)
                else:
                    kept.append(name)
            dirs[:] = kept  # do not search inside a temporary folder
            for name in files:
                left = _leftover(here / name, now)
                if left:
                    found.setdefault(left.path.resolve(), left)
    return sorted(found.values(), key=lambda x: str(x.path))


def remove_stale(leftovers: Iterable[Leftover]) -> tuple[list[Leftover], list[tuple[Leftover, str]]]:
    """Delete the stale ones among ``leftovers``; ``(removed, [(not removed, why), ...])``.

    The owner is checked again just before each removal; a leftover that is not (or no
    longer) stale is skipped silently. Never raises for a file it cannot remove.
    """
    removed: list[Leftover] = []
    failed: list[tuple[Leftover, str]] = []
    now = time.time()
    for left in leftovers:
        if not left.stale or _owner(left.path, left.pid, left.host, now) is not Owner.GONE:
            continue
        try:
            if left.path.is_dir() and not left.path.is_symlink():
                shutil.rmtree(left.path)
            else:
                left.path.unlink()
        except FileNotFoundError:
            removed.append(left)  # someone else removed it meanwhile: gone either way
        except OSError as exc:
            failed.append((left, exc.strerror or str(exc)))
        else:
            removed.append(left)
    return removed, failed


def clean_stale(paths: Iterable[Path | str]) -> tuple[list[Leftover], list[tuple[Leftover, str]]]:
    """Find and remove the stale temporary files under ``paths`` (e.g. a run folder or cache folder).

    For the trainer: ``clean_stale([run_dir])`` after a crash, ``clean_stale([cache_dir])``
    before building a replay cache. Returns what :func:`remove_stale` returns.
    """
    return remove_stale(find_leftovers(paths))
