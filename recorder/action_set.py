"""A profile's discrete actions bound to one client's button order: the one rule from buttons to actions.

Every place that turns an action index into buttons, or buttons back into an
action index, goes through :class:`ActionSet`:

* the recorder's session, to answer a policy's action with the client's mask,
  and to recover the action a client-policy client played;
* the embedded clients, to press a policy's action;
* the trainer and ``sonic-rec export minari``, to give recorded human steps
  (action ``-1``) an action (:meth:`ActionSet.resolve`).

The rule for a step's buttons (one mask per emulated frame): the mask held for
the most frames of the step stands for it (ties: the earliest); a mask equal to
an action's mask is that action (the first such action); any other mask is the
nearest action (:meth:`ActionSet.nearest`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from dataset.errors import ProfileError

__all__ = ["ActionSet", "normalize_button", "step_masks"]


def normalize_button(name: str) -> str:
    """Canonical button name: upper case, a BizHawk player prefix ("P1 Up") removed."""
    return re.sub(r"^P\d+\s+", "", name.strip().upper())


def step_masks(buttons: np.ndarray) -> np.ndarray:
    """One mask per step from per-frame masks (N,) or (N, K): the mask held longest (ties: the first)."""
    b = np.asarray(buttons).astype(np.int64)
    if b.ndim == 1:
        return b
    if b.shape[1] == 1:
        return b[:, 0]
    counts = (b[:, :, None] == b[:, None, :]).sum(axis=2)
    return b[np.arange(b.shape[0]), counts.argmax(axis=1)]


class ActionSet:
    """The actions of profile ``profile_id`` as masks of the buttons ``button_names`` (bit i = name i).

    Names match case-insensitively, with a BizHawk "P1 " prefix ignored. Raises
    ProfileError when the client lacks a button an action needs.
    """

    def __init__(
        self,
        profile_id: str,
        actions: Sequence[Sequence[str]],
        action_names: Sequence[str],
        button_names: Sequence[str],
        equivalent_buttons: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.profile_id = profile_id
        self.actions = tuple(tuple(a) for a in actions)
        self.action_names = tuple(action_names)
        self.button_names = tuple(button_names)
        self._equivalent = dict(equivalent_buttons)
        index = {normalize_button(name): i for i, name in enumerate(button_names)}
        masks = []
        for name, held in zip(self.action_names, self.actions, strict=True):
            mask = 0
            for button in held:
                if button not in index:
                    raise ProfileError(
                        f"the client has no {button} button (it has {', '.join(button_names)}); "
                        f"profile {profile_id} needs it for action {name!r}"
                    )
                mask |= 1 << index[button]
            masks.append(mask)
        #: masks[i] is the button mask of action i.
        self.masks: tuple[int, ...] = tuple(masks)
        # Exact masks first (the first action with a mask wins); nearest() fills in the rest.
        self._lookup: dict[int, int] = {}
        for i, mask in enumerate(masks):
            self._lookup.setdefault(mask, i)
        self._exact = frozenset(self._lookup)
        self._used = {button for action in self.actions for button in action}
        self._normalized = tuple(normalize_button(name) for name in button_names)

    def __len__(self) -> int:
        return len(self.masks)

    def mask(self, action: int) -> int:
        """The button mask of ``action``."""
        if not 0 <= action < len(self.masks):
            raise ProfileError(
                f"action {action} is out of range: profile {self.profile_id} has {len(self.masks)} actions"
            )
        return self.masks[action]

    def is_exact(self, mask: int) -> bool:
        """True when ``mask`` is exactly some action's mask."""
        return mask in self._exact

    def nearest(self, mask: int) -> int:
        """The action closest to a button combination ``mask`` (cached per mask).

        Metric: buttons equivalent to an action-set button (the profile's
        ``equivalent_buttons``) count as that button; buttons no action uses are
        ignored; the distance is the number of buttons that differ (held by one,
        not the other). Ties go to the lower action index, so profiles list the
        most common actions first. An exact mask is its first action.
        """
        found = self._lookup.get(mask)
        if found is not None:
            return found
        held: set[str] = set()
        for i, button in enumerate(self._normalized):
            if mask >> i & 1:
                button = self._equivalent.get(button, button)
                if button in self._used:
                    held.add(button)
        best, best_distance = 0, math.inf
        for i, action in enumerate(self.actions):
            distance = len(held.symmetric_difference(action))
            if distance < best_distance:
                best, best_distance = i, distance
        self._lookup[mask] = best
        return best

    def of_step(self, frame_masks: Sequence[int]) -> int:
        """The action a step's per-frame masks stand for (see the module docstring)."""
        if len(frame_masks) == 1 or all(m == frame_masks[0] for m in frame_masks):
            return self.nearest(int(frame_masks[0]))
        return self.nearest(int(step_masks(np.asarray(frame_masks)[None])[0]))

    def of_steps(self, buttons: np.ndarray) -> tuple[np.ndarray, int]:
        """(actions, inexact) for per-step masks (N,) or per-frame masks (N, K).

        ``inexact`` counts the steps whose mask was not exactly an action's.
        Lookups run once per distinct mask, not once per step.
        """
        masks = step_masks(buttons)
        uniq, inverse = np.unique(masks, return_inverse=True)
        lookup = np.array([self.nearest(int(m)) for m in uniq], dtype=np.int64)
        exact = np.array([int(m) in self._exact for m in uniq], dtype=bool)
        return lookup[inverse].reshape(-1), int((~exact[inverse]).sum())

    def resolve(self, actions: np.ndarray, buttons: np.ndarray) -> tuple[np.ndarray, int, int]:
        """(actions, mapped, human): recorded ``actions`` (int64) with every human step (-1) filled
        with the action its per-frame ``buttons`` stand for (:meth:`of_steps`).

        ``human`` counts the steps filled, ``mapped`` those of them whose mask was not exactly
        an action's. The trainer's replay cache and ``sonic-rec export minari`` both use it.
        """
        actions = np.asarray(actions).astype(np.int64)
        human = actions < 0
        if not human.any():
            return actions, 0, 0
        found, mapped = self.of_steps(np.asarray(buttons)[human])
        actions = actions.copy()
        actions[human] = found
        return actions, mapped, int(human.sum())
