"""Embedded client processes: restarted when they exit, until they keep failing right after starting."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from dataset.errors import SonicRLError, UsageError
from recorder.supervisor import MAX_QUICK_FAILURES, ClientSupervisor, spawn_client


def _python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def _wait(sup: ClientSupervisor) -> None:
    for proc in sup.procs:
        proc.wait(timeout=30)


def test_clients_that_fail_right_after_starting_stop_the_restarts() -> None:
    starts: list[int] = []

    def start(i: int) -> subprocess.Popen[bytes]:
        starts.append(i)
        return _python("raise SystemExit(3)")

    sup = ClientSupervisor(start, 1, restart=True)
    for _ in range(MAX_QUICK_FAILURES - 1):
        _wait(sup)
        sup.poll()  # restarts it
    _wait(sup)
    with pytest.raises(SonicRLError, match=f"exited with status 3 {MAX_QUICK_FAILURES} times in a row"):
        sup.poll()
    assert starts == [0] * MAX_QUICK_FAILURES
    assert sup.all_exited() and sup.failed() == sup.procs


def test_without_restart_exited_clients_stay_exited() -> None:
    sup = ClientSupervisor(lambda i: _python(f"raise SystemExit({i})"), 2)
    _wait(sup)
    sup.poll()
    assert sup.all_exited() and [p.returncode for p in sup.failed()] == [1]
    assert not ClientSupervisor(lambda i: _python(""), 0).all_exited()  # no clients (BizHawk): never "all exited"
    asyncio.run(sup.reap_all())


def test_a_clients_own_error_line_is_what_the_user_sees(capsys: pytest.CaptureFixture[str]) -> None:
    # A client that reports a user's mistake (exit 2 and an `error:` line) is not restarted: its line
    # becomes the command's one-line error. Its other output is passed on above the bar, prefixed.
    code = "import sys; print('loading', file=sys.stderr); print('error: no ROM for X', file=sys.stderr); sys.exit(2)"
    sup = ClientSupervisor(lambda i: spawn_client([sys.executable, "-c", code], i), 1, restart=True)
    _wait(sup)
    with pytest.raises(UsageError, match=r"^no ROM for X$"):
        sup.poll()
    assert "client 0: loading" in capsys.readouterr().err
    # Without restarts (record), the same failure reads the same.
    sup = ClientSupervisor(lambda i: spawn_client([sys.executable, "-c", code], i), 2)
    _wait(sup)
    error = sup.failure("before 4 episodes were recorded")
    assert isinstance(error, UsageError) and str(error) == "no ROM for X"
    # Other failures keep their line too, as detail.
    crash = "import sys; print('error: emulator crashed', file=sys.stderr); sys.exit(3)"
    sup = ClientSupervisor(lambda i: spawn_client([sys.executable, "-c", crash], i), 1)
    _wait(sup)
    error = sup.failure("before 4 episodes were recorded")
    assert not isinstance(error, UsageError)
    assert str(error) == "1 emulator client(s) failed (exit 3) before 4 episodes were recorded: emulator crashed"
