"""Where POSIX and Windows differ: one switch, and the fallback for every POSIX-only call.

Most BizHawk users run Windows (issue 12, item 6). Three calls the recorder and
trainer need exist only on POSIX, and each has its Windows form here:

* ``loop.add_signal_handler`` (asyncio: Ctrl-C and SIGTERM save open episodes) is
  not implemented by Windows' event loops; :func:`on_signals` falls back to
  ``signal.signal`` with a handler that hands the call to the loop
  (``call_soon_threadsafe``, which also wakes a loop waiting on I/O);
* ``start_new_session`` (keep a terminal's Ctrl-C away from emulator clients, so the
  recorder can stop them cleanly) becomes ``CREATE_NEW_PROCESS_GROUP``, whose members
  Windows does not send CTRL_C_EVENT to (:func:`detached_process_kwargs`);
* fsync of a folder (``os.open(dir)``; makes a rename durable) cannot be done on
  Windows, which has no handle to a directory to flush; NTFS journals the rename
  instead, so ``dataset.atomic.fsync_dir`` skips it (:func:`can_fsync_folders`).

Every such branch reads :data:`POSIX` when it runs, so a test can set this one
attribute to False and drive the recorder and trainer down the Windows paths on
Linux (tests/dataset/test_portability.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["POSIX", "can_fsync_folders", "detached_process_kwargs", "on_signals"]

#: False on Windows. Read at call time, never copied: tests flip it.
POSIX: bool = os.name != "nt"

#: The signals that mean "stop, and save what you have" (Windows delivers SIGINT on Ctrl-C,
#: and SIGTERM only when raised in-process, but the handler costs nothing there).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def can_fsync_folders() -> bool:
    """Whether a folder can be opened and fsync-ed (POSIX), to make a rename in it durable."""
    return POSIX


def detached_process_kwargs() -> dict[str, Any]:
    """``subprocess.Popen`` arguments that keep a terminal's Ctrl-C from reaching the child."""
    if POSIX:
        return {"start_new_session": True}
    # 0 where the flag does not exist (a POSIX machine with the switch turned off, in tests).
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


class EventLoop(Protocol):
    """The calls :func:`on_signals` makes on an asyncio event loop. Typed by shape, so the bottom layer
    imports no asyncio: ``recorder.session`` reaches this module and must stay free of I/O libraries
    (docs/architecture.md, tests/test_architecture.py)."""

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None: ...

    def remove_signal_handler(self, sig: int) -> bool: ...

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Any: ...


def on_signals(loop: EventLoop, callback: Callable[[str], None]) -> Callable[[], None]:
    """Call ``callback(signal name)`` on ``loop`` for SIGINT and SIGTERM; returns the function that undoes it.

    Must be called from the main thread (Python runs signal handlers there only).
    """
    if POSIX:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, callback, sig.name)

        def undo() -> None:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

        return undo

    def handler(signum: int, _frame: object) -> None:
        loop.call_soon_threadsafe(callback, signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
