"""Recording policies: seeded determinism, sticky random actions, the explorer's back-off."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from dataset.errors import ConfigError, ProfileError
from recorder.policy import Policy, PolicyInput, RandomPolicy, ScriptedExplorer, make_policy
from recorder.profile import GameProfile, load_profile, parse_profile

FRAME = np.zeros((224, 320, 3), dtype=np.uint8)
RAM = np.zeros(65536, dtype=np.uint8)


@pytest.fixture(scope="module")
def sonic() -> GameProfile:
    return load_profile("SonicTheHedgehog2-Genesis-v0")


@pytest.fixture(scope="module")
def airstriker() -> GameProfile:
    return load_profile("Airstriker-Genesis-v0")


def obs(step: int, **variables: int) -> PolicyInput:
    return PolicyInput(screen=FRAME, ram=RAM, variables=variables, step=step)


def run(policy: Policy, xs: list[int]) -> list[int]:
    """Actions for observations whose progress variable ``x`` follows ``xs``."""
    policy.reset()
    return [policy.act(obs(step, x=x)) for step, x in enumerate(xs)]


@pytest.mark.parametrize("name", ["random", "random:0.25", "scripted"])
def test_policies_are_deterministic_for_a_seed(sonic: GameProfile, name: str) -> None:
    xs = [0x60 + (i // 3 if i < 200 else 66) for i in range(600)]
    first = run(make_policy(name, sonic, seed=7), xs)
    assert first == run(make_policy(name, sonic, seed=7), xs)
    assert first != run(make_policy(name, sonic, seed=8), xs)
    assert all(0 <= a < len(sonic.actions) for a in first)


def test_random_is_uniform_over_the_action_set(sonic: GameProfile) -> None:
    policy = make_policy("random", sonic, seed=0)
    assert policy.policy_id == "random"
    counts = Counter(policy.act(obs(i, x=0)) for i in range(8000))
    assert set(counts) == set(range(len(sonic.actions)))
    assert max(counts.values()) - min(counts.values()) < 250  # 1000 each, ~5 sigma band
    # Not sticky: the previous action comes back only by chance (1 in 8).
    actions = run(policy, [0] * 4000)
    repeats = sum(a == b for a, b in pairwise(actions))
    assert repeats < 4000 / len(sonic.actions) * 1.3


def test_sticky_random_repeats_with_its_probability(sonic: GameProfile) -> None:
    policy = make_policy("random:0.5", sonic, seed=3)
    assert policy.policy_id == "random:0.5"
    actions = run(policy, [0] * 8000)
    repeats = sum(a == b for a, b in pairwise(actions)) / (len(actions) - 1)
    # P(repeat) = p + (1 - p) / n_actions = 0.5 + 0.5 / 8
    assert repeats == pytest.approx(0.5 + 0.5 / len(sonic.actions), abs=0.03)


@pytest.mark.parametrize("name", ["greedy", "random:2", "random:x", "scripted:3", ""])
def test_unknown_policies_are_config_errors(sonic: GameProfile, name: str) -> None:
    with pytest.raises(ConfigError, match="random"):
        make_policy(name, sonic, seed=0)


def test_scripted_needs_an_explorer_section(airstriker: GameProfile) -> None:
    text = airstriker.text.split("[explorer]")[0]
    bare = parse_profile(text)
    assert bare.explorer is None
    with pytest.raises(ProfileError, match=r"no \[explorer\] section"):
        make_policy("scripted", bare, seed=0)
    assert isinstance(make_policy("random", bare, seed=0), RandomPolicy)


def test_explorer_runs_forward_and_jumps_while_progressing(sonic: GameProfile) -> None:
    policy = make_policy("scripted", sonic, seed=1)
    assert isinstance(policy, ScriptedExplorer) and policy.policy_id == "scripted"
    actions = run(policy, [0x60 + 4 * i for i in range(1000)])
    names = Counter(sonic.action_names[a] for a in actions)
    assert set(names) == {"right", "jump"}
    assert names["right"] > 800 and names["jump"] > 20
    assert policy.backoffs == 0


def test_explorer_backs_off_when_stuck(sonic: GameProfile) -> None:
    spec = sonic.explorer
    assert spec is not None and spec.progress == "x"
    policy = make_policy("scripted", sonic, seed=1)
    # Progress for 100 steps, then a wall: x never rises again.
    xs = [0x60 + 4 * i for i in range(100)] + [0x60 + 4 * 99] * 300
    names = [sonic.action_names[a] for a in run(policy, xs)]
    assert "left" not in names[:100 + spec.stuck_steps - 1]
    first_back = names.index("left")
    # It waits stuck_steps without a new maximum (a jump in progress may delay it a little).
    assert 100 + spec.stuck_steps - 1 <= first_back <= 100 + spec.stuck_steps + spec.jump_steps[1]
    # Back off, run up, then jump forward.
    manoeuvre = names[first_back : first_back + spec.back_steps + spec.run_up_steps + 1]
    assert manoeuvre == ["left"] * spec.back_steps + ["right"] * spec.run_up_steps + ["jump"]
    assert policy.backoffs >= 300 // (spec.stuck_steps + 28) and policy.backoffs <= 300 // spec.stuck_steps
    # A new episode forgets the old maximum.
    policy.reset()
    assert policy.backoffs == 0
    assert "left" not in [sonic.action_names[policy.act(obs(i, x=10))] for i in range(spec.stuck_steps - 1)]


def test_explorer_without_progress_variable(airstriker: GameProfile) -> None:
    spec = airstriker.explorer
    assert spec is not None and spec.progress is None
    policy = make_policy("scripted", airstriker, seed=5)
    actions = [policy.act(obs(i)) for i in range(6000)]  # Airstriker has no "x"
    names = [airstriker.action_names[a] for a in actions]
    counts = Counter(names)
    assert min(counts["fire"], counts["left_fire"], counts["right_fire"]) > 500
    assert counts["fire"] + counts["left_fire"] + counts["right_fire"] > 0.4 * len(actions)
    assert counts["left"] + counts["right"] > 0 and counts["noop"] > 0
    # B fires once per press in Airstriker: the explorer never holds it two steps running.
    fires = [airstriker.actions[a].count("B") for a in actions]
    assert not any(f1 and f2 for f1, f2 in pairwise(fires))
    # Back-offs come at random, about once every stuck_steps steps.
    assert policy.backoffs == pytest.approx(6000 / spec.stuck_steps, rel=0.35)
    # Cycles are held: the direction (the buttons besides B) switches far less often than steps.
    moves = [tuple(b for b in airstriker.actions[a] if b != "B") for a in actions]
    switches = sum(a != b for a, b in pairwise(moves))
    assert switches < len(actions) / 4
