"""Embedded client processes: restarted when they exit, until they keep failing right after starting."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from dataset.errors import SonicRLError
from recorder.supervisor import MAX_QUICK_FAILURES, ClientSupervisor


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
