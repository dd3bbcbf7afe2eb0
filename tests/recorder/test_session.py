"""The session rules (recorder/session.py), fed messages: no sockets, no sleeps.

Each refusal is checked for its documented code and for leaving the session exactly as it was
(issue 11: a message is validated completely before any state changes), by sending the good
message afterwards and getting what a session that never saw the bad one returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataset.catalog import check
from dataset.episode import Actor, EndReason, EpisodeReader, EpisodeWriter
from dataset.errors import ErrorCode, ProtocolError
from recorder import protocol as p
from recorder.policy import PolicyInput
from recorder.profile import load_profile
from recorder.server_config import ServerConfig
from recorder.session import (
    LAST_SEQ,
    STATUS_EVERY_STEPS,
    Act,
    CloseEpisode,
    Effect,
    MakePolicy,
    OpenEpisode,
    RecordGap,
    Session,
    WriteStep,
)
from tests.recorder.conftest import RETRO_BUTTONS, H, W, hello, observation

AIRSTRIKER = load_profile("Airstriker-Genesis-v0")


class Budget:
    """The recorder's episode budget, as a session sees it."""

    def __init__(self, episodes: int | None = None) -> None:
        self.left = episodes
        self.claimed = 0

    def claim(self) -> bool:
        if self.left is not None and self.claimed >= self.left:
            return False
        self.claimed += 1
        return True


class FirstAction:
    """A policy that always plays action 1 (and counts its resets)."""

    policy_id = "first"
    version = 7

    def __init__(self) -> None:
        self.resets = 0
        self.seen: list[PolicyInput] = []

    def reset(self) -> None:
        self.resets += 1

    def act(self, obs: PolicyInput) -> int:
        self.seen.append(obs)
        return 1


def session(budget: Budget | None = None, **config) -> Session:  # type: ignore[no-untyped-def]
    return Session(
        ServerConfig(out=None, **config), session_id="s1", index=0, claim_episode=(budget or Budget()).claim,
        clock=lambda: 123.0,
    )  # fmt: skip


def kinds(effects: list[Effect]) -> list[str]:
    return [type(e).__name__ for e in effects]


def begin(episode: int = 0, frame: int = 0, obs: p.Observation | None = None) -> p.EpisodeBegin:
    return p.EpisodeBegin(episode, frame, 0, b"state", obs or observation(0))


def step(seq: int, frame: int, buttons: tuple[int, ...] = (0, 0, 0, 0), obs: p.Observation | None = None) -> p.Step:
    return p.Step(seq, frame, 0, buttons, obs or observation(seq))


def human() -> Session:
    """A human-mode session with an open episode (observation 0 at frame 0)."""
    s = session()
    s.receive(hello())
    s.receive(begin())
    return s


def refused(s: Session, msg: p.Message, code: ErrorCode) -> str:
    """The ProtocolError ``msg`` raises, after checking its code and that nothing changed."""
    before = (s.steps, s.episode, s.open, s.next_seq, s.last_frame_counter, s.episode_return, s.pending_reset)
    with pytest.raises(ProtocolError) as err:
        s.receive(msg)
    assert err.value.code == code, err.value
    assert (s.steps, s.episode, s.open, s.next_seq, s.last_frame_counter, s.episode_return, s.pending_reset) == before
    return str(err.value)


def test_human_session_writes_each_step_and_reports_status_every_15() -> None:
    s = session()
    [welcome] = s.receive(hello())
    assert isinstance(welcome, p.Welcome) and welcome.mode == p.Mode.HUMAN and welcome.frame_skip == 4
    [opened] = s.receive(begin(frame=10))
    assert isinstance(opened, OpenEpisode)
    assert opened.frame_counter == 10 and opened.start_state == b"state" and opened.timestamp == 123.0
    assert opened.meta.mode == "human" and opened.meta.policy_id == "human" and opened.meta.episode_index == 0
    assert opened.meta.button_names == RETRO_BUTTONS and opened.frame.shape == (H, W, 3)
    for seq in range(1, STATUS_EVERY_STEPS):
        [write] = s.receive(step(seq, 10 + 4 * seq, buttons=(seq, 0, 128, 0)))
        assert isinstance(write, WriteStep)
        assert write.frame_counter == 10 + 4 * seq and write.buttons.tolist() == [seq, 0, 128, 0]
        assert (write.action, write.actor, write.reward) == (-1, Actor.HUMAN, 0.0)
        assert int(write.frame[0, 0, 0]) == seq
    write, status = s.receive(step(STATUS_EVERY_STEPS, 10 + 4 * STATUS_EVERY_STEPS))
    assert status == p.Status(0, STATUS_EVERY_STEPS, 0.0, 0.0)
    # The session never waits and never overrides the player: nothing else was returned.
    assert [close.reason for close in s.disconnect() if isinstance(close, CloseEpisode)] == [EndReason.DISCONNECT]
    assert s.disconnect() == []


def test_a_frame_counter_gap_is_recorded_and_a_seq_gap_is_tolerated_in_human_mode() -> None:
    s = human()
    s.receive(step(1, 4))
    gap, write = s.receive(step(5, 20))  # seq 2..4 lost, frames 8..16 never seen
    assert gap == RecordGap(2, 8, 20) and isinstance(write, WriteStep)
    [write] = s.receive(step(6, 24))
    assert s.next_seq == 7


def test_policy_mode_lockstep_actions_step_limit_and_budget() -> None:
    budget = Budget(episodes=2)
    s = session(budget, max_steps=2)
    policy = FirstAction()
    welcome, make = s.receive(hello(mode=p.Mode.POLICY))
    assert isinstance(welcome, p.Welcome) and welcome.max_steps == 2
    assert isinstance(make, MakePolicy) and make.profile.id == AIRSTRIKER.id and make.seed == 0
    assert s.play(policy) == [p.Reset(0, load_start_state=True)]
    opened, act = s.receive(begin(0))
    assert isinstance(opened, OpenEpisode) and opened.meta.mode == "policy" and opened.meta.policy_id == "first"
    assert isinstance(act, Act) and act.observation.step == 0 and policy.resets == 1
    mask = AIRSTRIKER.action_set(RETRO_BUTTONS).mask(1)
    assert s.acted(1) == p.Action(1, mask, 1, 7)
    act, write = s.receive(step(1, 4, (mask,) * 4))
    assert isinstance(act, Act) and act.observation.step == 1
    ram = np.frombuffer(observation(1).ram, dtype=np.uint8)
    assert dict(act.observation.variables) == AIRSTRIKER.read_variables(ram)  # read when a policy asks
    assert (write.action, write.actor, write.policy_version) == (1, Actor.POLICY, 7)  # type: ignore[union-attr]
    assert s.acted(1).seq == 2
    write, close, reset = s.receive(step(2, 8, (mask,) * 4))  # the step limit: no ACTION for a step never played
    assert isinstance(write, WriteStep) and reset == p.Reset(1, load_start_state=True)
    assert close == CloseEpisode(0, 2, 0.0, EndReason.STEP_LIMIT, "first", notify=True)
    assert close.message("f.h5") == p.EpisodeEnd(0, 2, int(EndReason.STEP_LIMIT), False, True, 0.0, "f.h5")
    s.receive(begin(1, 8))
    s.acted(0)
    s.receive(step(3, 12))
    s.acted(0)
    *_, close, stop = s.receive(step(4, 16))
    assert isinstance(close, CloseEpisode) and stop == p.Stop(p.StopReason.DONE, "episode budget reached")
    assert s.stopped and s.receive(step(5, 20)) == []  # in flight after STOP: ignored


def test_policy_mode_refuses_a_step_out_of_lockstep_and_a_begin_without_reset() -> None:
    s = session()
    s.receive(hello(mode=p.Mode.POLICY))
    s.play(FirstAction())
    assert "without a matching RESET" in refused(s, begin(3), ErrorCode.UNEXPECTED)
    s.receive(begin(0))
    s.acted(1)
    assert "seq 7" in refused(s, step(7, 4), ErrorCode.UNEXPECTED)
    assert kinds(s.receive(step(1, 4))) == ["Act", "WriteStep"]


def test_client_policy_steps_past_the_end_are_dropped() -> None:
    s = session(max_steps=2)
    right_fire = AIRSTRIKER.action_set(RETRO_BUTTONS).mask(AIRSTRIKER.action_names.index("right_fire"))
    welcome, reset = s.receive(hello(mode=p.Mode.CLIENT_POLICY, policy_id="scripted"))
    assert isinstance(welcome, p.Welcome) and welcome.mode == p.Mode.CLIENT_POLICY
    assert reset == p.Reset(0, load_start_state=True)
    [opened] = s.receive(begin(0))
    assert opened.meta.policy_id == "scripted" and ("policy_runs_in", "client") in opened.meta.extra  # type: ignore[union-attr]
    [write] = s.receive(step(1, 4, (right_fire,) * 4))
    assert write.action == AIRSTRIKER.action_names.index("right_fire")  # type: ignore[union-attr]
    assert kinds(s.receive(step(2, 8, (right_fire,) * 4))) == ["WriteStep", "CloseEpisode", "Reset"]
    assert s.receive(step(3, 12)) == [] and s.discarded == 1
    assert kinds(s.receive(begin(1, 100))) == ["OpenEpisode"]
    assert kinds(s.receive(step(9, 104))) == ["WriteStep"]  # a new episode takes any seq


def test_human_episode_end_starts_the_next_in_place() -> None:
    s = human()
    ram = np.zeros(65536, dtype=np.uint8)
    ram[0x25A:0x25C] = [0, 0]  # lives 0
    ram[0x266:0x268] = [0, 1]  # ship state 1: game over
    dead = p.Observation(W, H, p.PixelFormat.RGB24, bytes(W * H * 3), ram.tobytes())
    write, close, opened = s.receive(step(1, 4, obs=dead))
    assert isinstance(write, WriteStep) and write.reward == 0.0
    assert isinstance(close, CloseEpisode) and close.reason == EndReason.GAME_OVER and close.save
    assert isinstance(opened, OpenEpisode) and opened.frame_counter == 4 and opened.meta.episode_index == 1
    assert opened.start_state is None


def test_a_new_screen_size_ends_the_episode_and_begins_another() -> None:
    s = human()
    big = p.Observation(2 * W, H, p.PixelFormat.RGB24, bytes(2 * W * H * 3), bytes(65536))
    close, opened = s.receive(step(1, 9, obs=big))  # a frame counter gap too: it names no stored step
    assert isinstance(close, CloseEpisode) and close.reason == EndReason.SCREEN_CHANGED and not close.save
    assert isinstance(opened, OpenEpisode) and opened.frame.shape == (H, 2 * W, 3)


def test_interrupt_saves_the_open_episode_and_says_goodbye() -> None:
    s = human()
    s.receive(step(1, 4))
    close, stop = s.interrupt()
    assert isinstance(close, CloseEpisode) and close.reason == EndReason.INTERRUPTED and close.notify
    assert stop == p.Stop(p.StopReason.SHUTDOWN, "the recorder is shutting down")
    assert s.disconnect() == []


def test_interrupt_tells_the_client_why_when_it_is_news() -> None:
    """A full output folder stops the recorder (issue 11 item 2): the STOP says so."""
    s = human()
    s.receive(step(1, 4))
    close, stop = s.interrupt(EndReason.SERVER_STOP, "output folder full: /data (No space left on device)")
    assert isinstance(close, CloseEpisode) and close.reason == EndReason.SERVER_STOP
    assert stop == p.Stop(
        p.StopReason.SHUTDOWN, "the recorder is shutting down: output folder full: /data (No space left on device)"
    )


# --- the handshake -----------------------------------------------------------------------------


def test_the_first_message_must_be_hello_and_only_once() -> None:
    s = session()
    assert "HELLO" in refused(s, step(1, 4), ErrorCode.UNEXPECTED)
    s.receive(hello())
    assert "HELLO" in refused(s, hello(), ErrorCode.UNEXPECTED)
    assert "before EPISODE_BEGIN" in refused(s, step(1, 4), ErrorCode.UNEXPECTED)


@pytest.mark.parametrize(
    ("overrides", "code", "words"),
    [
        ({"token": "wrong"}, ErrorCode.AUTH_FAILED, "token"),
        ({"game": "NoSuchGame-v0"}, ErrorCode.UNKNOWN_GAME, "unknown game"),
        ({"buttons": ("UP", "DOWN")}, ErrorCode.BAD_CONFIG, "button"),
        ({"ram_size": 1024}, ErrorCode.BAD_CONFIG, "RAM is 1024 bytes"),
        ({"screen_width": 0}, ErrorCode.BAD_CONFIG, "0x4"),
        ({"screen_width": 1025}, ErrorCode.BAD_CONFIG, "1..1024"),
        ({"rom_name": "Air\x00striker"}, ErrorCode.MALFORMED, "NUL"),
        ({"mode": p.Mode.HUMAN, "policy_only": True}, ErrorCode.BAD_CONFIG, "policy mode"),
    ],
    ids=["token", "unknown-game", "buttons", "ram", "no-screen", "screen-too-big", "nul", "policy-only"],
)
def test_bad_hellos(overrides: dict, code: ErrorCode, words: str) -> None:
    policy_only = overrides.pop("policy_only", False)
    s = session(token="s3cret", policy_only=policy_only)
    assert words in refused(s, hello(**{"token": "s3cret", **overrides}), code)
    assert s.hello is None
    assert isinstance(s.receive(hello(token="s3cret", mode=p.Mode.POLICY))[0], p.Welcome)


def test_the_codec_refuses_a_hello_over_the_size_limits() -> None:
    encoded = p.encode(hello(screen_width=1024))
    assert p.decode(encoded).screen_width == 1024  # type: ignore[union-attr]
    with pytest.raises(ProtocolError) as err:
        p.decode(encoded.replace(b"\x00\x04\x04\x00", b"\x01\x04\x04\x00", 1))  # width 1025, height 4
    assert err.value.code == ErrorCode.MALFORMED and "1025x4" in str(err.value)
    with pytest.raises(ProtocolError) as err:
        p.decode(p.encode(hello(ram_size=p.MAX_RAM_BYTES + 1)))
    assert err.value.code == ErrorCode.MALFORMED and "RAM" in str(err.value)


@pytest.mark.parametrize(
    "game",
    ["/etc/passwd", "../profiles/x.toml", "x.toml", "C:\\profiles\\x", "~/x", "Airstriker-Genesis-v0/../../x"],
)
def test_a_game_named_by_path_is_refused_without_touching_the_disk(game: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9: a client names a profile id; the recorder looks it up among its own profiles only."""
    looked_up: list[str] = []
    from recorder.profile_library import ProfileLibrary

    monkeypatch.setattr(ProfileLibrary, "get", lambda self, name: looked_up.append(name))
    monkeypatch.setattr(ProfileLibrary, "resolve", lambda self, name: looked_up.append(name))
    s = session()
    assert "not a profile id" in refused(s, hello(game=game), ErrorCode.UNKNOWN_GAME)
    assert looked_up == []


def test_the_recorders_own_profile_file_is_matched_by_its_id(tmp_path: Path) -> None:
    """A recorder started with --game path.toml serves clients that name that profile's id."""
    text = AIRSTRIKER.text.replace('id = "Airstriker-Genesis-v0"', 'id = "MyShooter-Genesis-v0"')
    assert text != AIRSTRIKER.text
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    mine = load_profile(str(path))
    s = Session(ServerConfig(out=None, game=str(path)), session_id="s", index=0, claim_episode=Budget().claim,
                server_profile=mine)  # fmt: skip
    [welcome] = s.receive(hello(game="myshooter-genesis"))
    assert welcome.profile_id == "MyShooter-Genesis-v0"  # type: ignore[union-attr]
    s2 = Session(ServerConfig(out=None), session_id="s", index=0, claim_episode=Budget().claim, server_profile=mine)
    assert s2.receive(hello(game=""))[0].profile_id == "MyShooter-Genesis-v0"  # type: ignore[union-attr]


# --- issue 11: every bad message is refused with its code, and changes nothing -------------------


def packed(obs: p.Observation) -> p.Observation:
    """``obs`` as a zstd-compressed message delivers it (pixels still packed)."""
    z = p.Observation(obs.width, obs.height, obs.pixel_format, obs.pixels, obs.ram, zstd=True)
    decoded = p.decode(p.encode(p.Step(1, 4, 0, (0,) * 4, z)))
    assert isinstance(decoded, p.Step)
    return decoded.observation


def corrupt_pixels() -> p.Observation:
    """A compressed observation whose pixel frame declares the right size but does not decompress."""
    obs = packed(observation(1))
    assert isinstance(obs.pixels, p.Packed)
    data = bytearray(obs.pixels.data)
    data[-6:] = b"\xff" * 6  # the end of the zstd block and its checksum
    return p.Observation(obs.width, obs.height, obs.pixel_format, p.Packed(memoryview(bytes(data)), obs.pixels.size),
                         obs.ram, zstd=True)  # fmt: skip


def with_ram(size: int) -> p.Observation:
    return p.Observation(W, H, p.PixelFormat.RGB24, bytes(W * H * 3), bytes(size))


BAD_STEPS = {
    "ram-size": (step(2, 8, obs=with_ram(1024)), ErrorCode.MALFORMED, "1024 bytes of RAM"),
    "undeclared-button": (step(2, 8, buttons=(0, 1 << 12, 0, 0)), ErrorCode.MALFORMED, "12 buttons"),
    "counter-2^63": (step(2, 2**63), ErrorCode.MALFORMED, "2^63"),
    "corrupt-pixels": (step(2, 8, obs=corrupt_pixels()), ErrorCode.MALFORMED, "zstd"),
    "pixel-format": (
        step(2, 8, obs=p.Observation(W, H, p.PixelFormat.BGRA32, bytes(W * H * 4), bytes(65536))),
        ErrorCode.MALFORMED, "BGRA32",
    ),
    "no-screen": (step(2, 8, obs=p.Observation(0, 0, p.PixelFormat.NONE, b"", bytes(65536))), ErrorCode.MALFORMED,
                  "0x0"),
    "frames": (step(2, 6, buttons=(0, 0)), ErrorCode.UNEXPECTED, "frame skip"),
}  # fmt: skip


@pytest.mark.parametrize("mode", [p.Mode.HUMAN, p.Mode.POLICY])
@pytest.mark.parametrize("bad", list(BAD_STEPS))
def test_a_bad_step_is_refused_before_it_changes_anything(bad: str, mode: p.Mode) -> None:
    msg, code, words = BAD_STEPS[bad]
    s = session()
    s.receive(hello(mode=mode))
    if mode == p.Mode.POLICY:
        policy = FirstAction()
        s.play(policy)
    s.receive(begin())
    if mode == p.Mode.POLICY:
        s.acted(1)
    s.receive(step(1, 4, buttons=(0,) * 4 if mode == p.Mode.HUMAN else (s.actions.mask(1),) * 4))  # type: ignore[union-attr]
    if mode == p.Mode.POLICY:
        s.acted(1)
        acted = len(policy.seen)
    assert words in refused(s, msg, code)
    # Nothing was half-applied: no gap row, no step counted, no ACTION asked for; the good step
    # that follows is taken as if the bad one had never come.
    if mode == p.Mode.POLICY:
        assert len(policy.seen) == acted
    effects = s.receive(step(2, 8, buttons=(0,) * 4 if mode == p.Mode.HUMAN else (s.actions.mask(1),) * 4))  # type: ignore[union-attr]
    assert kinds(effects) == (["WriteStep"] if mode == p.Mode.HUMAN else ["Act", "WriteStep"])
    assert s.steps == 2


def test_a_zero_screen_or_bad_ram_in_episode_begin_is_refused() -> None:
    s = session()
    s.receive(hello())
    empty = p.Observation(0, 0, p.PixelFormat.RGB24, b"", bytes(65536))
    assert "0x0" in refused(s, begin(obs=empty), ErrorCode.MALFORMED)
    assert "RAM" in refused(s, begin(obs=with_ram(65535)), ErrorCode.MALFORMED)
    assert "2^63" in refused(s, begin(frame=2**64 - 1), ErrorCode.MALFORMED)
    assert "zstd" in refused(s, begin(obs=corrupt_pixels()), ErrorCode.MALFORMED)
    assert kinds(s.receive(begin())) == ["OpenEpisode"] and s.episode == 0


def test_a_compressed_observation_is_taken_whole() -> None:
    s = session()
    s.receive(hello())
    [opened] = s.receive(begin(obs=packed(observation(0))))
    assert int(opened.frame[0, 0, 0]) == 0  # type: ignore[union-attr]
    [write] = s.receive(step(1, 4, obs=packed(observation(1))))
    assert int(write.frame[0, 0, 0]) == 1 and write.ram[0x100] == 1  # type: ignore[union-attr]


def test_frames_dropped_records_a_gap_once_and_cannot_push_seq_past_2_32() -> None:
    s = human()
    s.receive(step(1, 4))
    assert "past the last seq" in refused(s, p.FramesDropped(LAST_SEQ - 2, 3, 8, 16), ErrorCode.MALFORMED)
    assert "0 skipped" in refused(s, p.FramesDropped(2, 0, 8, 16), ErrorCode.MALFORMED)
    assert "2^63" in refused(s, p.FramesDropped(2, 3, 8, 2**63), ErrorCode.MALFORMED)
    assert s.receive(p.FramesDropped(2, 3, 8, 16)) == [RecordGap(2, 8, 16)] and s.next_seq == 5
    # A second report before any STEP is a gap flood.
    assert "two FRAMES_DROPPED" in refused(s, p.FramesDropped(5, 1, 20, 20), ErrorCode.UNEXPECTED)
    gap, _ = s.receive(step(5, 20))
    assert gap == RecordGap(2, 8, 20)  # the STEP's own jump from frame 4, as the recorder always logged
    assert s.receive(p.FramesDropped(6, LAST_SEQ - 7, 24, 24)) == [RecordGap(3, 24, 24)]
    assert s.next_seq == LAST_SEQ - 1


def saved_episode(tmp_path: Path, messages: list[p.Message]) -> Path:
    """Feed a human session ``messages``, carry out its writer effects with a real EpisodeWriter,
    disconnect, and return the saved file (the server's ``_do``, without sockets)."""
    s = session()
    writer: EpisodeWriter | None = None
    saved: list[Path] = []
    for effects in [*(s.receive(m) for m in [hello(), *messages]), s.disconnect()]:
        for e in effects:
            if isinstance(e, OpenEpisode):
                writer = EpisodeWriter(tmp_path, e.meta, frame_shape=e.frame.shape, ram_size=len(e.ram),  # type: ignore[arg-type]
                                       buttons_per_step=4, start_state=e.start_state)  # fmt: skip
                writer.begin(e.frame, e.ram, e.frame_counter, e.timestamp)
            elif isinstance(e, RecordGap):
                assert writer is not None
                writer.add_gap(e.step, e.expected_frame, e.got_frame)
            elif isinstance(e, WriteStep):
                assert writer is not None
                writer.step(frame=e.frame, ram=e.ram, frame_counter=e.frame_counter, timestamp=e.timestamp,
                            buttons=e.buttons, action=e.action, actor=e.actor, policy_version=e.policy_version,
                            reward=e.reward)  # fmt: skip
            elif isinstance(e, CloseEpisode):
                assert writer is not None
                saved.append(writer.close(e.reason))
    [path] = saved
    return path


@pytest.mark.parametrize(
    ("report", "next_frame", "gaps"),
    [
        ((2, 3, 8, 16), 20, [[2, 8, 16], [2, 8, 20]]),  # as the BizHawk tool reports: the jump follows
        ((2, 3, 8, 16), 8, [[2, 8, 16], [2, 8, 8]]),  # the report says 3 steps, the counter says none
        ((2, 3, 8, 0), 28, [[2, 8, 0], [2, 8, 28]]),  # a range that disagrees with the next counter
    ],
    ids=["consistent", "no-jump", "disagreeing-range"],
)
def test_a_frames_dropped_report_always_leaves_a_file_that_verify_accepts(
    tmp_path: Path, report: tuple[int, int, int, int], next_frame: int, gaps: list[list[int]]
) -> None:
    """Issue 11 (fuzz seed 3): the step after a drop notice records its own gap row, whatever the
    report's range says, so the row always names the frame counter stored (docs/dataset-format.md)."""
    path = saved_episode(tmp_path, [begin(), step(1, 4), p.FramesDropped(*report), step(5, next_frame),
                                    step(6, next_frame + 4)])  # fmt: skip
    assert check(path) == []
    with EpisodeReader(path) as ep:
        assert ep.gaps().tolist() == gaps
        assert ep.frame_counters().tolist() == [0, 4, next_frame, next_frame + 4]


def test_the_last_seq_numbers_and_frame_counters_are_refused_before_they_overflow() -> None:
    s = session()
    s.receive(hello(mode=p.Mode.POLICY))
    s.play(FirstAction())
    s.receive(begin(frame=2**63 - 3))
    s.acted(1)
    # Frame 2**63 - 3 + 4 cannot be stored: a STEP that would need it as its expected counter is refused.
    assert "2^63" in refused(s, step(1, 5), ErrorCode.MALFORMED)
    s2 = session()
    s2.receive(hello(mode=p.Mode.POLICY))
    s2.play(FirstAction())
    s2.receive(begin())
    s2.next_seq = LAST_SEQ  # a connection 4 billion steps old: the next ACTION would need seq 2^32
    s2.acted(1)
    assert "seq numbers" in refused(s2, step(LAST_SEQ, 4), ErrorCode.UNEXPECTED)


def test_a_profile_that_cannot_judge_the_start_is_a_bad_config() -> None:
    """Sonic 2's progress reward needs the level's end: an unknown level is refused in words (4006)."""
    sonic = load_profile("SonicTheHedgehog2-Genesis-v0")
    s = session(game=sonic.id)
    s.receive(hello(game=sonic.id, buttons=sonic.buttons))
    ram = np.zeros(65536, dtype=np.uint8)
    ram[0xFE10] = 0x7F  # zone (0xFFFE10): no such zone
    obs = p.Observation(W, H, p.PixelFormat.RGB24, bytes(W * H * 3), ram.tobytes())
    assert "cannot judge" in refused(s, begin(obs=obs), ErrorCode.BAD_CONFIG)


def test_a_policy_that_answers_end_episode_ends_it_without_an_action() -> None:
    """recorder.policy.EndEpisode (the Gymnasium env's reset mid-episode): the step is kept, then the end."""
    s = session()
    s.receive(hello(mode=p.Mode.POLICY))
    s.play(FirstAction())
    s.receive(begin(0))
    s.acted(1)
    assert kinds(s.receive(step(1, 4, (s.actions.mask(1),) * 4))) == ["Act", "WriteStep"]  # type: ignore[union-attr]
    close, reset = s.policy_ended(EndReason.AGENT_RESET)
    assert close == CloseEpisode(0, 1, 0.0, EndReason.AGENT_RESET, "first", notify=True)
    assert reset == p.Reset(1, load_start_state=True) and not s.open
