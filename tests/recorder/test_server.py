"""The recorder server over real websockets: sessions, bad input of each kind, isolation, crash safety."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from dataset.catalog import check
from dataset.episode import EndReason, EpisodeReader
from dataset.errors import ConfigError, ErrorCode
from recorder import protocol as p
from recorder.server import Recorder, ServerConfig
from recorder.session import STATUS_EVERY_STEPS
from tests.recorder.conftest import H, W, client, handshake, hello, observation, running_recorder


def wait_files(out: Path, n: int, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(out.glob("*.h5"))
        if len(files) >= n:
            return files
        time.sleep(0.02)
    raise AssertionError(f"expected {n} episode files in {out}, found {sorted(out.iterdir())}")


def expect_error(ws, code: int) -> str:  # type: ignore[no-untyped-def]
    """The server's ERROR message, then a close frame with the same code."""
    msg = p.decode(ws.recv(timeout=10))
    assert isinstance(msg, p.Error), msg
    assert msg.code == code, msg
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    return msg.message


def drain(ws, quiet: float = 0.3) -> list[p.Message]:  # type: ignore[no-untyped-def]
    """Every message that arrives until none has for ``quiet`` seconds."""
    msgs = []
    while True:
        try:
            msgs.append(p.decode(ws.recv(timeout=quiet)))
        except TimeoutError:
            return msgs


def scored(i: int, score: int) -> p.Observation:
    """observation(i) with the Airstriker score (big-endian u32 at 0xFF024E) set: reward = its increase."""
    obs = observation(i)
    ram = bytearray(obs.ram)
    ram[0x24E:0x252] = score.to_bytes(4, "big")
    return p.Observation(obs.width, obs.height, obs.pixel_format, obs.pixels, bytes(ram))


def begin(ws, episode: int = 0, frame: int = 0) -> None:  # type: ignore[no-untyped-def]
    ws.send(p.encode(p.EpisodeBegin(episode, frame, 0, b"", observation(0))))


def step(ws, seq: int, frame: int, buttons: tuple[int, ...] = (0, 0, 0, 0)) -> None:  # type: ignore[no-untyped-def]
    ws.send(p.encode(p.Step(seq, frame, seq, buttons, observation(seq))))


def test_human_session_records_exactly_what_was_sent(out: Path) -> None:
    with running_recorder(ServerConfig(out=out, port=0)) as rec:
        with client(rec) as ws:
            welcome = handshake(ws)
            assert welcome.mode == p.Mode.HUMAN and welcome.frame_skip == 4
            begin(ws, frame=10)
            for seq in range(1, 21):
                step(ws, seq, 10 + 4 * seq, buttons=(seq, seq + 1, 1 << 7, 0))
            # The recorder never answers a human-mode step with anything that overrides the player:
            # the only message is the display-only STATUS after step 15.
            assert drain(ws) == [p.Status(0, STATUS_EVERY_STEPS, 0.0, 0.0)]
        [path] = wait_files(out, 1)
    with EpisodeReader(path) as ep:
        assert ep.n_steps == 20
        assert ep.end_reason == EndReason.DISCONNECT
        assert ep.truncated()[-1] and not ep.terminated().any()
        assert ep.meta.mode == "human" and ep.meta.policy_id == "human"
        assert ep.frame_counters().tolist() == [10 + 4 * i for i in range(21)]
        assert ep.buttons()[4].tolist() == [5, 6, 128, 0]
        assert (ep.actions() == -1).all()
        frames = ep.frames()
        assert frames.shape == (21, 4, W, 3)
        assert [int(f[0, 0, 0]) for f in frames] == list(range(21))
        assert ep.ram()[:, 0x100].tolist() == list(range(21))
        assert len(ep.gaps()) == 0
    assert check(path) == []


def test_frame_counter_gap_is_logged_and_recorded(out: Path, caplog: pytest.LogCaptureFixture) -> None:
    with running_recorder(ServerConfig(out=out, port=0)) as rec:
        with client(rec) as ws:
            handshake(ws)
            begin(ws)
            step(ws, 1, 4)
            step(ws, 2, 20)  # expected 8
            step(ws, 3, 24)
        [path] = wait_files(out, 1)
    with EpisodeReader(path) as ep:
        assert ep.gaps().tolist() == [[2, 8, 20]]
    assert "expected 8" in caplog.text


def test_policy_session_lockstep_and_step_limit(out: Path) -> None:
    config = ServerConfig(out=out, port=0, policy="random", max_steps=5, episodes=2)
    with running_recorder(config) as rec:
        with client(rec) as ws:
            handshake(ws, mode=p.Mode.POLICY)
            seq = 0
            frame = 0
            ends = []
            while True:
                msg = p.decode(ws.recv(timeout=10))
                if isinstance(msg, p.Reset):
                    assert msg.load_start_state
                    begin(ws, msg.episode, frame)
                elif isinstance(msg, p.Action):
                    assert msg.seq == seq + 1
                    seq += 1
                    frame += 4
                    ws.send(p.encode(p.Step(seq, frame, 0, (msg.buttons,) * 4, observation(seq))))
                elif isinstance(msg, p.EpisodeEnd):
                    ends.append(msg)
                elif isinstance(msg, p.Stop):
                    assert msg.reason == p.StopReason.DONE
                    break
                else:
                    raise AssertionError(f"unexpected {msg}")  # 5-step episodes get no STATUS
        files = wait_files(out, 2)
    assert [e.steps for e in ends] == [5, 5]
    assert all(e.truncated and not e.terminated and e.reason == EndReason.STEP_LIMIT for e in ends)
    assert {e.file_name for e in ends} == {f.name for f in files}
    with EpisodeReader(files[0]) as ep:
        assert ep.meta.mode == "policy" and ep.meta.policy_id == "random"
        actions = ep.actions()
        assert (actions >= 0).all()
        # The stored buttons are the masks of the chosen actions.
        from recorder.profile import load_profile

        prof = load_profile("Airstriker-Genesis-v0")
        for a, b in zip(actions, ep.buttons(), strict=True):
            assert (b == prof.action_set(hello().buttons).mask(int(a))).all()


def test_status_reports_the_last_reward_and_the_return_so_far(out: Path) -> None:
    """STATUS after every 15th step (issue 3: the tool window shows the last reward)."""
    with running_recorder(ServerConfig(out=out, port=0)) as rec, client(rec) as ws:
        handshake(ws)
        ws.send(p.encode(p.EpisodeBegin(0, 0, 0, b"", scored(0, 0))))
        for seq in range(1, 32):  # score k*k after step k: reward 2k - 1, return k*k
            ws.send(p.encode(p.Step(seq, 4 * seq, 0, (0,) * 4, scored(seq, seq * seq))))
        assert drain(ws) == [p.Status(0, 15, 29.0, 225.0), p.Status(0, 30, 59.0, 900.0)]


def test_policy_mode_status_follows_the_action_and_precedes_the_end(out: Path) -> None:
    config = ServerConfig(out=out, port=0, policy="random", max_steps=2 * STATUS_EVERY_STEPS, episodes=1)
    with running_recorder(config) as rec, client(rec) as ws:
        handshake(ws, mode=p.Mode.POLICY)
        msgs: list[p.Message] = []
        while not msgs or not isinstance(msgs[-1], p.Stop):
            msg = p.decode(ws.recv(timeout=10))
            msgs.append(msg)
            if isinstance(msg, p.Reset):
                ws.send(p.encode(p.EpisodeBegin(msg.episode, 0, 0, b"", scored(0, 0))))
            elif isinstance(msg, p.Action):
                ws.send(p.encode(p.Step(msg.seq, 4 * msg.seq, 0, (msg.buttons,) * 4, scored(msg.seq, 3 * msg.seq))))
    kinds = [m.kind for m in msgs]
    # Step 15: its ACTION first (no lockstep latency), then STATUS. Step 30, the last: STATUS, then the end.
    assert kinds[16:18] == [p.Kind.ACTION, p.Kind.STATUS]
    assert kinds[-4:] == [p.Kind.ACTION, p.Kind.STATUS, p.Kind.EPISODE_END, p.Kind.STOP]
    statuses = [m for m in msgs if isinstance(m, p.Status)]
    assert statuses == [p.Status(0, 15, 3.0, 45.0), p.Status(0, 30, 3.0, 90.0)]
    end = msgs[-2]
    assert isinstance(end, p.EpisodeEnd) and end.episode_return == statuses[-1].episode_return


def test_policy_mode_rejects_a_step_out_of_lockstep(out: Path) -> None:
    with running_recorder(ServerConfig(out=out, port=0, episodes=1)) as rec, client(rec) as ws:
        handshake(ws, mode=p.Mode.POLICY)
        assert isinstance(p.decode(ws.recv(timeout=10)), p.Reset)
        begin(ws)
        assert isinstance(p.decode(ws.recv(timeout=10)), p.Action)
        step(ws, 7, 4)
        assert "seq 7" in expect_error(ws, ErrorCode.UNEXPECTED)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x03\x01\x00", ErrorCode.MALFORMED),
        (b"\x22hello", ErrorCode.UNKNOWN_KIND),
        (p.encode(p.Action(1, 0)), ErrorCode.UNEXPECTED),
    ],
    ids=["malformed", "unknown-kind", "server-only-kind"],
)
def test_bad_messages_during_a_session(out: Path, raw: bytes, code: ErrorCode) -> None:
    with running_recorder(ServerConfig(out=out, port=0)) as rec:
        with client(rec) as ws:
            handshake(ws)
            begin(ws)
            step(ws, 1, 4)
            ws.send(raw)
            expect_error(ws, code)
        # The open episode is still saved, as truncated.
        [path] = wait_files(out, 1)
        with EpisodeReader(path) as ep:
            assert ep.n_steps == 1 and ep.end_reason == EndReason.DISCONNECT


def test_bad_handshakes(out: Path) -> None:
    with running_recorder(ServerConfig(out=out, port=0, token="s3cret")) as rec:
        with client(rec) as ws:
            ws.send(p.encode(hello(token="wrong")))
            assert "token" in expect_error(ws, ErrorCode.AUTH_FAILED)
        with client(rec) as ws:
            data = bytearray(p.encode(hello(token="s3cret")))
            data[1:3] = (9).to_bytes(2, "little")
            ws.send(bytes(data))
            assert "version 9" in expect_error(ws, ErrorCode.VERSION_MISMATCH)
        with client(rec) as ws:
            ws.send(p.encode(hello(token="s3cret", game="NoSuchGame-v0")))
            expect_error(ws, ErrorCode.UNKNOWN_GAME)
        with client(rec) as ws:
            ws.send(p.encode(hello(token="s3cret", game="", rom_name="Unknown ROM", rom_hash="00")))
            assert "Unknown ROM" in expect_error(ws, ErrorCode.UNKNOWN_GAME)
        with client(rec) as ws:
            ws.send(p.encode(hello(token="s3cret", buttons=("UP", "DOWN"))))
            expect_error(ws, ErrorCode.BAD_CONFIG)
        with client(rec) as ws:
            ws.send(p.encode(hello(token="s3cret", ram_size=1024)))
            assert "RAM" in expect_error(ws, ErrorCode.BAD_CONFIG)
        with client(rec) as ws:
            step(ws, 1, 4)
            assert "HELLO" in expect_error(ws, ErrorCode.UNEXPECTED)
        with client(rec) as ws:
            handshake(ws, token="s3cret")
            step(ws, 1, 4)
            assert "before EPISODE_BEGIN" in expect_error(ws, ErrorCode.UNEXPECTED)
        # The right token still works after all of that.
        with client(rec) as ws:
            assert handshake(ws, token="s3cret").profile_id == "Airstriker-Genesis-v0"
    assert list(out.glob("*.h5")) == []


def test_sonic2_client_is_matched_by_rom_hash(out: Path) -> None:
    bizhawk_buttons = ("Up", "Down", "Left", "Right", "A", "B", "C", "Start")
    with running_recorder(ServerConfig(out=out, port=0)) as rec, client(rec) as ws:
        sha1 = "SHA1:8BCA5DCEF1AF3E00098666FD892DC1C2A76333F9"  # BizHawk's form of stable-retro's rom.sha
        welcome = handshake(ws, game="", rom_name="Sonic The Hedgehog 2 (W) (REV01)", rom_hash=sha1,
                            buttons=bizhawk_buttons)  # fmt: skip
        assert welcome.profile_id == "SonicTheHedgehog2-Genesis-v0"


def test_oversized_message_is_refused_and_others_keep_recording(out: Path) -> None:
    with running_recorder(ServerConfig(out=out, port=0)) as rec:
        with client(rec) as good, client(rec) as bad:
            handshake(good)
            begin(good)
            step(good, 1, 4)
            handshake(bad)
            begin(bad)
            bad.send(b"\x03" + bytes(p.MAX_MESSAGE_BYTES + 1))
            with pytest.raises(ConnectionClosed) as closed:
                bad.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == ErrorCode.MESSAGE_TOO_BIG
            # The other client is untouched and keeps recording.
            for seq in range(2, 6):
                step(good, seq, 4 * seq)
        [path] = wait_files(out, 1)
    # The refused client's episode had no step: nothing is saved for it.
    time.sleep(0.3)
    assert sorted(out.glob("*.h5")) == [path] and not list(out.glob(".*.partial*"))
    assert EpisodeReader(path).n_steps == 5


def test_refuses_to_bind_elsewhere_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="token"):
        Recorder(ServerConfig(out=tmp_path, host="0.0.0.0"))
    Recorder(ServerConfig(out=tmp_path, host="0.0.0.0", token="x"))  # allowed with a token


def test_shutdown_saves_open_episodes_as_interrupted(out: Path) -> None:
    with running_recorder(ServerConfig(out=out, port=0)) as rec, client(rec) as ws:
        handshake(ws)
        begin(ws)
        for seq in range(1, 4):
            step(ws, seq, 4 * seq)
        time.sleep(0.2)
        assert rec.loop is not None
        rec.loop.call_soon_threadsafe(rec.shutdown)  # what SIGINT/SIGTERM do
        msgs = []
        with pytest.raises(ConnectionClosed):
            while True:
                msgs.append(p.decode(ws.recv(timeout=10)))
    [path] = wait_files(out, 1)
    with EpisodeReader(path) as ep:
        assert ep.end_reason == EndReason.INTERRUPTED and ep.n_steps == 3
    assert isinstance(msgs[-1], p.Stop) and msgs[-1].reason == p.StopReason.SHUTDOWN
    assert any(isinstance(m, p.EpisodeEnd) and m.reason == EndReason.INTERRUPTED for m in msgs)


def test_human_episode_ends_on_game_over_and_the_next_starts_in_place(out: Path) -> None:
    """Airstriker ends on game over (lives 0 and the ship exploding); the player keeps playing."""
    with running_recorder(ServerConfig(out=out, port=0)) as rec, client(rec) as ws:
        handshake(ws)
        begin(ws)
        ram = np.zeros(65536, dtype=np.uint8)
        ram[0x25A:0x25C] = [0, 0]  # lives 0
        ram[0x266:0x268] = [0, 1]  # ship state 1 (big-endian)
        dead = p.Observation(W, H, p.PixelFormat.RGB24, bytes(W * H * 3), ram.tobytes())
        step(ws, 1, 4)
        ws.send(p.encode(p.Step(2, 8, 0, (0,) * 4, dead)))
        end = p.decode(ws.recv(timeout=10))
        assert isinstance(end, p.EpisodeEnd) and end.terminated and end.reason == EndReason.GAME_OVER
        step(ws, 3, 12)
    files = wait_files(out, 2)
    with EpisodeReader(files[0]) as first, EpisodeReader(files[1]) as second:
        assert first.n_steps == 2 and first.terminated()[-1]
        assert second.n_steps == 1 and second.frame_counters().tolist() == [8, 12]


def test_a_policy_that_cannot_play_the_game_is_refused_in_words(out: Path) -> None:
    def factory(profile, seed):  # type: ignore[no-untyped-def]
        raise ConfigError("this run was trained on another action set")

    with running_recorder(ServerConfig(out=out, port=0), policy_factory=factory) as rec, client(rec) as ws:
        handshake(ws, mode=p.Mode.POLICY)
        assert "another action set" in expect_error(ws, ErrorCode.BAD_CONFIG)


def test_policy_only_recorder_refuses_human_clients(out: Path) -> None:
    with running_recorder(ServerConfig(out=out, port=0, mode=p.Mode.POLICY, policy_only=True)) as rec:
        with client(rec) as ws:
            ws.send(p.encode(hello(mode=p.Mode.HUMAN)))
            assert "policy mode" in expect_error(ws, ErrorCode.BAD_CONFIG)
        with client(rec) as ws:  # "recorder decides" gets policy mode
            assert handshake(ws, mode=p.Mode.ANY).mode == p.Mode.POLICY


def test_client_policy_session_streams_and_drops_steps_past_the_end(out: Path) -> None:
    """Client-policy mode: no ACTION; the recorder still ends episodes and resets them."""
    from recorder.profile import load_profile

    prof = load_profile("Airstriker-Genesis-v0")
    right_fire = prof.action_set(hello().buttons).mask(prof.action_names.index("right_fire"))
    config = ServerConfig(out=out, port=0, max_steps=5, episodes=2)
    with running_recorder(config) as rec, client(rec) as ws:
        handshake(ws, mode=p.Mode.CLIENT_POLICY, policy_id="scripted")
        seq = 0
        for episode in range(2):
            reset = p.decode(ws.recv(timeout=10))
            assert isinstance(reset, p.Reset) and reset.episode == episode
            begin(ws, episode, 0)
            for i in range(1, 8):  # 2 more than the step limit: sent before the news of the end
                seq += 1
                ws.send(p.encode(p.Step(seq, 4 * i, 0, (right_fire,) * 4, observation(i))))
            msgs = [p.decode(ws.recv(timeout=10)) for _ in range(1)]
            assert isinstance(msgs[0], p.EpisodeEnd) and msgs[0].steps == 5 and msgs[0].truncated
        assert isinstance(p.decode(ws.recv(timeout=10)), p.Stop)
        files = wait_files(out, 2)
    for f in files:
        with EpisodeReader(f) as ep:
            assert ep.n_steps == 5 and ep.end_reason == EndReason.STEP_LIMIT
            assert ep.meta.mode == "policy" and ep.meta.policy_id == "scripted"
            assert ("policy_runs_in", "client") in ep.meta.extra
            assert (ep.actions() == prof.action_names.index("right_fire")).all()
            assert (ep.actors() == 1).all() and len(ep.gaps()) == 0


def test_connections_over_the_cap_are_told_to_try_again_later(out: Path) -> None:
    with running_recorder(ServerConfig(out=out, port=0, max_connections=1)) as rec:
        with client(rec) as first:
            handshake(first)
            with client(rec) as second, pytest.raises(ConnectionClosed) as closed:
                second.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == ErrorCode.TRY_AGAIN_LATER
            assert "serves 1 clients" in closed.value.rcvd.reason
        # The slot is free again once the first client has gone.
        deadline = time.monotonic() + 10
        while rec.stats.connections and time.monotonic() < deadline:
            time.sleep(0.02)
        with client(rec) as third:
            handshake(third)


def test_silent_clients_are_closed_before_and_after_hello(out: Path) -> None:
    config = ServerConfig(out=out, port=0, handshake_timeout=0.3, idle_timeout=0.5)
    with running_recorder(config) as rec:
        with client(rec) as mute:
            assert "no HELLO within" in expect_error(mute, ErrorCode.UNEXPECTED)
        with client(rec) as idle:
            handshake(idle)
            begin(idle)
            step(idle, 1, 4)
            started = time.monotonic()
            assert "no message for" in expect_error(idle, ErrorCode.STEP_TIMEOUT)
            assert time.monotonic() - started >= 0.4  # counted from the last message, not the connection
        [path] = wait_files(out, 1)
    with EpisodeReader(path) as ep:
        assert ep.n_steps == 1 and ep.end_reason == EndReason.DISCONNECT


def test_a_client_that_keeps_talking_is_not_idle(out: Path) -> None:
    with running_recorder(ServerConfig(out=out, port=0, idle_timeout=0.4)) as rec, client(rec) as ws:
        handshake(ws)
        begin(ws)
        for seq in range(1, 9):  # 0.8 s in all, 0.1 s apart
            time.sleep(0.1)
            step(ws, seq, 4 * seq)
        assert drain(ws, quiet=0.1) == []


def test_a_hello_naming_a_profile_file_is_refused(out: Path, tmp_path: Path) -> None:
    """Issue 9: a client cannot make the recorder read a file, nor learn whether one exists."""
    from recorder.profile import load_profile

    profile = tmp_path / "secret.toml"
    profile.write_text(load_profile("Airstriker-Genesis-v0").text, encoding="utf-8")
    with running_recorder(ServerConfig(out=out, port=0)) as rec:
        replies = []
        for game in (str(profile), str(tmp_path / "missing.toml")):
            with client(rec) as ws:
                ws.send(p.encode(hello(game=game)))
                replies.append(expect_error(ws, ErrorCode.UNKNOWN_GAME))
    assert all("not a profile id" in r for r in replies)
    # The same words whether or not the file exists, apart from the name the client sent.
    assert replies[0].replace(str(profile), "X") == replies[1].replace(str(tmp_path / "missing.toml"), "X")


def test_bad_values_in_a_session_get_their_code_and_no_file_is_left_half_written(out: Path) -> None:
    """Issue 11: client input never causes 1011; the episode saved so far passes verify."""
    bad = [
        p.Step(2, 8, 0, (0,) * 4, p.Observation(W, H, p.PixelFormat.RGB24, bytes(W * H * 3), bytes(1000))),
        p.Step(2, 8, 0, (1 << 20,) * 4, observation(2)),
        p.Step(2, 2**64 - 1, 0, (0,) * 4, observation(2)),
        p.FramesDropped(2, 2**32 - 1, 8, 8),
    ]
    with running_recorder(ServerConfig(out=out, port=0)) as rec:
        for msg in bad:
            with client(rec) as ws:
                handshake(ws)
                begin(ws)
                step(ws, 1, 4)
                ws.send(p.encode(msg))
                expect_error(ws, ErrorCode.MALFORMED)
        files = wait_files(out, len(bad))
    for f in files:
        assert check(f) == []
        with EpisodeReader(f) as ep:
            assert ep.n_steps == 1 and len(ep.gaps()) == 0


@pytest.mark.parametrize("when", ["disconnect", "shutdown"])
def test_a_full_disk_at_an_episodes_last_save_stops_the_recorder_with_its_reason(
    out: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Issue 11 item 2, the saves that follow no message: a client gone (nobody to tell) or the
    recorder stopping (the client hears why in STOP). Either way the episode is discarded, nothing
    is left behind and Recorder.run raises the StorageError for the command's one line."""
    import asyncio
    import errno

    from websockets.asyncio.client import connect

    from dataset.episode import EpisodeWriter
    from dataset.errors import StorageError

    def full_disk(writer: EpisodeWriter, reason: EndReason) -> Path:
        raise writer._failed(OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(EpisodeWriter, "close", full_disk)
    got: list[p.Message] = []

    async def main() -> None:
        rec = Recorder(ServerConfig(out=out, port=0))
        serving = asyncio.create_task(rec.run())
        await rec.ready.wait()
        async with connect(f"ws://127.0.0.1:{rec.port}", compression=None) as ws:
            await ws.send(p.encode(hello()))
            assert isinstance(p.decode(await ws.recv()), p.Welcome)
            await ws.send(p.encode(p.EpisodeBegin(0, 0, 0, b"", observation(0))))
            await ws.send(p.encode(p.Step(1, 4, 0, (0,) * 4, observation(1))))
            if when == "shutdown":
                await asyncio.sleep(0.2)  # the step is in
                rec.shutdown()
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        got.append(p.decode(await ws.recv()))
                assert closed.value.rcvd is not None and closed.value.rcvd.code == ErrorCode.GOING_AWAY
        with pytest.raises(StorageError, match="output folder full"):
            await asyncio.wait_for(serving, 10)

    asyncio.run(main())
    if when == "shutdown":
        assert [type(m) for m in got] == [p.Stop], got
        assert got[0].message.startswith("the recorder is shutting down: output folder full: ")  # type: ignore[union-attr]
    assert list(out.iterdir()) == []
