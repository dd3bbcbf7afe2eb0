"""What long commands show at a terminal: one progress bar each, with log lines printed above it.

Every command (``sonic-rec record``, ``export``; ``sonic-train offline``, ``eval``,
``online``) makes its bar with :class:`Bar` and prints its notes with :func:`echo`,
and :func:`setup_logging` sends log records through the same path, so a log line
never leaves a frozen copy of the bar behind (issue 12: lines and bars tangled).
The mechanism is tqdm's own: ``tqdm.write`` clears the bars, prints the line and
draws them again (what ``tqdm.contrib.logging.logging_redirect_tqdm`` installs
for a block; here it is installed once, for the whole command).

When standard error is not a terminal (a log file, a pipe, CI) there is no bar at
all: tqdm redraws a bar with ``\\r`` on every refresh, and 5,000 updates written
to a file came to 281 KB of them (issue 12). Commands that run for hours say
how they are doing with :class:`Bar`'s ``lines_every`` instead: a plain line every
so many seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

__all__ = ["Bar", "echo", "is_terminal", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def is_terminal() -> bool:
    """True when standard error (where bars and notes go) is an interactive terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def echo(message: str) -> None:
    """One line for the person running the command (standard error), printed above any bar."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()


class _BarSafeHandler(logging.Handler):
    """A log handler that prints through :func:`echo` (tqdm's redirect handler, installed for good)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            echo(self.format(record))
        except Exception:
            self.handleError(record)


def setup_logging(level: int | str = logging.INFO) -> None:
    """Log to standard error through the bars; replaces the root logger's handlers."""
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    handler = _BarSafeHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # websockets logs every connection at INFO; ours already says who connected and why it ended.
    logging.getLogger("websockets").setLevel(logging.WARNING)


class Bar:
    """A tqdm bar at a terminal; elsewhere, no bar and (with ``lines_every``) a plain status line now and then.

    ``describe`` gives the status line's text (the bar shows it as its postfix);
    call :meth:`refresh` whenever it may have changed.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        *,
        enabled: bool = True,
        initial: int = 0,
        lines_every: float | None = None,
    ) -> None:
        self.desc = desc
        self.unit = unit
        self.total = total
        self.lines_every = lines_every
        self.n = initial
        self._postfix = ""
        self._last_line = time.monotonic()
        self.terminal = enabled and is_terminal()
        self._lines = enabled and not self.terminal and lines_every is not None
        self._tqdm: tqdm[Any] | None = None
        if self.terminal:
            self._tqdm = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                              file=sys.stderr, smoothing=0.1)  # fmt: skip

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        self._maybe_line()

    def set_postfix(self, text: str) -> None:
        self._postfix = text
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(text, refresh=True)
        self._maybe_line()

    def set_n(self, n: int) -> None:
        """Move the bar to ``n`` (a counter read from elsewhere)."""
        if n != self.n:
            self.update(n - self.n)

    def line(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        return f"{self.desc}: {self.n}{of} {self.unit}" + (f", {self._postfix}" if self._postfix else "")

    def _maybe_line(self) -> None:
        if not self._lines or self.lines_every is None:
            return
        now = time.monotonic()
        if now - self._last_line >= self.lines_every:
            self._last_line = now
            echo(self.line())

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

