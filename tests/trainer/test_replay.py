"""Replay index correctness on small hand-built episodes (no files involved)."""

from __future__ import annotations

import numpy as np
import pytest

from dataset.errors import DatasetError
from recorder.action_set import ActionSet
from trainer.replay import ReplayStore
from trainer.transition_index import StepArrays, TransitionIndex

GAMMA = 0.5


def _two_episodes(n_step: int, first_end: str = "terminated") -> TransitionIndex:
    # Episode 0: 3 steps, rewards 1, 2, 4, ends with `first_end`.
    # Episode 1: 2 steps, rewards 8, 16, ends truncated.
    rewards = np.array([1, 2, 4, 8, 16], dtype=np.float32)
    terminated = np.zeros(5, dtype=bool)
    truncated = np.zeros(5, dtype=bool)
    if first_end == "terminated":
        terminated[2] = True
    elif first_end == "truncated":
        truncated[2] = True
    truncated[4] = True
    return TransitionIndex.build(
        [3, 2], np.array([0, 1, 2, 3, 0]), rewards, terminated, truncated, gamma=GAMMA, n_step=n_step
    )


def test_observation_layout_has_one_extra_observation_per_episode() -> None:
    idx = _two_episodes(1)
    # Episode 0 owns observations 0..3, episode 1 owns 4..6.
    assert idx.obs.tolist() == [0, 1, 2, 4, 5]
    assert idx.episode_first_obs.tolist() == [0, 0, 0, 4, 4]
    assert idx.next_obs.tolist() == [1, 2, 3, 5, 6]


def test_one_step_targets_stop_at_terminated_and_bootstrap_at_truncated() -> None:
    idx = _two_episodes(1)
    assert idx.returns.tolist() == [1, 2, 4, 8, 16]
    assert idx.discounts.tolist() == [GAMMA, GAMMA, 0.0, GAMMA, GAMMA]


def test_three_step_returns_are_cut_at_the_episode_end() -> None:
    idx = _two_episodes(3)
    # t=0: 1 + .5*2 + .25*4 = 3, window hit the terminal -> discount 0.
    # t=1: 2 + .5*4 = 4, terminal. t=2: 4, terminal.
    # t=3: 8 + .5*16 = 16, truncated after 2 steps -> bootstrap with gamma**2 from obs 6.
    # t=4: 16, truncated after 1 step -> gamma**1 from obs 6.
    assert idx.returns.tolist() == [3, 4, 4, 16, 16]
    assert idx.discounts.tolist() == [0.0, 0.0, 0.0, GAMMA**2, GAMMA]
    assert idx.next_obs.tolist() == [3, 3, 3, 6, 6]


def test_truncated_end_bootstraps_where_terminated_does_not() -> None:
    term = _two_episodes(2, "terminated")
    trunc = _two_episodes(2, "truncated")
    assert term.returns.tolist() == trunc.returns.tolist()
    # t=0's 2-step window (steps 0, 1) ends before the episode does: same either way.
    assert term.discounts[:3].tolist() == [GAMMA**2, 0.0, 0.0]
    assert trunc.discounts[:3].tolist() == [GAMMA**2, GAMMA**2, GAMMA]
    assert trunc.next_obs[:3].tolist() == [2, 3, 3]


def test_episode_without_end_flag_is_cut_at_its_last_step_and_bootstraps() -> None:
    rewards = np.ones(4, dtype=np.float32)
    none = np.zeros(4, dtype=bool)
    idx = TransitionIndex.build([2, 2], np.zeros(4), rewards, none, none, gamma=GAMMA, n_step=3)
    # The window of t=0 must not run into episode 1.
    assert idx.returns.tolist() == [1.5, 1.0, 1.5, 1.0]
    assert idx.next_obs.tolist() == [2, 2, 5, 5]
    assert idx.discounts.tolist() == [GAMMA**2, GAMMA, GAMMA**2, GAMMA]


def test_mid_episode_terminated_stops_the_window() -> None:
    rewards = np.array([1, 1, 1], dtype=np.float32)
    terminated = np.array([False, True, False])
    idx = TransitionIndex.build(
        [3], np.zeros(3), rewards, terminated, np.zeros(3, bool), gamma=GAMMA, n_step=3
    )
    assert idx.returns[0] == 1.5 and idx.discounts[0] == 0.0


def test_stacks_repeat_the_first_frame_instead_of_crossing_an_episode_start() -> None:
    idx = _two_episodes(1)
    s = idx.stack_indices(np.arange(5), frame_stack=4)
    assert s.shape == (5, 2, 4)
    assert s[0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 1]]
    assert s[2].tolist() == [[0, 0, 1, 2], [0, 1, 2, 3]]
    # Episode 1 starts at observation 4: nothing from episode 0 (obs 0..3) may appear.
    assert s[3].tolist() == [[4, 4, 4, 4], [4, 4, 4, 5]]
    assert s[4].tolist() == [[4, 4, 4, 5], [4, 4, 5, 6]]


def _store(frame_stack: int = 4, n_step: int = 1) -> ReplayStore:
    idx = _two_episodes(n_step)
    # Observation j is a 1x2x3 frame filled with the value j, so batches show indices.
    frames = np.broadcast_to(np.arange(7, dtype=np.uint8)[:, None, None, None], (7, 1, 2, 3)).copy()
    return ReplayStore(frames, idx, frame_stack=frame_stack)


def test_gather_builds_contiguous_uint8_batches_from_indices() -> None:
    store = _store()
    batch = store.gather(np.array([3, 0, 4]))
    assert batch.states.dtype == np.uint8 and batch.states.flags.c_contiguous
    assert batch.states.shape == (3, 2, 4, 2, 3)
    assert batch.states[:, :, :, 0, 0].tolist() == [
        [[4, 4, 4, 4], [4, 4, 4, 5]],
        [[0, 0, 0, 0], [0, 0, 0, 1]],
        [[4, 4, 4, 5], [4, 4, 5, 6]],
    ]
    assert batch.actions.tolist() == [3, 0, 0]
    assert batch.returns.tolist() == [8, 1, 16]
    assert batch.discounts.tolist() == [GAMMA, GAMMA, GAMMA]


def test_color_frames_stack_along_channels() -> None:
    idx = _two_episodes(1)
    frames = np.arange(7 * 3, dtype=np.uint8).reshape(7, 3, 1, 1)
    store = ReplayStore(frames, idx, frame_stack=2)
    batch = store.gather(np.array([1]))
    assert store.state_shape == (6, 1, 1)
    assert batch.states[0, 0, :, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_sampling_is_uniform_and_reproducible_for_a_seed() -> None:
    store = _store()
    a = store.sample(4096, np.random.default_rng(7))
    b = store.sample(4096, np.random.default_rng(7))
    assert np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)
    counts = np.bincount(store.sample_indices(50_000, np.random.default_rng(1)), minlength=5)
    assert counts.min() > 9_000 and counts.max() < 11_000


def test_empty_episode_is_refused() -> None:
    with pytest.raises(DatasetError):
        TransitionIndex.build([0], np.zeros(0), np.zeros(0), np.zeros(0, bool), np.zeros(0, bool),
                              gamma=0.9, n_step=1)


def test_human_button_masks_map_to_the_nearest_action_and_are_counted() -> None:
    # Exact masks 0b0000, 0b0001, 0b0010; B2 and B3 belong to no action.
    action_set = ActionSet("t", [(), ("B0",), ("B1",)], ["noop", "b0", "b1"], ["B0", "B1", "B2", "B3"])

    actions = np.array([2, -1, -1, -1, -1])
    # Per-step masks over a 4-frame window; the mask held longest stands for the step.
    buttons = np.array([
        [0, 0, 0, 0],
        [1, 1, 1, 0],   # exact action 1
        [3, 3, 3, 3],   # not in the set -> nearest (1 or 2, first wins: 1)
        [2, 2, 0, 0],   # tie: first mask, exact action 2
        [8, 8, 8, 8],   # not in the set -> nearest is 0 (distance 1)
    ])
    out, mapped, human = action_set.resolve(actions, buttons)
    assert out.tolist() == [2, 1, 1, 2, 0]
    assert (mapped, human) == (2, 4)


def test_previous_actions_of_the_state_and_of_the_bootstrap_state() -> None:
    one = _two_episodes(1)  # actions 0, 1, 2 | 3, 0
    assert one.prev_actions[:, 0].tolist() == [-1, 0, 1, -1, 3]  # -1: an episode's first observation
    assert one.prev_actions[:, 1].tolist() == [0, 1, 2, 3, 0]
    three = _two_episodes(3)
    assert three.prev_actions[:, 1].tolist() == [2, 2, 2, 0, 0]  # the last action inside each window


def test_monte_carlo_returns_to_go_stop_at_each_episode_end() -> None:
    idx = _two_episodes(1)  # gamma 0.5, rewards 1, 2, 4 | 8, 16
    assert idx.mc_returns.tolist() == [3.0, 4.0, 4.0, 16.0, 16.0]
    rng = np.random.default_rng(0)
    lengths = [1000, 7, 300]
    rewards = rng.normal(size=sum(lengths)).astype(np.float32)
    flags = np.zeros(sum(lengths), dtype=bool)
    long = TransitionIndex.build(lengths, np.zeros(sum(lengths), dtype=np.int64), rewards, flags, flags,
                                 gamma=0.99, n_step=1)  # fmt: skip
    expected, end = [], 0
    for n in lengths:
        g, part = 0.0, []
        for r in rewards[end : end + n][::-1]:
            g = float(r) + 0.99 * g
            part.append(g)
        expected += part[::-1]
        end += n
    assert np.allclose(long.mc_returns, expected, atol=1e-4)


def test_batches_carry_previous_actions_and_returns_to_go() -> None:
    idx = _two_episodes(1)
    frames = np.arange(7, dtype=np.uint8).reshape(7, 1, 1, 1).repeat(2, axis=2).repeat(2, axis=3)
    batch = ReplayStore(frames, idx, frame_stack=2).gather(np.array([1, 3]))
    assert batch.prev_actions.tolist() == [[0, 1], [-1, 3]]
    assert batch.mc_returns.tolist() == [4.0, 16.0]


def _steps_with_a_lost_life(life_lost_at: int) -> StepArrays:
    # One 4-step episode, rewards 1, 2, 4, 8, truncated at its end; a life lost at one step.
    life_lost = np.zeros(4, dtype=bool)
    life_lost[life_lost_at] = True
    truncated = np.array([False, False, False, True])
    return StepArrays(np.array([4]), np.zeros(4, dtype=np.int16), np.array([1, 2, 4, 8], dtype=np.float32),
                      np.zeros(4, dtype=bool), truncated, life_lost)  # fmt: skip


def test_a_lost_life_ends_targets_and_returns_only_with_life_loss_terminal() -> None:
    steps = _steps_with_a_lost_life(1)
    plain = TransitionIndex.of_steps(steps, gamma=GAMMA, n_step=3, clip_rewards=False)
    assert plain.discounts.tolist() == [GAMMA**3, GAMMA**3, GAMMA**2, GAMMA]
    assert plain.mc_returns.tolist() == [4.0, 6.0, 8.0, 8.0]
    cut = TransitionIndex.of_steps(steps, gamma=GAMMA, n_step=3, clip_rewards=False, life_loss_terminal=True)
    # Windows through step 1 stop there with discount 0; those after it are untouched.
    assert cut.returns.tolist() == [2.0, 2.0, 8.0, 8.0]
    assert cut.discounts.tolist() == [0.0, 0.0, GAMMA**2, GAMMA]
    assert cut.next_obs.tolist() == [2, 2, 4, 4]
    # The Monte Carlo return-to-go (Cal-QL's reference) stops at the lost life as well.
    assert cut.mc_returns.tolist() == [2.0, 2.0, 8.0, 8.0]
    # The recorded flags are not changed: the episode still ends truncated, not terminated.
    assert not steps.terminated.any() and steps.truncated[-1]
