"""The one frame-stacking rule: the replay store's stacks and a player's rolling stack agree."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.frame_stack import FrameStack, stack_indices
from trainer.replay import ReplayStore
from trainer.transition_index import TransitionIndex


def test_indices_repeat_the_first_observation() -> None:
    assert stack_indices(np.array([5, 6, 9]), np.array([5, 5, 5]), 3).tolist() == [
        [5, 5, 5], [5, 5, 6], [7, 8, 9],
    ]  # fmt: skip
    assert stack_indices(np.int64(0), np.int64(0), 1).tolist() == [0]


@pytest.mark.parametrize("frame_stack", [1, 2, 4])
def test_rolling_stack_equals_the_replay_stores_states(frame_stack: int) -> None:
    # Two episodes of 5 and 3 steps; observation j is a 2-channel 1x1 frame (j, 100 + j).
    lengths = [5, 3]
    n_obs = sum(lengths) + len(lengths)
    frames = np.stack([np.arange(n_obs), 100 + np.arange(n_obs)], axis=1).astype(np.uint8)[:, :, None, None]
    index = TransitionIndex.build(lengths, np.zeros(8), np.zeros(8, np.float32), np.zeros(8, bool),
                                  np.zeros(8, bool), gamma=0.9, n_step=1)  # fmt: skip
    store = ReplayStore(frames, index, frame_stack=frame_stack)
    player = FrameStack(frame_stack)
    t = 0
    for e, n in enumerate(lengths):
        player.reset()
        first = sum(lengths[:e]) + e
        for i in range(n + 1):
            state = player.push(frames[first + i])
            assert state.shape == store.state_shape
            if i < n:  # the state of transition t, as the store gathers it for training
                np.testing.assert_array_equal(state, store.gather(np.array([t])).states[0, 0])
                t += 1
            else:  # the last observation is the bootstrap state of the episode's last transition
                np.testing.assert_array_equal(state, store.gather(np.array([t - 1])).states[0, 1])


def test_pushed_states_do_not_change_afterwards() -> None:
    stack = FrameStack(2)
    a = stack.push(np.full((1, 1, 1), 1, np.uint8))
    stack.push(np.full((1, 1, 1), 2, np.uint8))
    assert a.ravel().tolist() == [1, 1]
