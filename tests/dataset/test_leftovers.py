"""dataset.leftovers: which temporary files are stale, and removing only those."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset.atomic import atomic_write_text, host_name, temp_path_for
from dataset.leftovers import (
    OWNERLESS_STALE_SECONDS,
    Owner,
    clean_stale,
    find_leftovers,
    is_temp_name,
    parse_temp_name,
    process_alive,
    remove_stale,
)


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(proc.stdout)
    assert not process_alive(pid)
    return pid


def test_names() -> None:
    assert parse_temp_name(".a.h5.partial-123@box-1.lan") == ("a.h5", 123, "box-1.lan")
    assert parse_temp_name(".ckpt-100.pt.partial-77") == ("ckpt-100.pt", 77, None)  # before hosts were added
    assert parse_temp_name("0123abcd.partial-55") == ("0123abcd", 55, None)  # the replay cache's folders
    assert parse_temp_name(".a.h5.partial") == ("a.h5", None, None)  # episodes before owners were added
    assert parse_temp_name(".a.h5.partial-1.partial-2@h") == ("a.h5.partial-1", 2, "h")
    for name in ("a.h5", "notes.partial", ".hidden", "x.partial-", "x.partial-abc"):
        assert not is_temp_name(name), name
    final = Path("/runs/x/ckpt-5.pt")
    assert parse_temp_name(temp_path_for(final).name) == ("ckpt-5.pt", os.getpid(), host_name())


def test_process_alive() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(dead_pid())
    assert not process_alive(0) and not process_alive(-5) and not process_alive(2**40)


def test_only_files_of_ended_processes_on_this_machine_are_stale(tmp_path: Path) -> None:
    gone = dead_pid()
    me = os.getpid()
    here = host_name()
    names = {
        f".ep.h5.partial-{me}@{here}": Owner.RUNNING,
        f".ep2.h5.partial-{gone}@{here}": Owner.GONE,
        f".ckpt-1.pt.partial-{gone}": Owner.GONE,  # no host: taken as this machine
        f".ep3.h5.partial-{gone}@another-machine": Owner.UNKNOWN,
        ".ep4.h5.partial": Owner.UNKNOWN,  # ownerless and recent
        ".ep5.h5.partial": Owner.GONE,  # ownerless and untouched for long
    }
    sub = tmp_path / "deeper"
    sub.mkdir()
    for name in names:
        (sub / name).write_bytes(b"x" * 10)
    old = time.time() - OWNERLESS_STALE_SECONDS - 60
    os.utime(sub / ".ep5.h5.partial", (old, old))
    cache = tmp_path / f"0123abcd.partial-{gone}"  # a replay-cache folder being built when its trainer died
    (cache / "inner").mkdir(parents=True)
    (cache / "inner" / f".x.partial-{gone}").write_bytes(b"y" * 5)
    (cache / "frames.npy").write_bytes(b"z" * 100)
    keep = [tmp_path / "a.h5", tmp_path / "notes.partial", sub / "ckpt-1.pt"]
    for path in keep:
        path.write_text("keep")

    found = find_leftovers([tmp_path])
    by_name = {left.path.name: left for left in found}
    assert set(by_name) == {*names, cache.name}  # the cache folder is one leftover, not searched into
    for name, owner in names.items():
        assert by_name[name].owner is owner, name
        assert by_name[name].size == 10
    assert by_name[cache.name].owner is Owner.GONE and by_name[cache.name].size == 105
    assert "running" in by_name[f".ep.h5.partial-{me}@{here}"].explain()
    assert "another-machine" in by_name[f".ep3.h5.partial-{gone}@another-machine"].explain()

    removed, failed = clean_stale([tmp_path])
    assert failed == []
    assert {left.path.name for left in removed} == {
        f".ep2.h5.partial-{gone}@{here}", f".ckpt-1.pt.partial-{gone}", ".ep5.h5.partial", cache.name
    }
    assert not cache.exists()
    assert {p.name for p in sub.iterdir()} == {
        f".ep.h5.partial-{me}@{here}", f".ep3.h5.partial-{gone}@another-machine", ".ep4.h5.partial", "ckpt-1.pt"
    }
    assert all(path.exists() for path in keep)
    assert clean_stale([tmp_path]) == ([], [])
    assert find_leftovers([tmp_path / "not-made-yet"]) == []


def test_a_file_whose_owner_came_back_is_not_removed(tmp_path: Path) -> None:
    # remove_stale asks again: a list found earlier never deletes what is live now.
    gone = dead_pid()
    path = tmp_path / f".a.partial-{gone}"
    path.write_text("x")
    [left] = find_leftovers([tmp_path])
    assert left.stale
    renamed = tmp_path / f".a.partial-{os.getpid()}"
    path.rename(renamed)
    live = type(left)(renamed, left.final_name, os.getpid(), None, left.owner, left.size)
    assert remove_stale([live]) == ([], [])
    assert renamed.exists()


def test_a_crashed_writers_files_are_found_and_removed(tmp_path: Path) -> None:
    # A process that dies mid-episode and mid-checkpoint (os._exit: no clean-up runs, as with SIGKILL).
    script = f"""
import os, sys
import numpy as np
from pathlib import Path
from dataset.atomic import atomic_write
from tests.dataset.conftest import make_meta, FRAME_SHAPE, RAM_SIZE
from dataset.episode import EpisodeWriter
w = EpisodeWriter(Path({str(tmp_path)!r}), make_meta(), frame_shape=FRAME_SHAPE, ram_size=RAM_SIZE,
                  buttons_per_step=4, start_state=None)
w.begin(np.zeros(FRAME_SHAPE, np.uint8), np.zeros(RAM_SIZE, np.uint8), 0, 0.0)
def die(f):
    f.write(b"half a checkpoint")
    f.flush()
    os._exit(9)
atomic_write(Path({str(tmp_path)!r}) / "ckpt-10.pt", die)
"""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    found = find_leftovers([tmp_path])
    assert len(found) == 2 and all(left.stale for left in found)
    checkpoint, episode = sorted(found, key=lambda left: not left.final_name.endswith(".pt"))
    assert checkpoint.final_name == "ckpt-10.pt" and episode.final_name.endswith(".h5")
    assert checkpoint.pid == episode.pid != os.getpid()
    atomic_write_text(tmp_path / "config.json", "{}")  # a live write meanwhile leaves nothing behind
    removed, failed = clean_stale([tmp_path])
    assert len(removed) == 2 and failed == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_a_leftover_that_cannot_be_removed_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f".a.partial-{dead_pid()}").write_text("x")

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    removed, failed = clean_stale([tmp_path])
    assert removed == [] and [why for _, why in failed] == ["Permission denied"]


def test_importing_it_does_not_load_h5py() -> None:
    # dataset.leftovers is for run and cache folders too: it must stay light.
    code = "import sys, dataset.leftovers; print('h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_windows_liveness_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # os.kill(pid, 0) would terminate the process on Windows: there the check asks OpenProcess and
    # GetExitCodeProcess. Their answers are faked here, so the branches run on any OS.
    import ctypes
    import types

    from dataset import portability

    processes = {100: 259, 104: 0}  # pid -> exit code (259 = STILL_ACTIVE)
    denied = {108}
    last_error = {"code": 0}
    closed = []

    def open_process(access: int, inherit: bool, pid: int) -> int | None:
        assert access == 0x1000 and inherit is False
        if pid in denied:
            last_error["code"] = 5
            return None
        if pid not in processes:
            last_error["code"] = 87
            return None
        return 7000 + pid

    def get_exit_code(handle: int, code: object) -> int:
        code._obj.value = processes[handle - 7000]  # type: ignore[attr-defined]
        return 1

    def close_handle(handle: int) -> int:
        closed.append(handle)
        return 1

    kernel32 = types.SimpleNamespace(
        OpenProcess=open_process, GetExitCodeProcess=get_exit_code, CloseHandle=close_handle
    )
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error: kernel32, raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: last_error["code"], raising=False)
    # The one platform switch (dataset.portability): pathlib and pytest keep seeing POSIX.
    monkeypatch.setattr(portability, "POSIX", False)
    assert process_alive(100)  # running
    assert not process_alive(104)  # exited, handle still open somewhere
    assert process_alive(108)  # someone else's process: exists
    assert not process_alive(112)  # no such process
    assert closed == [7100, 7104]
