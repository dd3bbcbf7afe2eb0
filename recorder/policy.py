"""Recording policies: what plays when no human does.

Two built-in policies, both deterministic for a seed (one ``numpy.random.Generator``
each, never the global state). A client that streams (client-policy mode) seeds a fresh
policy for every episode from (seed, episode) with :func:`episode_seed`: it draws actions for
the steps it sends past an episode's end before the recorder's EPISODE_END reaches it, and
how many depends on timing, so one generator across episodes made the second episode on
depend on the machine's load (the same command recorded different data).

- ``random``: uniform over the profile's action set, drawn every step.
  ``random:P`` is the sticky variant: with probability P the previous action is
  repeated, as in the "sticky actions" of Machado et al. 2018 (JAIR 61,
  "Revisiting the Arcade Learning Environment", section 5.2, P = 0.25).
- ``scripted``: an explorer for side-scrollers, driven by the profile's
  ``[explorer]`` section. It holds a forward action, jumps at random, and when
  the progress variable has not reached a new maximum for ``stuck_steps`` steps
  it backs off (``back_steps`` of a back action), runs up (``run_up_steps`` of a
  forward action) and jumps, the way a human gets past a wall or a slope. With
  no progress variable (Airstriker) it backs off at random, on average once every
  ``stuck_steps`` steps, and otherwise switches forward actions after random holds.
  An entry of the explorer lists may be a cycle of actions played in turn
  (Airstriker fires only on a fresh press of B, so it explores with fire/release).

Trainer policies (``dqn@<checkpoint>``) implement the same ``Policy`` protocol in
``trainer``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np

from dataset.episode import EndReason
from dataset.errors import ConfigError, ProfileError
from recorder.profile import ExplorerSpec, GameProfile

__all__ = [
    "POLICY_NAMES",
    "EndEpisode",
    "Policy",
    "PolicyInput",
    "RandomPolicy",
    "ScriptedExplorer",
    "episode_seed",
    "make_policy",
]

#: Names ``make_policy`` understands ("random:P" sets the sticky probability).
POLICY_NAMES: tuple[str, ...] = ("random", "scripted")


@dataclass(frozen=True)
class PolicyInput:
    """What a policy sees after a step (not the wire ``protocol.Observation``: this is the
    decoded screen, the profile's byte order of RAM and its variables).

    ``frame`` is decoded on first use (``screen`` may be a zero-argument callable): a
    policy that reads only RAM variables never pays for the screen, which keeps its
    decoding off the lockstep round trip between emulator and recorder.
    """

    screen: np.ndarray | Callable[[], np.ndarray]  # (H, W, 3) uint8 RGB, or what produces it
    ram: np.ndarray  # (ram_size,) uint8, 68000 byte order
    variables: Mapping[str, int]  # profile.read_variables(ram)
    step: int  # steps taken so far in this episode (0 at the start)

    @cached_property
    def frame(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB screen after the last step."""
        return self.screen() if callable(self.screen) else self.screen


@dataclass(frozen=True)
class EndEpisode:
    """What a lockstep policy may answer instead of an action: end the episode here (truncated, ``reason``).

    The recorder saves the episode with the steps so far and starts the next one (RESET), as at any
    other end. The Gymnasium env (``recorder.gym_env``) answers this when its agent calls ``reset()``
    with the episode still open.
    """

    reason: EndReason


@runtime_checkable
class Policy(Protocol):
    """Chooses an action index into ``profile.actions`` each step."""

    policy_id: str  # "random", "scripted" (trainer policies: "dqn@<checkpoint>")

    def reset(self) -> None:
        """A new episode begins."""

    def act(self, obs: PolicyInput) -> int:
        """The action for the next step."""


class RandomPolicy:
    """Uniform over the action set each step; with ``sticky`` > 0 repeats the last action with that probability."""

    def __init__(self, profile: GameProfile, seed: int, sticky: float = 0.0) -> None:
        if not 0.0 <= sticky < 1.0:
            raise ConfigError(f"sticky probability must be in [0, 1), not {sticky}; e.g. random:0.25")
        self.policy_id = "random" if sticky == 0.0 else f"random:{sticky:g}"
        self._count = len(profile.actions)
        self._sticky = sticky
        self._rng = np.random.default_rng(seed)
        self._last: int | None = None

    def reset(self) -> None:
        self._last = None

    def act(self, obs: PolicyInput) -> int:
        if self._last is not None and self._sticky > 0.0 and self._rng.random() < self._sticky:
            return self._last
        self._last = int(self._rng.integers(self._count))
        return self._last


class ScriptedExplorer:
    """Hold forward, jump at random, back off when progress stalls (see the module docstring)."""

    policy_id = "scripted"

    def __init__(self, profile: GameProfile, seed: int) -> None:
        if profile.explorer is None:
            raise ProfileError(
                f"profile {profile.id} has no [explorer] section; use --policy random or add one"
            )
        self.spec: ExplorerSpec = profile.explorer
        self._rng = np.random.default_rng(seed)
        self._queue: deque[int] = deque()
        self._best: int | None = None
        self._since_best = 0
        self._forward: tuple[int, ...] = self.spec.forward[0]
        self._hold = 0
        self._tick = 0
        #: How many back-offs this episode (for tests and logs).
        self.backoffs = 0

    def reset(self) -> None:
        self._queue.clear()
        self._best = None
        self._since_best = 0
        self._hold = 0
        self._tick = 0
        self.backoffs = 0

    def _choice(self, cycles: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        return cycles[int(self._rng.integers(len(cycles)))]

    def _span(self, bounds: tuple[int, int]) -> int:
        return int(self._rng.integers(bounds[0], bounds[1] + 1))

    def _play(self, cycles: tuple[tuple[int, ...], ...], steps: int) -> None:
        """Queue ``steps`` steps of one cycle chosen from ``cycles`` (nothing if there are none)."""
        if cycles:
            cycle = self._choice(cycles)
            # Cycles are phased by the episode's step count, not restarted, so a fire/release
            # cycle never fires on two steps in a row when one cycle follows another.
            first = self._tick + len(self._queue)
            self._queue.extend(cycle[(first + i) % len(cycle)] for i in range(steps))

    def _stalled(self, obs: PolicyInput) -> bool:
        spec = self.spec
        if spec.progress is None:
            return bool(spec.back) and self._rng.random() < 1.0 / spec.stuck_steps
        value = obs.variables[spec.progress]
        if self._best is None or value > self._best:
            self._best = value
            self._since_best = 0
            return False
        self._since_best += 1
        return self._since_best >= spec.stuck_steps

    def _back_off(self) -> None:
        spec = self.spec
        self.backoffs += 1
        self._since_best = 0  # a fresh window to make progress after the manoeuvre
        self._play(spec.back, spec.back_steps)
        self._play(spec.forward, spec.run_up_steps)
        self._play(spec.jump, self._span(spec.jump_steps))
        self._hold = 0

    def act(self, obs: PolicyInput) -> int:
        spec = self.spec
        stalled = self._stalled(obs)
        if not self._queue:
            if stalled:
                self._back_off()
            elif spec.jump and self._rng.random() < spec.jump_probability:
                self._play(spec.jump, self._span(spec.jump_steps))
        tick = self._tick
        self._tick += 1
        if self._queue:
            return self._queue.popleft()
        if self._hold <= 0:
            self._forward = self._choice(spec.forward)
            self._hold = self._span(spec.hold_steps)
        self._hold -= 1
        return self._forward[tick % len(self._forward)]


def episode_seed(seed: int, episode: int) -> int:
    """The seed of one episode's policy: independent streams per (seed, episode), as numpy's
    SeedSequence spawns them (NumPy, "Parallel random number generation")."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1, dtype=np.uint64)[0])


def make_policy(name: str, profile: GameProfile, seed: int) -> Policy:
    """A built-in policy by name: "random", "random:P" (sticky, 0 <= P < 1) or "scripted"."""
    base, _, argument = name.partition(":")
    if base == "random":
        if not argument:
            return RandomPolicy(profile, seed)
        try:
            sticky = float(argument)
        except ValueError:
            raise ConfigError(
                f"bad policy {name!r}: the part after ':' is the sticky probability, e.g. random:0.25"
            ) from None
        return RandomPolicy(profile, seed, sticky)
    if base == "scripted" and not argument:
        return ScriptedExplorer(profile, seed)
    raise ConfigError(f"unknown policy {name!r}; choose random, random:P or scripted")
