"""The transition index: which observations, returns and discounts every training transition has.

Pure numpy, no I/O. Built from ``StepArrays`` (per-step arrays of one or more
episodes, concatenated in order): for every transition the observation index it
starts from, the first observation of its episode (stacks repeat that frame:
``trainer.frame_stack``), and its n-step return, bootstrap observation and
bootstrap discount. An n-step window stops at the episode's end; the discount is
0 when the end was ``terminated`` and gamma**k when it was ``truncated`` (a time
limit is not a terminal state: Pardo et al. 2018, "Time Limits in Reinforcement
Learning").

Layout of the episodes: episode e has N_e steps and N_e + 1 observations; its
observations occupy ``obs_start[e] : obs_start[e] + N_e + 1`` of the frame array
and step i goes from observation ``obs_start[e] + i`` to ``+ 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from dataset.errors import DatasetError
from trainer.frame_stack import stack_indices

__all__ = ["StepArrays", "TransitionIndex"]


@dataclasses.dataclass(frozen=True, eq=False)
class StepArrays:
    """Per-step arrays of episodes in order (T = total steps), as read from their files."""

    episode_steps: np.ndarray  # (E,) int64 steps of each episode
    actions: np.ndarray  # (T,) int16, every step an index into the action set
    rewards: np.ndarray  # (T,) float32, as recorded (clipping happens in TransitionIndex.of_steps)
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool
    #: (T,) bool: the step cost a life (the profile's ``lives`` variable fell); all False
    #: for a game without one. The episode goes on; ``--life-loss-terminal`` ends TD targets here.
    life_lost: np.ndarray

    NAMES: ClassVar[tuple[str, ...]] = ("episode_steps", "actions", "rewards", "terminated", "truncated",
                                        "life_lost")  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence[StepArrays]) -> StepArrays:
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.NAMES))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.NAMES}

    @property
    def n_transitions(self) -> int:
        return int(self.actions.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class TransitionIndex:
    """Per-transition index arrays (length T = total steps)."""

    #: Observation index each transition starts from.
    obs: np.ndarray
    #: Observation index of the first frame of the transition's episode.
    episode_first_obs: np.ndarray
    #: Observation index the n-step target bootstraps from.
    next_obs: np.ndarray
    #: Sum of gamma**d * r_{t+d} over the (possibly shortened) n-step window.
    returns: np.ndarray
    #: gamma**k for a window of k steps; 0 when the window ended on ``terminated``.
    discounts: np.ndarray
    actions: np.ndarray
    #: (T, 2) the action taken just before the state and just before the bootstrap state
    #: (-1: none, at an episode's first observation), for ``--prev-action`` (R2D2).
    prev_actions: np.ndarray
    #: Discounted return-to-go of the data from step t to the episode's last step (Monte Carlo,
    #: rewards as in ``returns``): Cal-QL's reference value (Nakamoto et al. 2023).
    mc_returns: np.ndarray

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @classmethod
    def of_steps(
        cls, steps: StepArrays, *, gamma: float, n_step: int, clip_rewards: bool, life_loss_terminal: bool = False
    ) -> TransitionIndex:
        """The index the trainer samples from: rewards clipped to [-1, 1] (Nature DQN) unless ``clip_rewards`` is
        False. The offline cache and the online store both build their index here.

        ``life_loss_terminal``: a step that cost a life ends its TD target (discount 0) and its
        Monte Carlo return, as a terminal step would, while the recorded episode, its
        ``terminated`` and ``truncated`` stay as they are. Nature DQN trained Atari this way
        (Mnih et al. 2015), as do DrQ(eps) and BBF (``terminal_on_life_loss``); Machado et al.
        (2018) leave it out of evaluation, and so does ``sonic-train eval``.
        """
        rewards = np.clip(steps.rewards, -1.0, 1.0) if clip_rewards else steps.rewards
        terminated = steps.terminated | steps.life_lost if life_loss_terminal else steps.terminated
        return cls.build(steps.episode_steps, steps.actions, rewards, terminated, steps.truncated,
                         gamma=gamma, n_step=n_step)  # fmt: skip

    @classmethod
    def build(
        cls,
        episode_steps: Sequence[int] | np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        *,
        gamma: float,
        n_step: int,
    ) -> TransitionIndex:
        """Build the index from per-step arrays concatenated over episodes (rewards used as given).

        Every episode ends at its last step whatever its flags say: a recording cut
        short without either flag (a crash, a disconnect) is treated as truncated,
        because nothing says its last observation was terminal.
        """
        lengths = np.asarray(episode_steps, dtype=np.int64)
        if np.any(lengths < 1):
            raise DatasetError("an episode has no steps; re-record it or leave it out")
        total = int(lengths.sum())
        for name, arr in (("actions", actions), ("rewards", rewards),
                          ("terminated", terminated), ("truncated", truncated)):
            if arr.shape != (total,):
                raise DatasetError(f"{name} has shape {arr.shape}; expected ({total},)")
        n_episodes = lengths.shape[0]
        step_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # first step of episode
        obs_start = step_start + np.arange(n_episodes)  # one extra observation per episode
        episode_of = np.repeat(np.arange(n_episodes), lengths)
        t = np.arange(total, dtype=np.int64)
        local = t - step_start[episode_of]
        obs = obs_start[episode_of] + local
        episode_end = (step_start + lengths)[episode_of]  # exclusive, in steps

        rewards = rewards.astype(np.float64)
        # A step ends its window if it ends the episode or is flagged either way.
        stop_here = terminated | truncated
        stop_here = stop_here.copy()
        stop_here[(step_start + lengths) - 1] = True

        returns = np.zeros(total, dtype=np.float64)
        k = np.zeros(total, dtype=np.int64)
        ended_terminal = np.zeros(total, dtype=bool)
        active = np.ones(total, dtype=bool)
        for d in range(n_step):
            j = t + d
            inside = active & (j < episode_end)
            jj = np.where(inside, j, 0)
            returns += np.where(inside, rewards[jj] * gamma**d, 0.0)
            k += inside
            ended_terminal |= inside & terminated[jj]
            active = inside & ~stop_here[jj]
        discounts = np.where(ended_terminal, 0.0, float(gamma) ** k)
        actions = actions.astype(np.int64)
        prev = np.where(local > 0, actions[np.maximum(t - 1, 0)], -1)
        # The bootstrap observation obs + k follows step t + k - 1 of the same episode.
        prev_next = actions[t + k - 1]
        return cls(
            obs=obs,
            episode_first_obs=obs_start[episode_of],
            next_obs=obs + k,
            returns=returns.astype(np.float32),
            discounts=discounts.astype(np.float32),
            actions=actions,
            prev_actions=np.stack([prev, prev_next], axis=1),
            mc_returns=_returns_to_go(rewards, _segments(lengths, terminated), gamma),
        )

    def stack_indices(self, t: np.ndarray, frame_stack: int) -> np.ndarray:
        """(B, 2, frame_stack) observation indices of the state and the bootstrap state (``trainer.frame_stack``)."""
        ends = np.stack([self.obs[t], self.next_obs[t]], axis=1)  # (B, 2)
        return stack_indices(ends, self.episode_first_obs[t][:, None], frame_stack)


def _segments(lengths: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """Episode lengths split after every terminal step inside them: a Monte Carlo return stops there too."""
    ends = np.union1d(np.cumsum(lengths), np.flatnonzero(terminated) + 1)
    return np.diff(np.concatenate([[0], ends])).astype(np.int64)


def _returns_to_go(rewards: np.ndarray, lengths: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1} within each episode, 0 after its last step (float32).

    The recursion runs backwards in blocks of the episode: inside a block of at most 256
    steps, G_t = (sum_{j>=t} gamma^j r_j) / gamma^t with powers small enough that float64
    neither overflows nor underflows; the block adds the next block's G times gamma^(steps).
    """
    out = np.empty(rewards.shape[0], dtype=np.float64)
    block = 256
    end = int(lengths.sum())
    for n in lengths[::-1]:
        start = end - int(n)
        carry = 0.0
        for hi in range(end, start, -block):
            lo = max(start, hi - block)
            r = rewards[lo:hi].astype(np.float64)
            powers = gamma ** np.arange(hi - lo, dtype=np.float64)
            tail = np.cumsum((r * powers)[::-1])[::-1]
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.where(powers > 0, tail / powers, r)
            out[lo:hi] = g + carry * gamma ** (hi - lo - np.arange(hi - lo, dtype=np.float64))
            carry = out[lo]
        end = start
    return out.astype(np.float32)
