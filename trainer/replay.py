"""The replay buffer: uniform sampling of stacked n-step transitions over a frame array.

After Dopamine's replay buffer and its newer split into accumulator / store / sampler:
the frames come from the frame cache (``trainer.frame_cache``, offline) or the online
store (``trainer.online_store``), the per-transition arrays from the transition index
(``trainer.transition_index``), and ``ReplayStore.sample`` draws uniform indices from a
seeded ``numpy.random.Generator`` and gathers every frame of the batch with one fancy
index into a contiguous uint8 array; no per-sample Python loop.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Protocol

import numpy as np

from dataset.errors import DatasetError
from trainer.frame_cache import DatasetInfo, FrameCache
from trainer.transition_index import TransitionIndex

__all__ = ["Batch", "BatchSampler", "ReplayStore"]


@dataclasses.dataclass(frozen=True, eq=False)
class Batch:
    """A sampled batch, contiguous host arrays ready for one copy to the device."""

    #: (B, 2, stack*C, h, w) uint8: [:, 0] the state, [:, 1] the bootstrap state.
    states: np.ndarray
    actions: np.ndarray  # (B,) int64
    returns: np.ndarray  # (B,) float32, n-step
    discounts: np.ndarray  # (B,) float32, gamma**k or 0 at a terminal
    prev_actions: np.ndarray  # (B, 2) int64, the actions before the state and the bootstrap state (-1: none)
    mc_returns: np.ndarray  # (B,) float32, the data's return-to-go (Cal-QL)

    #: The fields after ``states``, in the order the learner's ``update`` takes them.
    FIELDS: ClassVar[tuple[str, ...]] = ("actions", "returns", "discounts", "prev_actions", "mc_returns")

    @classmethod
    def concat(cls, states: np.ndarray, parts: list[Batch]) -> Batch:
        """One batch of ``parts`` whose states were gathered into ``states`` already."""
        return cls(states, *(np.concatenate([getattr(b, f) for b in parts]) for f in cls.FIELDS))

    def __len__(self) -> int:
        return int(self.actions.shape[0])


class BatchSampler(Protocol):
    """What the learner's ``DeviceFeeder`` draws batches from: a ``ReplayStore`` or a ``MixedSampler``."""

    #: (stack*C, h, w) of one state.
    state_shape: tuple[int, int, int]

    def sample(self, batch_size: int, rng: np.random.Generator, out: np.ndarray | None = None) -> Batch: ...


class ReplayStore:
    """Uniform sampling of stacked n-step transitions over a frame array.

    ``frames`` is any (M, C, h, w) uint8 array: the memory-mapped cache in
    training, a plain array in tests.
    """

    def __init__(
        self,
        frames: np.ndarray,
        index: TransitionIndex,
        *,
        frame_stack: int = 4,
        info: DatasetInfo | None = None,
    ) -> None:
        if len(index) == 0:
            raise DatasetError("the dataset has no transitions; record longer episodes")
        self.frames = frames
        self.index = index
        self.frame_stack = frame_stack
        self.info = info
        c, h, w = frames.shape[1:]
        self.state_shape: tuple[int, int, int] = (frame_stack * c, h, w)

    @classmethod
    def from_cache(
        cls,
        cache: FrameCache,
        *,
        gamma: float,
        n_step: int,
        frame_stack: int,
        clip_rewards: bool,
        life_loss_terminal: bool = False,
    ) -> ReplayStore:
        index = TransitionIndex.of_steps(cache.steps, gamma=gamma, n_step=n_step, clip_rewards=clip_rewards,
                                         life_loss_terminal=life_loss_terminal)  # fmt: skip
        return cls(cache.frames, index, frame_stack=frame_stack, info=cache.info)

    def __len__(self) -> int:
        return len(self.index)

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, len(self.index), size=batch_size, dtype=np.int64)

    def gather(self, t: np.ndarray, out: np.ndarray | None = None) -> Batch:
        """The batch of transitions ``t``: one gather for all 2*B*stack frames."""
        idx = self.index.stack_indices(t, self.frame_stack)  # (B, 2, S)
        order = np.argsort(idx, axis=None)  # sorted reads are kinder to a memmap's page cache
        flat = idx.reshape(-1)
        gathered = np.empty((flat.shape[0], *self.frames.shape[1:]), dtype=np.uint8)
        gathered[order] = self.frames[flat[order]]
        states = gathered.reshape(t.shape[0], 2, *self.state_shape)
        if out is not None:
            out[...] = states
            states = out
        return Batch(
            states=states,
            actions=self.index.actions[t],
            returns=self.index.returns[t],
            discounts=self.index.discounts[t],
            prev_actions=self.index.prev_actions[t],
            mc_returns=self.index.mc_returns[t],
        )

    def sample(self, batch_size: int, rng: np.random.Generator, out: np.ndarray | None = None) -> Batch:
        return self.gather(self.sample_indices(batch_size, rng), out=out)
