"""Game profiles: parsing, RAM variables, the judge, action masks, and stable-retro as ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataset.episode import EndReason
from dataset.errors import ProfileError
from recorder.profile import (
    GENESIS_BUTTONS,
    GameProfile,
    find_profile_for_rom,
    list_profiles,
    load_profile,
    parse_profile,
)

SONIC2 = "SonicTheHedgehog2-Genesis-v0"
AIRSTRIKER = "Airstriker-Genesis-v0"
BIZHAWK_BUTTONS = ("Up", "Down", "Left", "Right", "A", "B", "C", "Start", "X", "Y", "Z", "Mode")


def _retro_data_dir(game: str) -> Path:
    import stable_retro.data

    return Path(stable_retro.data.get_file_path(game, "data.json", stable_retro.data.Integrations.STABLE)).parent


def make_ram(**values: int) -> np.ndarray:
    """64 KiB of Sonic 2 RAM in the 68000's (big-endian) order with ``values`` poked in.

    Written byte by byte with ``int.to_bytes(..., "big")`` so the fixture does not
    share code with the reader under test.
    """
    layout = {  # offset, size: Sonic 2 data.json, addr & 0xFFFF
        "x": (0xB008, 2), "y": (0xB00C, 2), "screen_x": (0xEE00, 2), "screen_y": (0xEE04, 2),
        "screen_x_end": (0xEECA, 2), "lives": (0xFE12, 1), "rings": (0xFE20, 2),
        "score": (0xFE26, 4), "zone": (0xFE10, 1), "act": (0xFE11, 1),
        "game_mode": (0xF600, 1), "level_end_bonus": (0xF7D6, 1),
    }
    defaults = {"lives": 3, "game_mode": 0x0C, "x": 0x60}
    ram = np.zeros(65536, dtype=np.uint8)
    for name, value in {**defaults, **values}.items():
        offset, size = layout[name]
        ram[offset : offset + size] = list(value.to_bytes(size, "big"))
    return ram


# --------------------------------------------------------------------------- parsing


def test_shipped_profiles_parse() -> None:
    assert list_profiles() == [AIRSTRIKER, SONIC2, "boxing", "breakout", "demon_attack", "pong", "space_invaders"]
    for profile_id in list_profiles():
        profile = load_profile(profile_id)
        if profile.system == "GEN":
            assert profile.id == profile.retro_game == profile_id and not profile.ale_game
            assert (profile.ram_size, profile.byte_order, profile.buttons) == (65536, "big", GENESIS_BUTTONS)
        else:  # the Atari 2600 games are named as ALE names them
            assert profile.id == profile.ale_game == profile_id and not profile.retro_game
            assert (profile.system, profile.ram_size) == ("A26", 128)
            assert profile.buttons == ("UP", "DOWN", "LEFT", "RIGHT", "BUTTON")
        # An end on a state that lasts is an edge (docs/profiles.md, "Edge-triggered ends").
        states = [r for r in profile.end_rules if all(c.op.value in ("zero", "nonzero", "equal") for c in r.conditions)]
        assert states and all(rule.edge for rule in states)
        assert len(profile.actions) == len(profile.action_names) >= 2
        assert () in profile.actions, "every action set needs a no-op"
        assert profile.text.startswith("#") and f'id = "{profile_id}"' in profile.text
        assert parse_profile(profile.text) == profile
        assert all(len(h) == 40 and h == h.lower() for h in profile.rom_hashes)
    sonic = load_profile(SONIC2)
    assert sonic.retro_state == "EmeraldHillZone.Act1"
    assert sonic.max_steps == 4500  # 18,000 frames at frame skip 4
    assert sonic.actions == (
        ("LEFT",), ("RIGHT",), ("LEFT", "DOWN"), ("RIGHT", "DOWN"), ("DOWN",), ("DOWN", "B"), ("B",), (),
    )
    assert load_profile(AIRSTRIKER).retro_state == "Level1"


@pytest.mark.parametrize("game", [AIRSTRIKER, SONIC2])
def test_profiles_agree_with_stable_retro_files(game: str) -> None:
    """Variables, default state and ROM hash are those of stable-retro's integration files."""
    folder = _retro_data_dir(game)
    profile = load_profile(game)
    info = json.loads((folder / "data.json").read_text())["info"]
    ours = {v.name: (v.address, v.dtype) for v in profile.variables}
    assert ours == {name: (spec["address"] & 0xFFFF, spec["type"]) for name, spec in info.items()}
    metadata = json.loads((folder / "metadata.json").read_text())
    assert profile.retro_state == metadata["default_state"]
    assert profile.rom_hashes == ((folder / "rom.sha").read_text().strip(),)


def test_load_profile_names_and_errors(tmp_path: Path) -> None:
    assert load_profile("sonicthehedgehog2-genesis").id == SONIC2
    assert load_profile("AIRSTRIKER-GENESIS-V0").id == AIRSTRIKER
    with pytest.raises(ProfileError, match="known: Airstriker-Genesis-v0, SonicTheHedgehog2"):
        load_profile("SuperMarioBros-Nes")
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(str(tmp_path / "nope.toml"))
    path = tmp_path / "mine.toml"
    path.write_text(load_profile(AIRSTRIKER).text.replace("max_steps = 4500", "max_steps = 100"))
    assert load_profile(str(path)).max_steps == 100


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('type = ">u4"', 'type = ">u3"', r"variables.score.type must be one of"),
        ('buttons = ["LEFT", "B"]', 'buttons = ["LEFT", "TURBO"]', r"console lacks: \['TURBO'\]"),
        ('reason = "GAME_OVER"', 'reason = "BORED"', r"end\[0\].reason must be one of"),
        ('op = "zero"', 'op = "tiny"', r"end\[0\].when\[0\].op must be one of"),
        ('forward = [["fire", "noop"]', 'forward = [["fire", "dance"]', r"explorer.forward names unknown actions"),
        ("ram_size = 65536", "ram_size = 1000", "ram_size must be a power of two"),
        ("max_steps = 4500", 'max_steps = "long"', "max_steps must be a int"),
        ('[retro]\ngame = "Airstriker-Genesis-v0"', "[retro]\ngame = 3", "retro.game must be a str"),
        ("score = {", "score = { value = 'lives ** 2' }\nold_score = {", "variables.score.value uses 'lives \\*\\* 2'"),
        ('system = "GEN"', 'system = "GEN"\nbyte_order = "middle"', "byte_order must be"),
        ("[variables]", "[variables", "not valid TOML"),
    ],
)
def test_bad_profiles_fail_in_one_line(old: str, new: str, message: str) -> None:
    text = load_profile(AIRSTRIKER).text
    assert old in text
    with pytest.raises(ProfileError, match=message) as info:
        parse_profile(text.replace(old, new, 1), "bad.toml")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("bad.toml")


def test_find_profile_for_rom() -> None:
    sonic_sha = "8bca5dcef1af3e00098666fd892dc1c2a76333f9"
    # BizHawk's GameInfo.Hash: upper case, possibly "SHA1:"-prefixed.
    assert find_profile_for_rom("whatever", "SHA1:" + sonic_sha.upper()).id == SONIC2
    assert find_profile_for_rom("x", "A8BE7B0CA850119B167F9644E6A4A22E983D61A4").id == AIRSTRIKER
    assert find_profile_for_rom("Airstriker", "0" * 40) is None  # a known name is no proof
    assert find_profile_for_rom("airstriker.md", "").id == AIRSTRIKER
    assert find_profile_for_rom("Sonic The Hedgehog 2 (World) (Rev A)", "").id == SONIC2
    assert find_profile_for_rom("Unknown", "") is None


# --------------------------------------------------------------------------- variables and judge


def test_sonic2_variables_on_big_endian_ram() -> None:
    sonic = load_profile(SONIC2)
    ram = make_ram(
        screen_x=0x1234, x=0x1301, y=0x02A5, lives=7, rings=0x0102, score=0x01020304, zone=13, act=1
    )
    # Camera x at 0xEE00 is big-endian: the high byte comes first, as the hobby tool read it.
    assert ram[0xEE00] == 0x12 and ram[0xEE01] == 0x34
    values = sonic.read_variables(ram)
    assert values["screen_x"] == 0x1234
    assert values["x"] == 0x1301 and values["y"] == 0x02A5
    assert values["lives"] == 7 and values["rings"] == 0x0102 and values["score"] == 0x01020304
    assert (values["zone"], values["act"], values["game_mode"]) == (13, 1, 0x0C)
    assert sonic.variable("screen_x").address == 0xEE00
    # Any uint8 array works, a strided view included.
    doubled = np.repeat(ram, 2)[::2]
    assert not doubled.flags.c_contiguous
    assert sonic.read_variables(doubled) == values
    assert sonic.variable("score").read(doubled) == 0x01020304


def _contest_reward(x0: int, end: int, xs: list[int], frame_skip: int = 4) -> list[float]:
    """script.lua contest_reward, transcribed: progress to the act's end x, bonus on finishing."""
    rewards, prev = [], 0.0
    for step, x in enumerate(xs, start=1):
        progress = min(max(x - x0, 0), end - x0) / (end - x0)
        reward = (progress - prev) * 9000
        prev = progress
        if progress >= 1:
            reward += (1 - min(max(step * frame_skip / 18000, 0), 1)) * 1000
        rewards.append(reward)
    return rewards


def test_sonic2_contest_reward_and_level_end() -> None:
    judge = load_profile(SONIC2).judge(4)
    judge.start(make_ram(x=0x60))
    end = 0x2A40  # Emerald Hill act 1 in script.lua's level_max_x
    xs = [0x60 + 100, 0x60 + 50, 0x10, 0x60 + 3000, 0x1800, end - 1, end + 40]
    results = [judge.step(make_ram(x=x)) for x in xs]
    expected = _contest_reward(0x60, end, xs)
    assert [r for r, _ in results] == pytest.approx(expected)
    assert results[0][0] == pytest.approx(9000 * 100 / (end - 0x60))
    assert results[1][0] < 0 and results[2][0] < 0  # moving back costs, clipped at the start x
    assert sum(r for r, _ in results) == pytest.approx(9000 + 1000 * (1 - 7 * 4 / 18000))
    assert [reason for _, reason in results] == [None] * 6 + [EndReason.LEVEL_END]
    assert judge.progress == 1.0


def test_finish_bonus_counts_the_sessions_frame_skip_not_the_profiles() -> None:
    # Issue 8: the bonus used the profile's frame_skip (4) while the session ran --frame-skip 2.
    profile = load_profile(SONIC2)
    assert profile.frame_skip == 4
    judge = profile.judge(2)
    judge.start(make_ram(x=0x60))
    end = 0x2A40
    xs = [0x60 + 500, end + 1]
    rewards = [judge.step(make_ram(x=x))[0] for x in xs]
    assert rewards == pytest.approx(_contest_reward(0x60, end, xs, frame_skip=2))
    assert sum(rewards) == pytest.approx(9000 + 1000 * (1 - 2 * 2 / 18000))


@pytest.mark.parametrize(
    ("after", "reason"),
    [
        ({"lives": 2}, EndReason.LIFE_LOST),
        ({"lives": 4}, None),                        # a 1-up is no end
        ({"lives": 0}, EndReason.GAME_OVER),
        ({"game_mode": 0x10}, EndReason.LEVEL_END),  # special stage, as contest_done
        ({"level_end_bonus": 1}, EndReason.LEVEL_END),
        ({"act": 1}, EndReason.LEVEL_END),
        ({"x": 0x300, "rings": 20, "score": 500}, None),
    ],
)
def test_sonic2_end_reasons(after: dict[str, int], reason: EndReason | None) -> None:
    judge = load_profile(SONIC2).judge(4)
    judge.start(make_ram())
    assert judge.step(make_ram()) == (0.0, None)
    assert judge.step(make_ram(**after))[1] == reason


def test_sonic2_life_lost_is_relative_to_the_previous_step() -> None:
    judge = load_profile(SONIC2).judge(4)
    judge.start(make_ram(lives=5))
    assert judge.step(make_ram(lives=6))[1] is None
    assert judge.step(make_ram(lives=5))[1] is EndReason.LIFE_LOST


def test_sonic2_unknown_level_is_a_profile_error() -> None:
    judge = load_profile(SONIC2).judge(4)
    with pytest.raises(ProfileError, match=r"zone=3, act=0.*reward.level_end"):
        judge.start(make_ram(zone=3))
    with pytest.raises(ProfileError, match="before start"):
        load_profile(SONIC2).judge(4).step(make_ram())


def test_airstriker_judge_on_fixtures() -> None:
    profile = load_profile(AIRSTRIKER)

    def ram(score: int, lives: int, gameover: int) -> np.ndarray:
        out = np.zeros(65536, dtype=np.uint8)
        out[0x024E:0x0252] = list(score.to_bytes(4, "big"))
        out[0x025A:0x025C] = list(lives.to_bytes(2, "big"))
        out[0x0266:0x0268] = list(gameover.to_bytes(2, "big"))
        return out

    judge = profile.judge(4)
    judge.start(ram(0, 3, 9))
    assert judge.step(ram(20, 3, 9)) == (20.0, None)
    assert judge.step(ram(20, 2, 9)) == (0.0, None)  # a lost ship goes on
    assert judge.step(ram(40, 0, 0)) == (20.0, None)  # last ship starts exploding
    assert judge.step(ram(40, 0, 1)) == (0.0, EndReason.GAME_OVER)


# --------------------------------------------------------------------------- actions


def test_action_masks_for_both_button_orders() -> None:
    sonic = load_profile(SONIC2)
    spin = sonic.action_names.index("spin_dash")
    # stable-retro order: B is bit 0, DOWN bit 5.
    assert sonic.action_set(GENESIS_BUTTONS).mask(spin) == 1 << 0 | 1 << 5
    assert sonic.action_set(BIZHAWK_BUTTONS).mask(spin) == 1 << 1 | 1 << 5
    assert sonic.action_set([f"P1 {b}" for b in BIZHAWK_BUTTONS]).mask(spin) == 1 << 1 | 1 << 5
    assert sonic.action_set(BIZHAWK_BUTTONS).mask(sonic.action_names.index("noop")) == 0
    right = sonic.action_names.index("right")
    assert sonic.action_set(GENESIS_BUTTONS).mask(right) == 1 << 7
    with pytest.raises(ProfileError, match="no DOWN button"):
        sonic.action_set(["B", "A", "LEFT", "RIGHT"])
    with pytest.raises(ProfileError, match="out of range"):
        sonic.action_set(GENESIS_BUTTONS).mask(len(sonic.actions))


@pytest.mark.parametrize("game", [AIRSTRIKER, SONIC2])
@pytest.mark.parametrize("order", [GENESIS_BUTTONS, BIZHAWK_BUTTONS])
def test_nearest_action_inverts_action_mask(game: str, order: tuple[str, ...]) -> None:
    actions = load_profile(game).action_set(order)
    for action in range(len(actions)):
        assert actions.nearest(actions.mask(action)) == action
        assert actions.of_step([actions.mask(action)] * 4) == action


def test_nearest_action_for_human_combinations() -> None:
    sonic = load_profile(SONIC2)
    names = sonic.action_names
    actions = sonic.action_set(BIZHAWK_BUTTONS)

    def nearest(*buttons: str) -> str:
        mask = sum(1 << BIZHAWK_BUTTONS.index(b) for b in buttons)
        return names[actions.nearest(mask)]

    assert nearest("C") == "jump"                   # A, B and C all jump in Sonic 2
    assert nearest("Down", "A") == "spin_dash"
    assert nearest("Start") == "noop"               # buttons no action uses are ignored
    assert nearest() == "noop"
    assert nearest("Right", "Start", "X") == "right"
    assert nearest("Right", "B") == "right"         # tie (1 differing button each): lower index
    assert nearest("Left", "Down", "B") == "left_down"
    assert nearest("Up", "Right") == "right"


def test_profile_is_hashable_and_frozen() -> None:
    profile = load_profile(AIRSTRIKER)
    assert isinstance(hash(profile), int)
    with pytest.raises(AttributeError):
        profile.max_steps = 1  # type: ignore[misc]
    assert isinstance(profile, GameProfile)


# --------------------------------------------------------------------------- real emulator


@pytest.fixture(scope="module")
def airstriker_env():
    import stable_retro

    # Only one emulator may exist per process: close it before any other test module makes one.
    env = stable_retro.make(game=AIRSTRIKER, render_mode=None)
    yield env
    env.close()


def _big_endian(env) -> np.ndarray:
    # stable-retro's get_ram() swaps the bytes of each 16-bit word (docs/profiles.md).
    return env.get_ram().reshape(-1, 2)[:, ::-1].reshape(-1)


def test_airstriker_variables_match_stable_retro(airstriker_env) -> None:
    env = airstriker_env
    profile = load_profile(AIRSTRIKER)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    seen: dict[str, set[int]] = {"score": set(), "lives": set(), "gameover": set()}
    for _ in range(400):
        env.step(rng.integers(0, 2, 12).astype(np.int8))
        values = profile.read_variables(_big_endian(env))
        for name in seen:
            assert values[name] == env.data.lookup_value(name), name
            seen[name].add(values[name])
    # The comparison meant something: score rose, a ship was lost, the ship state moved.
    assert len(seen["score"]) > 1 and len(seen["lives"]) > 1 and len(seen["gameover"]) > 2


def test_airstriker_judge_on_a_real_game(airstriker_env) -> None:
    """Random play at frame skip 4 until the judge says GAME_OVER, stepping with env.em directly."""
    env = airstriker_env
    profile = load_profile(AIRSTRIKER)
    env.reset(seed=0)
    judge = profile.judge(4)
    judge.start(_big_endian(env))
    start_score = env.data.lookup_value("score")
    rng = np.random.default_rng(2)
    total, reason, lives = 0.0, None, [env.data.lookup_value("lives")]
    for _step in range(5000):
        mask = profile.action_set(env.buttons).mask(int(rng.integers(len(profile.actions))))
        env.em.set_button_mask(np.array([mask >> i & 1 for i in range(12)], dtype=np.uint8), 0)
        for _ in range(profile.frame_skip):
            env.em.step()
        env.data.update_ram()
        reward, reason = judge.step(_big_endian(env))
        total += reward
        lives.append(env.data.lookup_value("lives"))
        if reason is not None:
            break
    assert reason is EndReason.GAME_OVER
    # stable-retro's own scenario.json done condition holds at that step...
    assert env.data.lookup_value("lives") == 0 and env.data.lookup_value("gameover") == 1
    # ...lost ships before it did not end the episode, and reward is the score gained.
    assert sorted(set(lives)) == [0, 1, 2, 3]
    assert total == env.data.lookup_value("score") - start_score > 0


def test_airstriker_buttons(airstriker_env) -> None:
    """Which buttons do anything in play: the action set uses exactly those (B fires, LEFT/RIGHT move)."""
    env = airstriker_env
    env.reset(seed=0)
    idle = np.zeros(12, dtype=np.int8)
    for _ in range(150):  # past the level intro
        env.step(idle)
    state = env.em.get_state()

    def screen_after(button: str | None) -> np.ndarray:
        env.em.set_state(state)
        held = idle.copy()
        if button is not None:
            held[env.buttons.index(button)] = 1
        for _ in range(40):
            frame, *_ = env.step(held)
        return frame

    baseline = screen_after(None)
    effective = {b for b in env.buttons if not np.array_equal(screen_after(b), baseline)}
    used = {b for action in load_profile(AIRSTRIKER).actions for b in action}
    assert effective == used == {"B", "LEFT", "RIGHT"}


# --------------------------------------------------------------------------- any console (issue 9 item 1)

NES_PROFILE = """
id = "Paged-NES"
name = "a game with a paged position and a BCD score"
system = "NES"
max_steps = 100

[variables]
x_page = { address = 0x006D, type = "u1" }
x_pixel = { address = 0x0086, type = "u1" }
x = { value = "x_page * 256 + x_pixel" }
timer = { address = 0x0100, type = "u2" }          # no order given: the NES's, little-endian
score_hi = { address = 0x07DD, type = "u1" }
score_lo = { address = 0x07E2, type = "u1" }        # not next to score_hi
score = { value = "bcd(score_hi, score_lo) * 10" }
player_state = { address = 0x000E, type = "u1" }
dying = { value = "player_state & 0x0B" }

[[actions]]
name = "noop"
buttons = []

[[actions]]
name = "right_jump"
buttons = ["RIGHT", "A"]

[reward]
kind = "delta"
variable = "score"

[[end]]
reason = "LIFE_LOST"
edge = true
when = [{ variable = "dying", op = "equal", reference = 0x0B }]
"""


def _nes_ram(**values: int) -> np.ndarray:
    ram = np.zeros(2048, dtype=np.uint8)
    for name, (offset, value) in {
        "x_page": (0x6D, values.get("x_page", 0)), "x_pixel": (0x86, values.get("x_pixel", 0)),
        "score_hi": (0x7DD, values.get("score_hi", 0)), "score_lo": (0x7E2, values.get("score_lo", 0)),
        "player_state": (0x0E, values.get("player_state", 0)),
    }.items():  # fmt: skip
        assert name
        ram[offset] = value
    ram[0x100:0x102] = list(values.get("timer", 0).to_bytes(2, "little"))
    return ram


def test_a_console_s_defaults_and_composed_variables() -> None:
    profile = parse_profile(NES_PROFILE)
    # RAM size, byte order and buttons come from the console (recorder/console_system.py).
    assert (profile.system, profile.ram_size, profile.byte_order) == ("NES", 2048, "little")
    assert profile.buttons == ("UP", "DOWN", "LEFT", "RIGHT", "START", "SELECT", "B", "A")
    assert profile.variable("timer").dtype == "<u2"
    assert (profile.retro_game, profile.ale_game, profile.rom_hashes) == ("", "", ())  # no [retro], [rom]
    values = profile.read_variables(_nes_ram(x_page=3, x_pixel=0x20, score_hi=0x12, score_lo=0x34, timer=0x0102))
    assert values["x"] == 3 * 256 + 0x20
    assert values["score"] == 12340
    assert values["timer"] == 0x0102
    assert parse_profile(profile.text) == profile


def test_an_explicit_byte_order_wins_and_unknown_consoles_say_what_they_need() -> None:
    big = parse_profile(NES_PROFILE.replace('max_steps = 100', 'max_steps = 100\nbyte_order = "big"'))
    assert big.variable("timer").dtype == ">u2"
    assert big.variable("x_page").dtype == "|u1"
    with pytest.raises(ProfileError, match="ram_size is missing"):
        parse_profile(NES_PROFILE.replace('"NES"', '"PCE"'))
    with pytest.raises(ProfileError, match="buttons is missing"):
        parse_profile(NES_PROFILE.replace('"NES"', '"PCE"\nram_size = 8192'))
    with pytest.raises(ProfileError, match=r"variables.timer.type 'u2' needs a byte order"):
        parse_profile(NES_PROFILE.replace('"NES"', '"PCE"\nram_size = 8192\nbuttons = ["RIGHT", "A"]'))
    # An old episode file's profile says "Genesis": it reads as BizHawk's GEN.
    old = load_profile(AIRSTRIKER).text.replace('system = "GEN"', 'system = "Genesis"')
    assert parse_profile(old).system == "GEN"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('x = { value = "x_page * 256 + x_pixel" }', 'x = { value = "x_page * 256 + y" }',
         r"variables.x.value names unknown variables \['y'\]"),
        ('x = { value = "x_page * 256 + x_pixel" }', 'x = { value = "x + 1" }', "depends on itself"),
        ('x = { value = "x_page * 256 + x_pixel" }', 'x = { value = "x_page", address = 1 }', "give value alone"),
        ('x = { value', 'bcd = { value', "not a usable variable name"),
    ],
)  # fmt: skip
def test_bad_composed_variables_fail_in_one_line(old: str, new: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as info:
        parse_profile(NES_PROFILE.replace(old, new, 1), "mine.toml")
    assert "\n" not in str(info.value) and str(info.value).startswith("mine.toml")


def test_composed_variables_may_read_each_other_in_any_order() -> None:
    text = NES_PROFILE.replace("[variables]", '[variables]\nx_tile = { value = "x // 16" }')
    profile = parse_profile(text)
    assert [v.name for v in profile.composed].index("x") < [v.name for v in profile.composed].index("x_tile")
    assert profile.read_variables(_nes_ram(x_page=1, x_pixel=0x40))["x_tile"] == (256 + 0x40) // 16


def test_an_edge_rule_ends_one_episode_per_death_not_each_one_begun_during_it() -> None:
    """Human mode: a new episode begins where the last ended, in the middle of the death animation."""
    profile = parse_profile(NES_PROFILE)
    level = parse_profile(NES_PROFILE.replace("edge = true\n", ""))
    alive, dying = _nes_ram(player_state=0x08), _nes_ram(player_state=0x0B)
    for prof, second_episode_ends in ((profile, False), (level, True)):
        judge = prof.judge(4)
        judge.start(alive)
        assert judge.step(alive)[1] is None
        assert judge.step(dying)[1] is EndReason.LIFE_LOST
        judge = prof.judge(4)  # the next episode starts on the dying frame
        judge.start(dying)
        ended = judge.step(dying)[1] is EndReason.LIFE_LOST
        assert ended is second_episode_ends
    judge = profile.judge(4)
    judge.start(dying)
    assert [judge.step(ram)[1] for ram in (dying, alive, alive, dying)] == [None, None, None, EndReason.LIFE_LOST]


def test_embedded_games_are_optional_and_say_which_emulator_runs_a_profile() -> None:
    airstriker = load_profile(AIRSTRIKER)
    assert airstriker.embedded_game("retro") == AIRSTRIKER
    with pytest.raises(ProfileError, match=r"names no ale-py game \(\[ale\] game\); use --emulator retro"):
        airstriker.embedded_game("ale")
    with pytest.raises(ProfileError, match=r"play it on an external emulator client \(BizHawk\)"):
        parse_profile(NES_PROFILE).embedded_game("retro")


def test_the_examples_in_docs_profiles_md_load() -> None:
    """docs/profiles.md shows a Genesis, an NES-style and an Atari profile; each is one the parser accepts."""
    text = (Path(__file__).parents[2] / "docs" / "profiles.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in text.split("```toml\n")[1:]]
    profiles = [parse_profile(block, "docs/profiles.md") for block in blocks if block.startswith("id = ")]
    assert {p.system for p in profiles} >= {"GEN", "NES", "A26"}
    for profile in profiles:
        assert profile.composed or profile.system == "GEN"
        ram = np.zeros(profile.ram_size, dtype=np.uint8)
        profile.judge(4).start(ram)
        profile.read_variables(ram)


@pytest.mark.parametrize("game", list_profiles())
def test_read_rows_equals_read_variables_row_by_row(game: str) -> None:
    """Column-wise reads (the trainer's lives, from every stored step) agree with per-step reads,
    for RAM variables and composed ones (Demon Attack's lives; x // 0 is 0 in both)."""
    profile = load_profile(game)
    rng = np.random.default_rng(0)
    rams = rng.integers(0, 256, size=(200, profile.ram_size), dtype=np.uint8)
    rams[:20] = 0  # zero divisors and all-zero bytes, which random rows would rarely give
    names = [v.name for v in profile.variables] + [v.name for v in profile.composed]
    for name in names:
        column = profile.read_rows(rams, name)
        assert column.dtype == np.int64 and column.shape == (len(rams),)
        assert column.tolist() == [profile.read_variables(ram)[name] for ram in rams], name
    with pytest.raises(ProfileError, match="no variable"):
        profile.read_rows(rams, "no_such_variable")


def test_demon_attack_lives_are_composed_and_fall_to_zero_at_game_over() -> None:
    profile = load_profile("demon_attack")
    ram = np.zeros((3, profile.ram_size), dtype=np.uint8)
    shown, flag = profile.variable("lives_displayed").address, profile.variable("display_flag").address
    ram[0, shown], ram[1, shown] = 2, 0  # two in reserve, then none: one life in play
    ram[2, shown], ram[2, flag] = 0, 0xBD  # ALE's game over
    assert profile.read_rows(ram, "lives").tolist() == [3, 1, 0]
