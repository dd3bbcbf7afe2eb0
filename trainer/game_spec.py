"""What a run plays: the game and its action set (and, for episode files, buttons and frame skip).

A network's outputs are indices into one profile's action set, so every place
where two of these meet checks them with :meth:`GameSpec.require_match`: the
episode files of one dataset, an online episode file against the run, the
installed profile against a checkpoint (``online``, ``eval``), and an emulator
that connects to ``online``. The caller says who is who, what to do about a
mismatch, and which error kind it is (a user's file, a user's setup, a peer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from dataset.episode import EpisodeMeta
from dataset.errors import SonicRLError
from recorder.profile import GameProfile

__all__ = ["GameSpec"]

# (field, what differs in the message), compared in this order.
_FIELDS = (
    ("game", "games"),
    ("action_names", "action sets"),
    ("button_names", "button layouts"),
    ("frame_skip", "frame skips"),
)


@dataclasses.dataclass(frozen=True)
class GameSpec:
    """``None`` in ``button_names`` or ``frame_skip`` means "not known here": that field is not compared."""

    game: str
    action_names: tuple[str, ...]
    button_names: tuple[str, ...] | None = None
    frame_skip: int | None = None

    @classmethod
    def of_episode(cls, meta: EpisodeMeta) -> GameSpec:
        return cls(meta.game, tuple(meta.action_names), tuple(meta.button_names), int(meta.frame_skip))

    @classmethod
    def of_profile(cls, profile: GameProfile) -> GameSpec:
        return cls(profile.id, tuple(profile.action_names))

    @classmethod
    def of_checkpoint(cls, dataset: Mapping[str, Any]) -> GameSpec:
        """From a checkpoint's ``dataset`` entry (the game and action set the network was trained on)."""
        return cls(str(dataset["game"]), tuple(str(a) for a in dataset["action_names"]))

    def playing(self) -> GameSpec:
        """Only the game and the action set: what a player of this run must match (any buttons, frame skip)."""
        return GameSpec(self.game, self.action_names)

    def describe(self, what: str) -> str:
        if what == "button layouts":
            return f"buttons {list(self.button_names or ())}"
        if what == "frame skips":
            return f"frame skip {self.frame_skip}"
        return f"{self.game} with actions {list(self.action_names)}"

    def mismatch(self, other: GameSpec) -> str | None:
        """What differs ("games", "action sets", ...), or None when ``other`` matches."""
        for name, what in _FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                return what
        return None

    def require_match(
        self,
        other: GameSpec,
        *,
        mine: str,
        theirs: str,
        fix: str,
        error: Callable[[str], SonicRLError],
    ) -> None:
        """Raise ``error(message)`` unless ``other`` matches.

        ``mine`` and ``theirs`` say who holds each spec, verb included ("this run
        plays", "the emulator sent"); ``fix`` says what to do.
        """
        what = self.mismatch(other)
        if what is not None:
            raise error(
                f"{theirs} {other.describe(what)} but {mine} {self.describe(what)} (different {what}); {fix}"
            )
