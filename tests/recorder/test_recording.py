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
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataset.escaping import printable

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
