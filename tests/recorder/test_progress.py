"""recorder.progress and what `sonic-rec record` prints (issue 12, item 4): no bar off a terminal,
log lines above the bar, a child's error as one line, no wait after the last episode."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recorder import progress
from recorder.progress import Bar, echo, setup_logging

GAME = "Airstriker-Genesis-v0"
SONIC_REC = [sys.executable, "-c", "from recorder.cli import main; main()"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_and_no_carriage_return_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()  # a file or a pipe: isatty() is False
    monkeypatch.setattr(sys, "stderr", err)
    setup_logging("INFO")
    with Bar(5000, "record", "ep", lines_every=None) as bar:
        for _ in range(5000):
            bar.update()
        logging.getLogger("sonic_rl.test").info("a log line")
        echo("a note")
    out = err.getvalue()
    assert "\r" not in out
    lines = out.splitlines()  # two lines, not 5,000 refreshes
    assert len(lines) == 2 and lines[0].endswith("INFO sonic_rl.test: a log line") and lines[1] == "a note"


def test_status_lines_instead_of_a_bar_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with Bar(100, "online", "step", initial=10, lines_every=0.0) as bar:
        bar.set_n(40)
        bar.set_postfix("3 ep")
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue()
    assert lines[-1] == "online: 40/100 step, 3 ep"


def test_log_lines_go_above_the_bar_at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    setup_logging("INFO")
    with Bar(10, "train", "upd") as bar:
        assert bar.terminal
        bar.update(3)
        logging.getLogger("sonic_rl.test").warning("careful")
        bar.update(3)
    out = term.getvalue()
    # tqdm clears the bar before the line and draws it again after: the line stands alone.
    line = next(seg for seg in out.replace("\r", "\n").splitlines() if "careful" in seg)
    assert line.endswith("careful") and "train" not in line
    assert "6/10" in out


def test_disabled_bar_prints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    with Bar(10, "x", "it", enabled=False, lines_every=0.0) as bar:
        bar.update(10)
    assert progress.is_terminal() and term.getvalue() == ""


def _record(out: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [*SONIC_REC, "record", "--emulator", "retro", "--port", "0", "--out", str(out), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_record_exits_within_a_second_of_its_last_episode(tmp_path: Path) -> None:
    # Two streaming clients for one episode: the one that played keeps streaming steps past the
    # end, the one that got none is told to stop at once; this is where the 10 s wait showed.
    # Progress left on: with stderr a pipe the bar must switch itself off.
    proc = _record(tmp_path / "data", "--game", GAME, "--episodes", "1", "--max-steps", "20", "--clients", "2")
    saved: list[float] = []
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "ended: step_limit" in line and "saved" in line:
                saved.append(time.monotonic())

    reader = threading.Thread(target=read)
    reader.start()
    assert proc.wait(timeout=180) == 0, "".join(lines)
    exited = time.monotonic()
    reader.join(10)
    text = "".join(lines)
    assert len(saved) == 1, text
    assert exited - saved[-1] < 1.0, f"exited {exited - saved[-1]:.2f} s after the last episode was saved"
    assert "\r" not in text
    summary = lines[-1]
    assert summary.startswith("recorded 1 episodes, 20 steps, 80 frames in "), summary
    # The speed is over the recording only, not the emulators' start-up nor the shutdown.
    seconds = float(summary.split(" frames in ")[1].split(" s ")[0])
    assert seconds < 1.5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # The profile ships; the ROM is the user's to import.
        (("--game", "SonicTheHedgehog2-Genesis-v0"), "python -m stable_retro.import"),
        (("--game", GAME, "--state", "NoSuchLevel"), "has no start state 'NoSuchLevel'"),
    ],
)
def test_a_clients_mistake_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    proc = _record(tmp_path / "data", *args, "--episodes", "1", "--no-progress")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], err
