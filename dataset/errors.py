"""The one exception tree of sonic-rl.

::

    SonicRLError
     ├── UsageError              a user's mistake: shown as one line, never a traceback
     │    ├── ProfileError       unknown game, bad profile TOML
     │    ├── DatasetError       not an episode file, incomplete file, mixed games
     │    │    └── StorageError  the output folder stopped taking data (full, quota, size limit, read-only)
     │    ├── ConfigError        bad flag combination, run folder mismatch, no CUDA
     │    └── ReplayMismatch     ``verify --replay`` found stored data the emulator does not reproduce
     ├── ProtocolError           the peer broke docs/protocol.md; carries an ErrorCode
     │    ├── MalformedMessage
     │    ├── UnknownMessageKind
     │    ├── VersionMismatch
     │    ├── MessageTooLarge
     │    ├── UnexpectedMessage
     │    ├── AuthenticationFailed
     │    └── UnknownGame
     ├── RemoteError             the other side sent an ERROR message (client side)
     └── Disconnected            the websocket closed; carries the peer's close code and reason

It lives in the bottom layer (``dataset``), so every package can import it without
an import cycle: ``dataset`` imports nothing of ``recorder`` or ``trainer``.

Exactly one place turns a ProtocolError into what the peer sees
(``recorder.server``: an ERROR message, then a websocket close with the same
code), and exactly one place turns a UsageError into what the user sees
(``recorder.console.run_cli``): the style of python-websockets' ``exceptions.py``.
"""

from __future__ import annotations

import enum
import errno
import os
from pathlib import Path

__all__ = [
    "AuthenticationFailed",
    "ConfigError",
    "DatasetError",
    "Disconnected",
    "ErrorCode",
    "MalformedMessage",
    "MessageTooLarge",
    "ProfileError",
    "ProtocolError",
    "RemoteError",
    "ReplayMismatch",
    "SonicRLError",
    "StorageError",
    "UnexpectedMessage",
    "UnknownGame",
    "UnknownMessageKind",
    "UsageError",
    "VersionMismatch",
]


class ErrorCode(enum.IntEnum):
    """Error codes of ERROR messages; equal to the websocket close code used after them.

    Values 4000-4999 are the range RFC 6455 section 7.4.2 leaves to applications.
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # RFC 6455 registry: the recorder serves all the connections it takes
    MALFORMED = 4000
    UNKNOWN_KIND = 4001
    VERSION_MISMATCH = 4002
    UNEXPECTED = 4003
    AUTH_FAILED = 4004
    UNKNOWN_GAME = 4005
    BAD_CONFIG = 4006
    STEP_TIMEOUT = 4007


#: What each code means, in words a user can act on (shown by clients).
ERROR_EXPLANATIONS: dict[ErrorCode, str] = {
    ErrorCode.NORMAL: "session ended normally",
    ErrorCode.GOING_AWAY: "the other side is shutting down",
    ErrorCode.MESSAGE_TOO_BIG: "a message exceeded the size limit; lower the screen size or check the client",
    ErrorCode.INTERNAL_ERROR: "internal error in the recorder; see its log",
    ErrorCode.TRY_AGAIN_LATER: "the recorder already serves as many clients as it takes; try again later",
    ErrorCode.MALFORMED: "a message could not be decoded; client and recorder disagree on docs/protocol.md",
    ErrorCode.UNKNOWN_KIND: "unknown message kind; update the client or the recorder",
    ErrorCode.VERSION_MISMATCH: "protocol version mismatch; use matching client and recorder versions",
    ErrorCode.UNEXPECTED: "message not allowed at this point of the session",
    ErrorCode.AUTH_FAILED: "wrong or missing token; pass the recorder's --token to the client",
    ErrorCode.UNKNOWN_GAME: "no game profile for this ROM; pick one with --game or add a profile",
    ErrorCode.BAD_CONFIG: "the client's declared screen, buttons or RAM do not fit the game profile",
    ErrorCode.STEP_TIMEOUT: "the other side stopped answering within the step timeout",
}


class SonicRLError(Exception):
    """Base of every error raised on purpose by sonic-rl."""


class UsageError(SonicRLError):
    """A user's mistake. ``str(err)`` is one line: what was wrong and what to do."""


class ProfileError(UsageError):
    """A game profile is unknown or invalid."""


class DatasetError(UsageError):
    """An episode file is missing, incomplete, not an episode, or does not fit the others."""


class StorageError(DatasetError):
    """Writing to the output folder failed mid-run: the disk or a quota is full, a file size limit
    was hit, or the folder stopped taking writes. The user frees space or picks another folder; the
    episode being written is discarded (issue 11 item 2), never left as a file ``verify`` rejects."""

    #: errno values that mean "no room" rather than "no permission" or a broken device.
    FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

    @classmethod
    def of(cls, exc: OSError, folder: Path) -> StorageError:
        """One line for ``exc``, raised while writing into ``folder``."""
        # h5py's OSErrors carry HDF5's whole error stack as their text: the errno says it in words.
        why = os.strerror(exc.errno) if exc.errno else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if exc.errno in cls.FULL:
            return cls(f"output folder full: {folder} ({why}); free some space there or choose another folder")
        return cls(f"cannot write to the output folder {folder} ({why}); check the disk or choose another folder")


class ConfigError(UsageError):
    """A configuration or flag combination cannot work."""


class ReplayMismatch(UsageError):
    """Re-simulating an episode did not reproduce its stored frames or RAM."""


class ProtocolError(SonicRLError):
    """The peer broke the wire protocol. ``code`` is sent back in ERROR and the close frame."""

    code: ErrorCode = ErrorCode.MALFORMED

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class MalformedMessage(ProtocolError):
    code = ErrorCode.MALFORMED


class UnknownMessageKind(ProtocolError):
    code = ErrorCode.UNKNOWN_KIND


class VersionMismatch(ProtocolError):
    code = ErrorCode.VERSION_MISMATCH


class MessageTooLarge(ProtocolError):
    code = ErrorCode.MESSAGE_TOO_BIG


class UnexpectedMessage(ProtocolError):
    code = ErrorCode.UNEXPECTED


class AuthenticationFailed(ProtocolError):
    code = ErrorCode.AUTH_FAILED


class UnknownGame(ProtocolError):
    code = ErrorCode.UNKNOWN_GAME


class RemoteError(SonicRLError):
    """The other side sent an ERROR message or closed with an error code."""

    def __init__(self, code: int, reason: str) -> None:
        try:
            explained = ERROR_EXPLANATIONS[ErrorCode(code)]
        except ValueError:
            explained = "unknown error code"
        super().__init__(f"recorder refused the session ({code}: {reason}) - {explained}")
        self.code = code
        self.reason = reason


class Disconnected(SonicRLError):
    """The websocket connection closed; ``code``/``reason`` are the peer's close frame (1006 if none)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed ({code}: {reason})" if reason else f"connection closed ({code})")
        self.code = code
        self.reason = reason
