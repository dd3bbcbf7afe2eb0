"""What the recorder server is told: one frozen :class:`ServerConfig`, built once from the CLI.

Its own module because both halves of the server read it: the websocket adapter
(``recorder.server``: address, connection cap, idle time) and the sans-I/O session rules
(``recorder.session``: game, mode, frame skip, limits), which must not import the adapter.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from dataset.errors import ConfigError
from recorder import protocol as p
from recorder.profile_library import ProfileLibrary

__all__ = ["DEFAULT_IDLE_TIMEOUT_S", "DEFAULT_MAX_CONNECTIONS", "HANDSHAKE_TIMEOUT_S", "ServerConfig"]

#: A client must send HELLO this soon after connecting (docs/protocol.md, close 4003).
HANDSHAKE_TIMEOUT_S = 10.0

#: Connections served at once; one more is closed with 1013 (try again later). Each can hold
#: about 170 MiB at the largest sizes (docs/protocol.md, "Size limits"), so the default bounds the
#: recorder near 2.7 GiB whatever clients do (issue 11). ``record --clients N`` raises it to N.
DEFAULT_MAX_CONNECTIONS = 16

#: A welcomed client that sends nothing for this long is closed (4007) and its episode saved as
#: truncated, so a stalled or abandoned connection cannot hold its memory for ever (issue 11).
#: Long enough for a BizHawk player to pause the game for a few minutes.
DEFAULT_IDLE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ServerConfig:
    """Everything the recorder server needs; built once from the CLI and logged."""

    out: Path | None  # None: play without saving (evaluation)
    host: str = "127.0.0.1"
    port: int = 8765  # 0 picks a free port (tests)
    token: str | None = None
    game: str | None = None  # profile for clients whose HELLO names none
    #: Where a HELLO's profile id, or a client's ROM, is looked up (recorder.profile_library: --profiles,
    #: SONIC_RL_PROFILES, the user folder, the shipped profiles; a run's stored profile first).
    profiles: ProfileLibrary = field(default_factory=ProfileLibrary.default)
    mode: p.Mode = p.Mode.HUMAN  # for clients whose HELLO says ANY
    policy: str = "random"
    frame_skip: int = 4
    max_steps: int | None = None  # None: the profile's default step limit
    episodes: int | None = None  # total over all clients; None: unlimited
    seed: int = 0
    step_timeout: float = 10.0
    policy_only: bool = False  # refuse human-mode clients (online fine-tuning has no use for them)
    #: Episodes one connection may play: ``record --clients N`` shares the budget so that a fast
    #: emulator does not take the episodes of one still starting.
    episodes_per_client: int | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S
    handshake_timeout: float = HANDSHAKE_TIMEOUT_S

    def check(self) -> None:
        """Refuse configurations that are unsafe or cannot work (one clear line each)."""
        if not _is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"refusing to bind to {self.host} without a token: pass --token SECRET "
                "(clients must send it) or bind to 127.0.0.1"
            )
        if not 1 <= self.frame_skip <= 255:
            raise ConfigError(f"--frame-skip must be 1..255, got {self.frame_skip}")
        if self.episodes is not None and self.episodes < 1:
            raise ConfigError(f"--episodes must be at least 1, got {self.episodes}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.max_connections < 1:
            raise ConfigError(f"the connection limit must be at least 1, got {self.max_connections}")
        if not (self.idle_timeout > 0 and self.handshake_timeout > 0):
            raise ConfigError("the idle and handshake timeouts must be positive")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
