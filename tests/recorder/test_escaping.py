"""Client text reaches the recorder's log, `sonic-rec show` and `sonic-rec ls` escaped (issue 11 item 5)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from dataset.errors import ErrorCode
from recorder import protocol as p
from recorder.server import ServerConfig
from tests.dataset.conftest import make_meta, write_episode
from tests.recorder.conftest import client, handshake, hello, running_recorder

SONIC_REC = [sys.executable, "-c", "from recorder.cli import main; main()"]
#: A forged log line, a terminal clear and window title, a bidi override.
EVIL = "x\n12:00:00 INFO sonic_rl.recorder: all fine\x1b[2J\x1b]0;pwned\x07\u202e"


def test_client_text_is_escaped_in_the_recorder_log(out: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sonic_rl")
    with running_recorder(ServerConfig(out=out, port=0)) as rec:
        with client(rec) as ws:
            handshake(ws, client_name=EVIL, client_version=EVIL, emulator=EVIL)
            ws.send(p.encode(p.Error(4000, EVIL)))  # a client's ERROR: logged by the recorder
            ws.send(b"\x3e")  # an unknown kind: the recorder answers, so the ERROR above was handled
            assert p.decode(ws.recv(timeout=10)).code == ErrorCode.UNKNOWN_KIND  # type: ignore[union-attr]
        with client(rec) as ws:  # refused, and the refusal quotes its button names
            ws.send(p.encode(hello(buttons=("B", EVIL))))
            assert p.decode(ws.recv(timeout=10)).code == ErrorCode.BAD_CONFIG  # type: ignore[union-attr]
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sonic_rl")]
    quoting = [m for m in logged if "pwned" in m]
    assert len(quoting) >= 3, logged  # connected, reported error, refused
    for message in quoting:
        assert message.isprintable(), message
        assert "x\\n12:00:00 INFO" in message and "\\x1b[2J" in message and "\\u202e" in message


def test_show_and_ls_escape_what_a_client_wrote_into_a_file(tmp_path: Path) -> None:
    plain = write_episode(tmp_path / "plain", 3).path
    evil = write_episode(tmp_path / "evil", 3, meta=make_meta(
        client_name=EVIL, rom_name=EVIL, emulator=EVIL, policy_id=EVIL, extra=(("note", EVIL),)
    )).path  # fmt: skip
    for command in ("show", "ls"):
        shown = {}
        for name, path in (("plain", plain), ("evil", evil)):
            res = subprocess.run([*SONIC_REC, command, str(path)], capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, res.stderr
            shown[name] = res.stdout
        assert "\x1b" not in shown["evil"] and "\u202e" not in shown["evil"] and "\x07" not in shown["evil"]
        assert "INFO sonic_rl.recorder: all fine" not in [line.strip() for line in shown["evil"].splitlines()]
        # No forged line: the same number of lines as for a file with plain metadata.
        assert len(shown["evil"].splitlines()) == len(shown["plain"].splitlines()), shown["evil"]
    assert "x\\n12:00:00 INFO" in shown["evil"]
