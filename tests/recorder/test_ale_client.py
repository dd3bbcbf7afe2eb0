"""The ale-py client: joystick masks, determinism, and the shipped Atari profiles against ALE's own values."""

from __future__ import annotations

import ale_py
import numpy as np
import pytest

from dataset.episode import EndReason
from recorder.ale_client import JOYSTICK_BUTTONS, AleEmulator, mask_to_action_name
from recorder.console_system import find_system
from recorder.profile import load_profile

ATARI_GAMES = ("boxing", "breakout", "demon_attack", "pong", "space_invaders")


def test_masks_become_ale_actions_by_direction_and_fire() -> None:
    bit = {name: 1 << i for i, name in enumerate(JOYSTICK_BUTTONS)}
    assert mask_to_action_name(0) == "NOOP"
    assert mask_to_action_name(bit["BUTTON"]) == "FIRE"
    assert mask_to_action_name(bit["RIGHT"] | bit["BUTTON"]) == "RIGHTFIRE"
    assert mask_to_action_name(bit["UP"] | bit["LEFT"]) == "UPLEFT"
    assert mask_to_action_name(bit["DOWN"] | bit["RIGHT"] | bit["BUTTON"]) == "DOWNRIGHTFIRE"
    assert mask_to_action_name(bit["LEFT"] | bit["RIGHT"]) == "NOOP"  # a stick cannot hold both
    assert mask_to_action_name(bit["UP"] | bit["DOWN"] | bit["BUTTON"]) == "FIRE"
    # The client's buttons are BizHawk's Atari 2600 joystick, as the console table has them.
    system = find_system("A26")
    assert system is not None and system.buttons == JOYSTICK_BUTTONS


def test_a_start_state_and_the_masks_reproduce_every_frame_and_ram_byte() -> None:
    emu = AleEmulator("breakout")
    assert (emu.system, emu.ram_size, emu.screen_size, emu.buttons) == ("A26", 128, (160, 210), JOYSTICK_BUTTONS)
    start = emu.reset()
    assert emu.reset() == start  # every episode starts from the same state
    masks = [int(m) for m in np.random.default_rng(3).integers(0, 32, 300)]
    seen = []
    for mask in masks:
        emu.step(mask, 4)
        seen.append((emu.screen().copy(), emu.ram()))
    fresh = AleEmulator("breakout", seed=7)  # another process, another seed: the state carries everything
    fresh.set_state(start)
    for mask, (screen, ram) in zip(masks, seen, strict=True):
        fresh.step(mask, 4)
        assert np.array_equal(fresh.screen(), screen) and np.array_equal(fresh.ram(), ram)


@pytest.mark.parametrize("game", ATARI_GAMES)
def test_profiles_match_ales_rewards_lives_and_game_over(game: str) -> None:
    """Random play to ALE's game over: the profile's reward, lives and end agree with ALE's on every step."""
    profile = load_profile(game)
    emu = AleEmulator(profile.ale_game)
    assert profile.rom_hashes == (emu.rom_hash,)
    actions = profile.action_set(emu.buttons)
    # The action set is ALE's minimal one, in ALE's order.
    assert [mask_to_action_name(actions.mask(i)) for i in range(len(actions))] == [
        a.name for a in emu.ale.getMinimalActionSet()
    ]
    emu.reset()
    judge = profile.judge(4)
    judge.start(emu.ram())
    rng = np.random.default_rng(0)
    total = 0.0
    rewarded = 0
    for step in range(profile.max_steps):
        action = getattr(ale_py.Action, mask_to_action_name(actions.mask(int(rng.integers(len(actions))))))
        ale_reward = sum(emu.ale.act(action) for _ in range(4))
        reward, end = judge.step(emu.ram())
        values = profile.read_variables(emu.ram())
        assert reward == ale_reward, f"step {step}: profile reward {reward}, ALE's {ale_reward}"
        if "lives" in values:
            assert values["lives"] == emu.lives(), f"step {step}"
        total += reward
        rewarded += reward != 0
        if emu.game_over():
            assert end is EndReason.GAME_OVER, f"ALE's game ended at step {step}, the profile's did not"
            break
        assert end is None, f"step {step}: the profile ended ({end}) before ALE"
    else:
        pytest.fail("random play did not reach ALE's game over")
    assert rewarded > 0  # the check saw rewards, not only zeros
