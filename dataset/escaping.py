"""Text from outside made safe to log and print: the one rule, in the bottom layer (issue 11 item 5).

A client controls the strings of its HELLO (name, version, emulator, core, ROM name and hash, game,
button names, policy id) and the words of its ERROR messages, and an episode file's metadata keeps
them. Written out as they are, a newline forges log lines (``...\\n12:00:00 INFO sonic_rl: all
fine``), an ANSI escape sequence rewrites the terminal (clears it, moves the cursor, sets the
window title, hides what follows) and a bidi override reverses what is shown.

:func:`printable` keeps every printable character, any script or emoji, and writes each other one
(C0 and C1 controls, DEL, line and paragraph separators, format characters such as bidi
overrides, unassigned code points) as its Python escape: ``\\n``, ``\\x1b``, ``\\u202e``. The
recorder applies it to client text it logs, ``sonic-rec show`` and ``ls`` to metadata they print,
and ``recorder.console`` to every one-line error it shows.
"""

from __future__ import annotations

__all__ = ["printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object) -> str:
    """``str(text)`` with every non-printable character escaped (``str.isprintable``'s rule)."""
    s = str(text)
    if s.isprintable():  # the common case: nothing to do, no copy
        return s
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in s)
