"""The C# BizHawk tool's session code against the real recorder.

The headless client (bizhawk_recorder_tool/test_client) runs the tool's own
src/Core sources, compiled by Mono's mcs, on a synthetic emulator whose screen
and RAM are pure functions of (frame counter, x, size); ``expected_frame`` and
``expected_ram`` below re-implement them (SyntheticEmulator.cs and
SyntheticSystem.cs document the formulas). The emulator is Genesis-like
(``--system gen``, the shipped Airstriker profile) or an NES-like 8-bit console
(``--system nes``: 2 KiB of RAM, 8 buttons) recorded with a user profile written
to the test's temporary folder and passed as ``--game path.toml``. Each test
starts ``sonic-rec record`` in a subprocess, runs the client, and checks that
the HDF5 files hold exactly what the client logged it sent: frames (BGRA32 on
the wire, RGB in the file), RAM, button masks and frame counters.
``--session-check`` drives the session rules (ClientSession) with no socket.

Mono is required: these tests fail, never skip, when ``mcs`` or ``mono`` is
missing (install it with bizhawk_recorder_tool/ci-setup.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from dataset.episode import EndReason, EpisodeReader
from recorder.session import STATUS_EVERY_STEPS

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "bizhawk_recorder_tool"
EXE = TOOL / "bin" / "SonicRecHeadless.exe"
GAME = "Airstriker-Genesis-v0"
GENESIS_BUTTONS = ["Up", "Down", "Left", "Right", "A", "B", "C", "Start"]
NES_BUTTONS = ["Up", "Down", "Left", "Right", "Select", "Start", "B", "A"]  # SyntheticSystem.Nes, player 1
START_FRAME = 1000  # SyntheticEmulator.StartFrame
SONIC_REC = str(Path(sys.executable).with_name("sonic-rec"))


# --- the synthetic emulator's observations, re-implemented ------------------------------


def expected_frame(f: int, x: int, w: int, h: int) -> np.ndarray:
    """(h, w, 3) RGB of SyntheticEmulator.Capture: B=(c+f), G=(2r+x), R=(c^r^(f>>2)), all & 255."""
    f &= 0x7FFFFFFF
    c = np.arange(w, dtype=np.int64)[None, :]
    r = np.arange(h, dtype=np.int64)[:, None]
    blue = (c + f) & 255
    green = np.broadcast_to((2 * r + x) & 255, (h, w))
    red = (c ^ r ^ (f >> 2)) & 255
    return np.stack([red, np.broadcast_to(green, (h, w)), np.broadcast_to(blue, (h, w))], axis=-1).astype(np.uint8)


def expected_ram(f: int, x: int, system: str = "gen") -> np.ndarray:
    """SyntheticEmulator's RAM: byte i is (7i + f + x) & 255, except the system's profile variables.

    gen: 64 KiB, the Airstriker variables big-endian (68000 order); nes: 2 KiB, score a
    little-endian u16 at 0x10 (f & 0xFFFF) and lives a byte at 0x20 (3), as an 8-bit console holds them.
    """
    size = 65536 if system == "gen" else 2048
    ram = ((7 * np.arange(size, dtype=np.int64) + (f & 0x7FFFFFFF) + x) & 255).astype(np.uint8)
    if system == "gen":
        ram[0x024E:0x0252] = np.frombuffer((f & 0xFFFFFFFF).to_bytes(4, "big"), dtype=np.uint8)
        ram[0x025A:0x025C] = [0, 3]
        ram[0x0266:0x0268] = [0, 9]
    else:
        ram[0x0010:0x0012] = np.frombuffer((f & 0xFFFF).to_bytes(2, "little"), dtype=np.uint8)
        ram[0x0020] = 3
    return ram


def write_nes_profile(folder: Path, system: str = "NES") -> Path:
    """A user's profile for the synthetic 8-bit game (docs/profiles.md), as a file outside the package.

    No [retro] or [rom] sha1: a game only an external client runs needs neither (issue 9 item 1).
    """
    path = folder / "synthetic8bit.toml"
    path.write_text(
        f"""
id = "Synthetic8bit-NES"
name = "Synthetic 8-bit game (C# headless client test)"
system = "{system}"
ram_size = 2048
max_steps = 4500
frame_skip = 4
buttons = ["UP", "DOWN", "LEFT", "RIGHT", "SELECT", "START", "B", "A"]

[rom]
names = ["synthetic test ROM"]

[variables]
score = {{ address = 0x0010, type = "<u2" }}   # little-endian, as the 6502 stores it
lives = {{ address = 0x0020, type = "|u1" }}

[[actions]]
name = "noop"
buttons = []

[[actions]]
name = "right"
buttons = ["RIGHT"]

[[actions]]
name = "left"
buttons = ["LEFT"]

[[actions]]
name = "jump"
buttons = ["A"]

[[actions]]
name = "right_jump"
buttons = ["RIGHT", "A"]

[reward]
kind = "delta"
variable = "score"

[[end]]
reason = "LIFE_LOST"
when = [{{ variable = "lives", op = "decreased" }}]
""",
        encoding="utf-8",
    )
    return path


def dx(mask: int) -> int:
    """x change of one frame: Right (bit 3) +1, Left (bit 2) -1."""
    return ((mask >> 3) & 1) - ((mask >> 2) & 1)


# --- build, recorder and client helpers --------------------------------------------------


@pytest.fixture(scope="module")
def headless() -> Path:
    missing = [tool for tool in ("mcs", "mono") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the C# tool's tests need Mono; "
            "run bizhawk_recorder_tool/ci-setup.sh (apt-get install mono-mcs mono-devel)"
        )
    sources = [*TOOL.glob("src/Core/*.cs"), *TOOL.glob("test_client/*.cs"), TOOL / "build.sh"]
    if not EXE.exists() or EXE.stat().st_mtime < max(s.stat().st_mtime for s in sources):
        build = subprocess.run(["bash", str(TOOL / "build.sh")], capture_output=True, text=True, timeout=300)
        assert build.returncode == 0, f"build.sh failed:\n{build.stdout}\n{build.stderr}"
    return EXE


class Recorder:
    """``sonic-rec record`` in a subprocess; ``url`` once it printed ``listening on``."""

    def __init__(self, out: Path, *args: str) -> None:
        self.out = out
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        self.proc = subprocess.Popen(
            [SONIC_REC, "record", "--out", str(out), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        # _drain sets _ready on "listening on", or when the recorder exits without listening.
        if not self._ready.wait(60) or not self.url:
            self.stop()
            raise AssertionError("recorder did not start:\n" + "\n".join(self.lines[-30:]))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            for line in raw.replace("\r", "\n").splitlines():
                self.lines.append(line)
                if line.startswith("listening on ws://") and not self._ready.is_set():
                    self.url = line.split("listening on ", 1)[1].strip()
                    self._ready.set()
        self._ready.set()

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def recorder(out: Path, *args: str) -> Iterator[Recorder]:
    rec = Recorder(out, *args)
    try:
        yield rec
    finally:
        rec.stop()


def run_client(
    exe: Path, url: str, *args: str, log: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    cmd = ["mono", str(exe), "--url", url, "--timeout-s", str(int(timeout) - 5), *args]
    if log is not None:
        cmd += ["--log", str(log)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def episodes(out: Path) -> list[EpisodeReader]:
    readers = [EpisodeReader(p) for p in sorted(out.glob("*.h5"))]
    return sorted(readers, key=lambda r: r.meta.episode_index)


def check_statuses(eps: list[EpisodeReader], sent: list[dict], stderr: str) -> list[dict]:
    """Every STATUS the C# client received names a step of a saved episode, with its reward and return."""
    statuses = [e for e in sent if e["t"] == "status"]
    for st in statuses:
        rewards = eps[st["episode"]].rewards()
        assert st["steps"] % STATUS_EVERY_STEPS == 0 and 0 < st["steps"] <= len(rewards), st
        assert st["reward"] == rewards[st["steps"] - 1], st
        assert st["return"] == pytest.approx(float(rewards[: st["steps"]].sum()), abs=1e-9), st
    last = statuses[-1]
    # What the tool window shows as "last reward (return so far)", printed by the headless client.
    assert f"status: episode {last['episode']} steps {last['steps']} reward" in stderr
    line = next(x for x in stderr.splitlines() if x.startswith("status: "))
    _, _, ep, _, steps, _, reward, _, ret = line.split()
    shown = (int(ep), int(steps), float(reward), float(ret))
    assert shown == (last["episode"], last["steps"], last["reward"], last["return"])
    return statuses


def check_observations(reader: EpisodeReader, by_frame: dict[int, dict], system: str = "gen") -> None:
    """Every stored frame and RAM equals what the client sent for that frame counter."""
    counters = reader.frame_counters()
    frames = reader.frames()
    ram = reader.ram()
    for k, fc in enumerate(counters.tolist()):
        sent = by_frame[fc]
        assert frames[k].shape == (sent["h"], sent["w"], 3)
        np.testing.assert_array_equal(
            frames[k], expected_frame(fc, sent["x"], sent["w"], sent["h"]), err_msg=f"frame {fc}"
        )
        np.testing.assert_array_equal(ram[k], expected_ram(fc, sent["x"], system), err_msg=f"RAM at frame {fc}")


# --- tests -------------------------------------------------------------------------------


def test_human_mode_records_exactly_what_the_client_sent(headless: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    with recorder(out, "--port", "0", "--game", GAME, "--episodes", "2", "--max-steps", "150") as rec:
        res = run_client(headless, rec.url, "--mode", "human", "--fps", "300", log=log)
        assert res.returncode == 0, res.stderr
        assert rec.wait() == 0
    sent = read_log(log)
    steps = [e for e in sent if e["t"] == "step"]
    begin = next(e for e in sent if e["t"] == "begin")
    assert begin["frame"] == START_FRAME and begin["state"] == 16
    assert all(s["queued"] for s in steps), "no step may be skipped at this pace"
    by_frame = {begin["frame"]: begin} | {s["frame"]: s for s in steps}
    eps = episodes(out)
    assert [r.n_steps for r in eps] == [150, 150]
    assert [r.end_reason for r in eps] == [EndReason.STEP_LIMIT] * 2
    # The second episode starts from the last observation of the first (docs/protocol.md, human mode).
    assert eps[1].frame_counters()[0] == eps[0].frame_counters()[-1]
    recorded_steps = 0
    for r in eps:
        assert list(r.meta.button_names) == GENESIS_BUTTONS
        assert r.meta.mode == "human"
        counters = r.frame_counters().tolist()
        assert np.all(np.diff(counters) == 4)
        check_observations(r, by_frame)
        np.testing.assert_array_equal(r.buttons(), np.array([by_frame[fc]["masks"] for fc in counters[1:]]))
        # score (big-endian u32 at 0xFF024E) = frame counter, so each 4-frame step earns 4:
        # the recorder read the RAM in the 68000's byte order the tool sent.
        np.testing.assert_array_equal(r.rewards(), np.full(r.n_steps, 4.0))
        assert r.gaps().shape == (0, 3)
        recorded_steps += r.n_steps
    assert recorded_steps == 300
    # STATUS after steps 15, 30, ..., 150 of both episodes; the last one (step 150, sent just before
    # EPISODE_END) carries the saved episode's whole return.
    statuses = check_statuses(eps, sent, res.stderr)
    assert [(st["episode"], st["steps"]) for st in statuses] == [(e, 15 * k) for e in (0, 1) for k in range(1, 11)]
    assert statuses[-1]["return"] == float(eps[1].rewards().sum()) == 600.0


def test_policy_mode_lockstep_buttons_and_resets(headless: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    n_eps, n_steps = 8, 20
    with recorder(
        out, "--port", "0", "--game", GAME, "--mode", "policy", "--policy", "random",
        "--episodes", str(n_eps), "--max-steps", str(n_steps),
    ) as rec:  # fmt: skip
        res = run_client(headless, rec.url, "--mode", "policy", log=log)
        assert res.returncode == 0, res.stderr
        assert rec.wait() == 0
    assert f"loads={n_eps}" in res.stdout  # one start-state load per RESET, 8 in a row
    assert "unsynced=0" in res.stdout and "mismatched=0" in res.stdout
    sent = read_log(log)
    actions = {e["seq"]: e["buttons"] for e in sent if e["t"] == "action"}
    steps = [e for e in sent if e["t"] == "step"]
    assert len(steps) == n_eps * n_steps
    # Lockstep: every STEP holds, on all 4 frames, the buttons of the ACTION with its seq.
    for s in steps:
        assert s["masks"] == [actions[s["seq"]]] * 4
    eps = episodes(out)
    assert len(eps) == n_eps
    moved = False
    for i, r in enumerate(eps):
        assert r.n_steps == n_steps and r.end_reason == EndReason.STEP_LIMIT
        assert r.meta.mode == "policy"
        counters = r.frame_counters().tolist()
        assert counters == [START_FRAME + 4 * k for k in range(n_steps + 1)], "each episode starts from the start state"
        mine = steps[i * n_steps : (i + 1) * n_steps]
        by_frame = {START_FRAME: {"x": 0, "w": 320, "h": 224}} | {s["frame"]: s for s in mine}
        check_observations(r, by_frame)
        np.testing.assert_array_equal(r.buttons(), np.array([s["masks"] for s in mine]))
        # The buttons reached the emulator: x moved exactly as the masks say.
        xs = [0] + [s["x"] for s in mine]
        assert all(xs[k + 1] - xs[k] == sum(dx(m) for m in mine[k]["masks"]) for k in range(n_steps))
        moved |= any(x != 0 for x in xs)
        assert r.start_state() == START_FRAME.to_bytes(8, "little") + bytes(8)
    assert moved, "a random policy over 160 steps should move the ship"
    # One STATUS per 20-step episode (after step 15), received between the lockstep ACTIONs.
    statuses = check_statuses(eps, sent, res.stderr)
    assert [(st["episode"], st["steps"]) for st in statuses] == [(e, 15) for e in range(n_eps)]
    assert all(st["reward"] == 4.0 and st["return"] == 60.0 for st in statuses)


def test_8bit_system_human_mode_with_a_user_profile(headless: Path, tmp_path: Path) -> None:
    """Any console: 2 KiB of little-endian RAM and an 8-button pad, recorded with a profile from a temp folder."""
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    profile = write_nes_profile(tmp_path)
    with recorder(out, "--port", "0", "--game", str(profile), "--episodes", "1", "--max-steps", "60") as rec:
        res = run_client(
            headless, rec.url, "--system", "nes", "--width", "256", "--height", "240", "--mode", "human",
            "--fps", "300", log=log,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert rec.wait() == 0
    # What the tool window shows: the domain the table chose for NES, and player 1's buttons
    # without the "P1 " prefix, P2 and the console's Power/Reset left out.
    assert 'NES on synthetic 8-bit: RAM from domain "RAM" (2048 bytes, little-endian)' in res.stderr
    assert "8 buttons for player 1 (Up, Down, Left, Right, Select, Start, B, A)" in res.stderr
    sent = read_log(log)
    steps = [e for e in sent if e["t"] == "step"]
    begin = next(e for e in sent if e["t"] == "begin")
    assert all(s["queued"] for s in steps)
    by_frame = {begin["frame"]: begin} | {s["frame"]: s for s in steps}
    (r,) = episodes(out)
    assert r.n_steps == 60 and r.end_reason == EndReason.STEP_LIMIT
    assert r.meta.game == "Synthetic8bit-NES" and r.meta.system == "NES"
    assert list(r.meta.button_names) == NES_BUTTONS
    assert r.ram().shape == (61, 2048)
    counters = r.frame_counters().tolist()
    assert np.all(np.diff(counters) == 4)
    check_observations(r, by_frame, "nes")
    np.testing.assert_array_equal(r.buttons(), np.array([by_frame[fc]["masks"] for fc in counters[1:]]))
    # score is a little-endian u16 at 0x10 equal to the frame counter: 4 per 4-frame step means
    # the recorder read the 8-bit console's RAM in the byte order the tool sent it.
    np.testing.assert_array_equal(r.rewards(), np.full(60, 4.0))
    assert r.gaps().shape == (0, 3)


def test_8bit_system_matched_by_rom_in_the_users_profile_folder(
    headless: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --game and no game in HELLO: the client's ROM finds the profile in the user's own folder."""
    folder = tmp_path / "config" / "sonic-rl" / "profiles"  # recorder.profile_library.user_profile_folder
    folder.mkdir(parents=True)
    write_nes_profile(tmp_path).rename(folder / "Synthetic8bit-NES.toml")  # a folder holds <id>.toml
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "config"))
    out = tmp_path / "out"
    with recorder(out, "--port", "0", "--episodes", "1", "--max-steps", "8") as rec:
        res = run_client(headless, rec.url, "--system", "nes", "--width", "256", "--height", "240", "--mode", "human",
                         "--fps", "300")  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert rec.wait() == 0
    (r,) = episodes(out)
    assert r.meta.game == "Synthetic8bit-NES" and r.meta.rom_name == "synthetic test ROM" and r.n_steps == 8


def test_8bit_system_policy_mode_maps_actions_to_the_clients_buttons(headless: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    profile = write_nes_profile(tmp_path)
    n_eps, n_steps = 2, 30
    with recorder(
        out, "--port", "0", "--game", str(profile), "--mode", "policy", "--policy", "random",
        "--episodes", str(n_eps), "--max-steps", str(n_steps),
    ) as rec:  # fmt: skip
        res = run_client(headless, rec.url, "--system", "nes", "--width", "256", "--height", "240", log=log)
        assert res.returncode == 0, res.stderr
        assert rec.wait() == 0
    assert f"loads={n_eps}" in res.stdout and "unsynced=0" in res.stdout and "mismatched=0" in res.stdout
    sent = read_log(log)
    actions = {e["seq"]: e for e in sent if e["t"] == "action"}
    # The profile's actions (noop, right, left, jump = A, right_jump) in the client's own bit order:
    # Left bit 2, Right bit 3, A bit 7 of Up Down Left Right Select Start B A.
    masks = [0, 1 << 3, 1 << 2, 1 << 7, (1 << 3) | (1 << 7)]
    assert all(a["buttons"] == masks[a["action"]] for a in actions.values())
    steps = [e for e in sent if e["t"] == "step"]
    assert len(steps) == n_eps * n_steps
    for s in steps:
        assert s["masks"] == [actions[s["seq"]]["buttons"]] * 4
    eps = episodes(out)
    assert [r.n_steps for r in eps] == [n_steps] * n_eps
    moved = False
    for i, r in enumerate(eps):
        assert r.meta.mode == "policy" and list(r.meta.button_names) == NES_BUTTONS
        mine = steps[i * n_steps : (i + 1) * n_steps]
        by_frame = {START_FRAME: {"x": 0, "w": 256, "h": 240}} | {s["frame"]: s for s in mine}
        check_observations(r, by_frame, "nes")
        np.testing.assert_array_equal(r.buttons(), np.array([s["masks"] for s in mine]))
        np.testing.assert_array_equal(r.actions(), np.array([actions[s["seq"]]["action"] for s in mine]))
        xs = [0] + [s["x"] for s in mine]
        assert all(xs[k + 1] - xs[k] == sum(dx(m) for m in mine[k]["masks"]) for k in range(n_steps))
        moved |= any(x != 0 for x in xs)
    assert moved, "a random policy over 60 steps should move"


def test_disconnect_mid_episode_is_saved_truncated(headless: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    with recorder(out, "--port", "0", "--game", GAME, "--max-steps", "1000") as rec:
        res = run_client(headless, rec.url, "--mode", "human", "--fps", "400", "--disconnect-after", "40", log=log)
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 20
        while not list(out.glob("*.h5")) and time.monotonic() < deadline:
            time.sleep(0.1)
    (r,) = episodes(out)
    assert r.end_reason == EndReason.DISCONNECT
    assert r.n_steps == 40
    sent = read_log(log)
    by_frame = {e["frame"]: e for e in sent if e["t"] in ("begin", "step")}
    check_observations(r, by_frame)


def test_wrong_token_is_reported_in_words(headless: Path, tmp_path: Path) -> None:
    with recorder(tmp_path / "out", "--port", "0", "--game", GAME, "--token", "right-token") as rec:
        res = run_client(headless, rec.url, "--mode", "human", "--token", "wrong", "--no-reconnect")
    assert res.returncode == 1
    error_line = [line for line in res.stderr.splitlines() if line.startswith("error: ")][-1]
    assert "4004" in error_line and "token" in error_line
    assert "the recorder refused" in error_line
    assert not list((tmp_path / "out").glob("*.h5"))


def test_oversized_message_is_refused_with_1009(headless: Path, tmp_path: Path) -> None:
    # 2100x2000 BGRA32 is 16,800,000 pixel bytes: over the 16 MiB message limit.
    out = tmp_path / "out"
    with recorder(out, "--port", "0", "--game", GAME, "--max-steps", "1000") as rec:
        res = run_client(
            headless, rec.url, "--mode", "human", "--resize-at", "3", "--resize", "2100x2000",
            "--no-size-check", "--no-reconnect",
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not list(out.glob("*.h5")) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert res.returncode == 1, res.stderr
    error_line = [line for line in res.stderr.splitlines() if line.startswith("error: ")][-1]
    assert "1009" in error_line and "16 MiB" in error_line
    (r,) = episodes(out)  # what came before the oversized message is kept
    assert r.end_reason == EndReason.DISCONNECT and r.n_steps >= 2


def test_oversized_message_is_stopped_before_sending(headless: Path, tmp_path: Path) -> None:
    with recorder(tmp_path / "out", "--port", "0", "--game", GAME, "--max-steps", "1000") as rec:
        res = run_client(headless, rec.url, "--mode", "human", "--resize-at", "3", "--resize", "2100x2000")
    assert res.returncode == 1
    assert "over the 16 MiB limit" in res.stderr and "lower the screen size" in res.stderr


def test_screen_side_over_1024_is_malformed(headless: Path, tmp_path: Path) -> None:
    with recorder(tmp_path / "out", "--port", "0", "--game", GAME, "--max-steps", "1000") as rec:
        res = run_client(
            headless, rec.url, "--mode", "human", "--resize-at", "3", "--resize", "1100x8", "--no-reconnect"
        )
    assert res.returncode == 1
    error_line = [line for line in res.stderr.splitlines() if line.startswith("error: ")][-1]
    assert "4000" in error_line and "1024" in error_line


def test_full_send_queue_is_reported_as_dropped_frames(headless: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    with recorder(out, "--port", "0", "--game", GAME, "--episodes", "1", "--max-steps", "80") as rec:
        # The sender is held for 0.5 s from step 10 while the game goes on at 800 frames/s:
        # the 2-slot queue fills, and the STEPs that do not fit are skipped and reported.
        res = run_client(
            headless, rec.url, "--mode", "human", "--fps", "800", "--queue", "2",
            "--hold-sends-at", "10", "--hold-ms", "500", log=log,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        rec.wait()
    steps = [e for e in read_log(log) if e["t"] == "step"]
    skipped = [s for s in steps if not s["queued"]]
    assert skipped and f"dropped={len(skipped)}" in res.stdout
    (r,) = episodes(out)
    counters = r.frame_counters().tolist()
    stored = set(counters[1:])
    assert not stored & {s["frame"] for s in skipped}, "a skipped step cannot be in the file"
    first_skip = skipped[0]
    gaps = r.gaps()
    assert len(gaps) >= 1
    # The gap row names the step after the last one stored before the skip, and the frame range.
    assert gaps[0, 1] == first_skip["frame"]
    by_frame = {e["frame"]: e for e in read_log(log) if e["t"] in ("begin", "step")}
    check_observations(r, by_frame)
    np.testing.assert_array_equal(r.buttons(), np.array([by_frame[fc]["masks"] for fc in counters[1:]]))


def test_client_reconnects_with_backoff_until_the_recorder_is_up(headless: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    client = subprocess.Popen(
        ["mono", str(headless), "--url", f"ws://127.0.0.1:{port}", "--mode", "policy", "--timeout-s", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(1.2)  # at least one refused attempt before the recorder listens
    with recorder(
        tmp_path / "out", "--port", str(port), "--game", GAME, "--mode", "policy", "--policy", "random",
        "--episodes", "1", "--max-steps", "10",
    ):  # fmt: skip
        _stdout, stderr = client.communicate(timeout=45)
    assert client.returncode == 0, stderr
    assert "retrying in" in stderr
    (r,) = episodes(tmp_path / "out")
    assert r.n_steps == 10


def human_mask(f: int) -> int:
    """SyntheticEmulator.HumanMask: what the synthetic "player" holds on frame f."""
    return (((f * 2654435761) & 0xFFFFFFFF) >> 13) & 0xFF


def test_csharp_session_rules_fed_messages_without_a_socket(headless: Path) -> None:
    """ClientSession (the tool's sans-I/O session rules) driven by hand: messages in, messages out, a moved clock."""
    res = subprocess.run(["mono", str(headless), "--session-check"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    hello = "HELLO NES ram 2048 buttons Up/Down/Left/Right/Select/Start/B/A"
    m = [human_mask(f) for f in range(1001, 1005)]
    assert res.stdout.splitlines() == [
        f"policy greet: [{hello}]",
        "policy welcome: [] paused",  # lockstep: nothing runs before the first ACTION
        "policy reset: [EPISODE_BEGIN 0 frame 1000] paused",
        "policy action 1: [] paused",
        "policy tick: []",  # the ACTION unpauses the emulator
        "policy 2 frames (step sent True, awaits policy True): [STEP 1 frame 1002 masks 8/8]",
        "policy no action yet: [] paused",
        "policy action 2: [] paused",
        "policy tick: []",
        "policy 2 frames, no action: [STEP 2 frame 1004 masks 4/4] paused",
        "policy 1000 ms later: [] paused",  # WELCOME's step timeout is 1000 ms
        "policy 1001 ms later: [ERROR 4007, close 4007]",  # gives up, and gives the emulator back
        f"wrongseq greet: [{hello}]",
        "wrongseq welcome: [] paused",
        "wrongseq reset: [EPISODE_BEGIN 0 frame 1000] paused",
        "wrongseq action 2: [ERROR 4003, close 4003]",
        f"human greet: [{hello}]",
        "human welcome: [EPISODE_BEGIN 0 frame 1000]",  # human mode begins at once, never paused
        f"human queue full: [STEP 1 frame 1002 masks {m[0]}/{m[1]} skipped]",
        f"human room again: [FRAMES_DROPPED 1+1 frames 1001-1002, STEP 2 frame 1004 masks {m[2]}/{m[3]}]",
        "human status: []",
        "human stop: [close 1000]",
        "human action after stop: []",
        "retried: 1001 1005 1006 1011 1013",  # 1013: the recorder serves all the clients it takes
    ]


def test_csharp_codec_matches_the_python_codec_byte_for_byte(headless: Path) -> None:
    from recorder import protocol as p

    server_msgs = [
        p.Welcome("s1", GAME, p.Mode.POLICY, 4, p.SendFlag.SCREEN | p.SendFlag.RAM, 10000, 4500, "rec", "0.1"),
        p.Action(7, 0b1001, 3, 12),
        p.Action(1, 0, -1, 0),
        p.Reset(3, True),
        p.EpisodeEnd(2, 150, 16, False, True, -12.5, "ep_00002.h5"),
        p.Stop(p.StopReason.SHUTDOWN, "recorder shutting down"),
        p.Error(4006, "client does not fit profile: ü"),
        p.FramesDropped(9, 3, 40, 51),
        p.Status(2, 30, 1.5, -12.25),
        p.Status(0, 4500, -0.1, 1e300),
    ]
    bad = [b"\x42\x01\x00", b"\x99", p.encode(p.Reset(1, True)) + b"\x00"]
    stdin = "\n".join(p.encode(m).hex() for m in server_msgs) + "\n" + "\n".join(b.hex() for b in bad) + "\n"
    res = subprocess.run(
        ["mono", str(headless), "--codec-check"], input=stdin, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    own = dict(line.split(" ", 1) for line in lines[:6])
    obs = p.Observation(2, 1, p.PixelFormat.BGRA32, bytes(range(8)), b"\x01\x02")
    hello = p.Hello(
        "c", "1", "e", "core", "GEN", "rom", "abc", 320, 224, p.PixelFormat.RGB24, 65536, ("B", "A"),
        game="x", mode=p.Mode.POLICY, token="t", capabilities=p.Capability(3),
    )  # fmt: skip
    assert bytes.fromhex(own["hello"]) == p.encode(hello) and len(p.encode(hello)) == 57
    assert bytes.fromhex(own["step"]) == p.encode(p.Step(5, 100, 7, (1, 2, 3, 4), obs))
    assert own["action"] == "420100000080000000010000000000"  # docs/protocol.md, ACTION example
    assert own["error"] == "7fa40f090062616420746f6b656e"  # docs/protocol.md, ERROR example
    assert bytes.fromhex(own["dropped"]) == p.encode(p.FramesDropped(9, 3, 40, 51))
    assert own["status"] == "46020000001e000000000000000000f83f00000000008028c0"  # docs/protocol.md, STATUS example
    roundtrips = lines[6 : 6 + len(server_msgs)]
    for msg, line in zip(server_msgs, roundtrips, strict=True):
        assert line.startswith("roundtrip ") and bytes.fromhex(line.split()[-1]) == p.encode(msg)
    refused = lines[6 + len(server_msgs) :]
    assert [line.split()[1] for line in refused] == ["4000", "4001", "4000"]
    assert "trailing" in refused[2]


def test_the_nes_profile_in_docs_bizhawk_md_loads(tmp_path: Path) -> None:
    """docs/bizhawk.md's NES example is a profile today's parser accepts, bound to BizHawk's NES pad names."""
    from recorder.profile import load_profile

    text = (ROOT / "docs" / "bizhawk.md").read_text(encoding="utf-8")
    start = text.index('```toml\nid = "MyGame-NES"') + len("```toml\n")
    path = tmp_path / "mygame.toml"
    path.write_text(text[start : text.index("```", start)], encoding="utf-8")
    profile = load_profile(str(path))
    assert (profile.system, profile.ram_size) == ("NES", 2048)
    actions = profile.action_set(NES_BUTTONS)
    assert [actions.mask(i) for i in range(3)] == [0, 1 << 3, (1 << 3) | (1 << 7)]
