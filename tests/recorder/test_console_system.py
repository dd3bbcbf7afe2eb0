"""Console ids: the table, aliases, and the recorder refusing a profile of another console (error 4006)."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from dataset.errors import ErrorCode
from recorder import protocol as p
from recorder.console_system import SYSTEMS, find_system, normalize_system_id, system_mismatch
from recorder.server import ServerConfig
from tests.recorder.conftest import client, handshake, hello, running_recorder


def test_bizhawk_ids_and_aliases() -> None:
    assert [s.id for s in SYSTEMS][:4] == ["GEN", "NES", "SNES", "A26"]
    assert normalize_system_id("Genesis") == normalize_system_id("gen") == "GEN"
    assert normalize_system_id("Atari2600") == "A26"
    assert normalize_system_id(" PCE ") == "PCE"  # a console the table lacks keeps its id
    gen, a26 = find_system("GEN"), find_system("A26")
    assert gen is not None and (gen.ram_size, gen.byte_order) == (65536, "big")
    assert a26 is not None and (a26.ram_size, a26.byte_order, a26.buttons) == (
        128, "little", ("UP", "DOWN", "LEFT", "RIGHT", "BUTTON"),
    )  # fmt: skip
    assert find_system("PCE") is None


def test_system_mismatch_says_both_consoles() -> None:
    assert system_mismatch("GEN", "Airstriker-Genesis-v0", "GEN") is None
    assert system_mismatch("Genesis", "Airstriker-Genesis-v0", "GEN") is None  # an alias is the same console
    assert system_mismatch("", "breakout", "A26") is None  # nothing to compare
    message = system_mismatch("GEN", "breakout", "A26")
    assert message is not None
    assert "GEN (Sega Genesis / Mega Drive)" in message and "profile breakout is for A26 (Atari 2600)" in message


def _refused(rec, **overrides) -> str:  # type: ignore[no-untyped-def]
    with client(rec) as ws:
        ws.send(p.encode(hello(**overrides)))
        msg = p.decode(ws.recv(timeout=10))
        assert isinstance(msg, p.Error) and msg.code == ErrorCode.BAD_CONFIG, msg
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == ErrorCode.BAD_CONFIG
        return msg.message


def test_the_recorder_refuses_a_profile_of_another_console_with_4006() -> None:
    with running_recorder(ServerConfig(out=None, port=0)) as rec:
        # A Genesis client naming an Atari profile: the console is the whole message, not RAM or buttons.
        message = _refused(rec, game="breakout")
        assert message.startswith("the emulator runs a GEN (Sega Genesis / Mega Drive) game but profile breakout")
        assert "RAM" not in message
        # An Atari client (ale-py's HELLO) naming a Genesis profile.
        message = _refused(rec, system="A26", ram_size=128, buttons=("UP", "DOWN", "LEFT", "RIGHT", "BUTTON"))
        assert "A26 (Atari 2600)" in message and "Airstriker-Genesis-v0 is for GEN" in message
        # The same Atari client with its own profile is welcome.
        with client(rec) as ws:
            welcome = handshake(ws, system="A26", ram_size=128, game="space_invaders",
                                buttons=("UP", "DOWN", "LEFT", "RIGHT", "BUTTON"))  # fmt: skip
            assert welcome.profile_id == "space_invaders"
