"""Frame stacking: the one rule for which observations make a state.

A state is the last ``frame_stack`` observations, oldest first. Slots that would
reach back before the episode's first observation repeat that first observation,
which is what a fresh environment's frame stack holds after ``reset`` (the Atari
wrappers of Dopamine, SB3 and CleanRL fill it the same way), so a stack never
mixes two episodes.

``stack_indices`` is the rule over observation indices; the replay store gathers
training states with it (``TransitionIndex.stack_indices``). ``FrameStack`` is the
rolling stack of one player (evaluation, the online actor), built on the same
function, so a state seen while playing is made exactly like the states trained on.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FrameStack", "stack_indices"]


def stack_indices(last: np.ndarray, first: np.ndarray, frame_stack: int) -> np.ndarray:
    """Observation indices of the stacks that end at ``last``: shape ``last.shape + (frame_stack,)``.

    Slot k holds observation ``last - (frame_stack - 1) + k``, or ``first`` (the
    first observation of the episode; it broadcasts against ``last``) where that
    falls before it.
    """
    offsets = np.arange(-(frame_stack - 1), 1, dtype=np.int64)
    return np.maximum(np.asarray(last, dtype=np.int64)[..., None] + offsets, np.asarray(first)[..., None])


class FrameStack:
    """The rolling stack of one player: push each preprocessed (C, h, w) frame, get the (stack*C, h, w) state.

    The last ``frame_stack`` frames of the episode live in a ring; the state is read
    out of it with ``stack_indices`` (the episode's first frame is its observation 0).
    """

    def __init__(self, frame_stack: int) -> None:
        if frame_stack < 1:
            raise ValueError(f"frame_stack {frame_stack} must be at least 1")
        self.frame_stack = frame_stack
        self._ring: np.ndarray | None = None
        self._t = -1  # index of the last observation pushed in this episode

    def reset(self) -> None:
        """A new episode: the next frame pushed is its first observation."""
        self._t = -1

    def push(self, frame: np.ndarray) -> np.ndarray:
        """Add the newest (C, h, w) frame; returns the state ending at it (a new array)."""
        if self._ring is None or self._ring.shape[1:] != frame.shape:
            self._ring = np.empty((self.frame_stack, *frame.shape), dtype=frame.dtype)
        self._t += 1
        self._ring[self._t % self.frame_stack] = frame
        slots = stack_indices(np.int64(self._t), np.int64(0), self.frame_stack) % self.frame_stack
        return self._ring[slots].reshape(-1, *frame.shape[1:])
