"""`sonic-rec verify` and `ls` on checksummed files and leftovers (issue 11), through the real command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dataset.atomic import host_name
from tests.dataset.conftest import write_episode
from tests.dataset.test_episode import downgrade_to_schema_1, flip_stored_byte
from tests.dataset.test_leftovers import dead_pid

SONIC_REC = [sys.executable, "-c", "from recorder.cli import main; main()"]


def sonic_rec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SONIC_REC, *args], capture_output=True, text=True, timeout=120)


def test_verify_reports_damage_and_old_schemas_and_cleans_only_stale_leftovers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = write_episode(data, 6, seed=1).path
    old = write_episode(data, 6, seed=2).path
    downgrade_to_schema_1(old)
    damaged = write_episode(data, 6, seed=3).path
    flip_stored_byte(damaged, "start_state", 0, "middle")  # passed even --replay before checksums
    gone, here = dead_pid(), host_name()
    stale = data / f".{good.stem}-9.h5.partial-{gone}@{here}"
    stale_cache = data / "cache" / f"0123abcd.partial-{gone}"
    live = data / f".{good.stem}-8.h5.partial-{os.getpid()}@{here}"
    foreign = data / f".{good.stem}-7.h5.partial-{gone}@some-other-machine"
    for path in (stale, live, foreign):
        path.write_bytes(b"\0" * 2048)
    stale_cache.mkdir(parents=True)
    (stale_cache / "frames.npy").write_bytes(b"\0" * 100)

    res = sonic_rec("verify", str(data))
    assert res.returncode == 1, res.stderr
    lines = res.stdout.splitlines()
    assert f"ok   {good.name}" in lines
    assert any(line.startswith(f"ok   {old.name}") and "schema 1" in line for line in lines), lines
    fail = lines.index(f"FAIL {damaged.name}")
    assert "start_state" in lines[fail + 1] and "damaged" in lines[fail + 1]
    assert any(line.startswith(f"stale {stale.name}: ") and f"process {gone}" in line for line in lines), lines
    assert any(line.startswith(f"stale {stale_cache.name}: ") for line in lines), lines
    assert any(line.startswith(f"note {live.name}: ") and "running" in line for line in lines), lines
    assert any(line.startswith(f"note {foreign.name}: ") and "some-other-machine" in line for line in lines)
    assert "2 stale temporary file(s)" in res.stderr and "--clean" in res.stderr
    assert stale.exists() and stale_cache.exists()  # reported, not removed, without --clean

    res = sonic_rec("verify", "--clean", str(data))
    assert res.returncode == 1  # the damaged episode still fails: --clean never touches episode files
    assert any(line.startswith(f"removed {stale.name}: ") for line in res.stdout.splitlines()), res.stdout
    assert not stale.exists() and not stale_cache.exists()
    assert live.exists() and foreign.exists() and damaged.exists() and good.exists()

    # Leftovers alone are no failure, and a folder holding only leftovers can be cleaned.
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(live, only / stale.name)
    res = sonic_rec("verify", "--clean", str(only))
    assert res.returncode == 0, res.stderr
    assert list(only.iterdir()) == []
    res = sonic_rec("verify", str(only))
    assert res.returncode == 2 and "no episode files found" in res.stderr


def test_ls_names_unfinished_episodes_and_their_owners(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_episode(data, 3)
    (data / f".x.h5.partial-{dead_pid()}@{host_name()}").write_bytes(b"\0")
    res = sonic_rec("ls", str(data))
    assert res.returncode == 0, res.stderr
    assert "1 unfinished episode file(s)" in res.stderr and "no longer running" in res.stderr
    assert "sonic-rec verify --clean" in res.stderr


def test_verify_help_explains_clean() -> None:
    res = sonic_rec("verify", "--help")
    assert "--clean" in res.stdout and "running process" in res.stdout


def test_profiles_lists_ids_where_they_come_from_and_the_search_order(tmp_path: Path) -> None:
    from tests.recorder.test_profile_library import AIRSTRIKER, write

    mine = write(tmp_path, AIRSTRIKER, 10)  # shadows the shipped one
    write(tmp_path, "MyGame-Genesis", 10)
    res = sonic_rec("profiles", "--profiles", str(tmp_path))
    assert res.returncode == 0, res.stderr
    listed = dict(line.split("  ", 1) for line in res.stdout.splitlines())
    assert listed[AIRSTRIKER] == str(mine) and listed["MyGame-Genesis"] == str(tmp_path / "MyGame-Genesis.toml")
    assert listed["SonicTheHedgehog2-Genesis-v0"].endswith("SonicTheHedgehog2-Genesis-v0.toml")
    searched = res.stderr.strip()
    assert searched.index("(--profiles)") < searched.index("(user folder)") < searched.index("(shipped)")
    bad = sonic_rec("profiles", "--profiles", str(tmp_path / "missing"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no such folder" in bad.stderr
