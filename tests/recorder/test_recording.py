"""`sonic-rec record --out` on a folder it cannot write: one clear line and exit status 2 (issue 11 item 2).

Before, the recorder started, and every client's first episode failed inside the server (1011);
a folder under a file was a traceback. The three ways a folder cannot be written are made real
here, for root too (root ignores permission bits): a folder without write permission (for root,
a read-only tmpfs where it may mount one), a path under a file, and a file system that refuses
every write (RLIMIT_FSIZE=0: each write fails as on a full disk, whoever runs the test).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from dataset.catalog import check
from dataset.errors import ErrorCode
from dataset.escaping import printable
from recorder import protocol as p
from tests.recorder.conftest import hello

SONIC_REC = [sys.executable, "-c", "from recorder.cli import main; main()"]


@contextlib.contextmanager
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    # Root writes through permission bits: a read-only file system is what stops it.
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                                 capture_output=True, check=False).returncode == 0  # fmt: skip
    except OSError:  # no mount command
        mounted = False
    if not mounted:  # no mount privilege (an unprivileged container): a folder that cannot exist
        (tmp_path / "a-file").write_bytes(b"")
        yield tmp_path / "a-file" / "data"
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _no_writes() -> None:  # pragma: no cover - runs in the child before exec
    import resource

    # Every write into a regular file now fails with EFBIG; Python ignores SIGXFSZ, so the write
    # raises OSError as a full disk's ENOSPC does. Pipes (the child's stderr) are not files.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


@pytest.mark.parametrize("case", ["read-only", "under-a-file", "full"])
def test_record_refuses_an_output_folder_it_cannot_write_in_one_line(tmp_path: Path, case: str) -> None:
    with contextlib.ExitStack() as stack:
        preexec = None
        if case == "read-only":
            out = stack.enter_context(read_only_folder(tmp_path))
        elif case == "under-a-file":
            (tmp_path / "a-file").write_bytes(b"")
            out = tmp_path / "a-file" / "da\nta\x1b[2J"  # and a name to escape: still one line
        else:
            out, preexec = tmp_path / "data", _no_writes
        res = subprocess.run(
            [*SONIC_REC, "record", "--out", str(out), "--port", "0", "--no-progress"],
            capture_output=True, text=True, timeout=60, preexec_fn=preexec,
        )  # fmt: skip
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write to --out {printable(out)} ("), res.stderr
    assert "choose a writable folder" in lines[0]
    assert not list(tmp_path.rglob("*.partial-*"))  # the probe is gone


def test_check_writable_folder_creates_a_missing_folder_and_refuses_a_file(tmp_path: Path) -> None:
    from dataset.atomic import check_writable_folder
    from dataset.errors import ConfigError

    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_writable_folder(tmp_path / "f")
    check_writable_folder(tmp_path / "new" / "deeper")  # created, and writable
    assert (tmp_path / "new" / "deeper").is_dir() and not list((tmp_path / "new" / "deeper").iterdir())


def _file_size_limit(limit: int) -> Callable[[], None]:
    def set_limit() -> None:  # pragma: no cover - runs in the child before exec
        import resource

        # Writes past `limit` bytes into a file fail with EFBIG, as on a disk that filled up (Python
        # ignores SIGXFSZ); root is held to it too.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


def test_a_disk_that_fills_mid_recording_discards_that_episode_stops_the_client_and_exits_2(tmp_path: Path) -> None:
    """Issue 11 item 2: the episode being written when the disk fills is discarded (never a file
    verify rejects, nor a leftover), the episodes saved before stay, the client gets STOP and
    close 1001 (not 1011), and `record` ends with one line and status 2."""
    out = tmp_path / "data"
    proc = subprocess.Popen(
        [*SONIC_REC, "record", "--game", "Airstriker-Genesis-v0", "--out", str(out), "--port", "0", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_file_size_limit(1 << 20),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        head = ""
        while "listening on ws://" not in head:
            line = proc.stderr.readline()
            assert line, proc.communicate(timeout=30)
            head += line
        url = re.search(r"ws://\S+", head).group(0)  # type: ignore[union-attr]
        rng = np.random.default_rng(0)
        side = 64  # random pixels do not compress: 12 KiB an observation, 1 MiB after ~80 steps

        def obs() -> p.Observation:
            return p.Observation(side, side, p.PixelFormat.RGB24, rng.bytes(side * side * 3), bytes(65536))

        got: list[p.Message] = []
        with connect(url, max_size=p.MAX_MESSAGE_BYTES, compression=None) as ws:
            ws.send(p.encode(hello(screen_width=side, screen_height=side)))
            assert isinstance(p.decode(ws.recv(timeout=10)), p.Welcome)
            seq = 0
            for episode in (0, 1):
                ws.send(p.encode(p.EpisodeBegin(episode, 4 * seq, 0, b"", obs())))  # episode 1 ends episode 0
                for _ in range(5 if episode == 0 else 10_000):
                    seq += 1
                    try:
                        ws.send(p.encode(p.Step(seq, 4 * seq, 0, (0,) * 4, obs())))
                    except ConnectionClosed:
                        break
                    with contextlib.suppress(TimeoutError):
                        got.append(p.decode(ws.recv(timeout=0)))
            with contextlib.suppress(ConnectionClosed):
                while True:
                    got.append(p.decode(ws.recv(timeout=10)))
        assert ws.close_code == ErrorCode.GOING_AWAY
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ends = [m for m in got if isinstance(m, p.EpisodeEnd)]
    stops = [m for m in got if isinstance(m, p.Stop)]
    assert [e.episode for e in ends] == [0] and not [m for m in got if isinstance(m, p.Error)], got
    assert len(stops) == 1 and stops[0].reason == p.StopReason.SHUTDOWN
    assert "output folder full" in stops[0].message and "File too large" in stops[0].message
    # Episode 0 is kept and sound; episode 1 is gone without a trace.
    assert [f.name for f in out.iterdir()] == [ends[0].file_name]
    assert check(out / ends[0].file_name) == []
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    full = [line for line in stderr.splitlines() if "output folder full" in line]
    assert full == [stderr.splitlines()[-1]] and full[0].startswith(f"error: output folder full: {out} ("), stderr
