"""Consoles a game profile may be for: BizHawk's system id, main RAM and player 1's buttons.

A profile names its console by BizHawk's system id (``Emulation.GetSystemId()``:
``GEN``, ``NES``, ``A26``, ...), the id every emulator client sends in HELLO
(docs/protocol.md), so the recorder can refuse a profile of another console
(error 4006, issue 9 item 6). The table gives each known console's defaults, so a
profile need not repeat them: the size of the RAM the client sends (the memory
domain ``bizhawk_recorder_tool/src/Core/RamDomainTable.cs`` reads), the byte order
of multi-byte values in it, and player 1's buttons in BizHawk's names.

The Genesis is the odd one: stable-retro's ``get_ram()`` swaps the two bytes of
every 16-bit word of the 68000's (big-endian) work RAM; ``recorder.retro_client``
swaps them back, so a Genesis profile sees the 68000's order from either emulator
(../shared/emulators.md).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GENESIS_BUTTONS", "SYSTEMS", "ConsoleSystem", "find_system", "normalize_system_id", "system_mismatch"]


@dataclass(frozen=True)
class ConsoleSystem:
    """One console: its id, and the defaults a profile for it may leave out."""

    id: str  # BizHawk's system id
    name: str
    #: Bytes of main RAM as the clients send it; None where cores differ (a profile must say).
    ram_size: int | None
    byte_order: str  # "big" or "little": how multi-byte values sit in that RAM
    #: Player 1's buttons (upper case, BizHawk's names without "P1 "); None: a profile must list them.
    buttons: tuple[str, ...] | None
    aliases: tuple[str, ...] = ()


#: stable-retro's Genesis button order (``env.buttons``): bit i of its mask is button i.
GENESIS_BUTTONS: tuple[str, ...] = ("B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z")

SYSTEMS: tuple[ConsoleSystem, ...] = (
    # 68K RAM, 0xFF0000-0xFFFFFF; the 68000 is big-endian (stable-retro's word swap undone by its client).
    ConsoleSystem("GEN", "Sega Genesis / Mega Drive", 65536, "big", GENESIS_BUTTONS, ("Genesis", "MegaDrive", "MD")),
    # NesHawk/QuickNES "RAM", $0000-$07FF; the 6502 is little-endian. Buttons: NesHawk's pad order.
    ConsoleSystem("NES", "Nintendo Entertainment System", 2048, "little",
                  ("UP", "DOWN", "LEFT", "RIGHT", "START", "SELECT", "B", "A")),
    # WRAM, $7E0000-$7FFFFF (65C816, little-endian).
    ConsoleSystem("SNES", "Super Nintendo", 131072, "little",
                  ("UP", "DOWN", "LEFT", "RIGHT", "SELECT", "START", "Y", "B", "X", "A", "L", "R")),
    # "Main RAM", the RIOT's 128 bytes at $80-$FF (6507, little-endian). The joystick's fire button is
    # "Button" in BizHawk's Atari 2600 controller (docs/bizhawk.md); ale-py's client uses the same names.
    ConsoleSystem("A26", "Atari 2600", 128, "little", ("UP", "DOWN", "LEFT", "RIGHT", "BUTTON"),
                  ("Atari2600", "2600")),
    # Z80, little-endian; "Main RAM" is 8 KiB.
    ConsoleSystem("SMS", "Sega Master System", 8192, "little", ("UP", "DOWN", "LEFT", "RIGHT", "B1", "B2")),
    # WRAM: 8 KiB on the Game Boy, 32 KiB on the Color; cores differ, so profiles give the size.
    ConsoleSystem("GB", "Game Boy", None, "little",
                  ("UP", "DOWN", "LEFT", "RIGHT", "START", "SELECT", "B", "A")),
    ConsoleSystem("GBC", "Game Boy Color", None, "little",
                  ("UP", "DOWN", "LEFT", "RIGHT", "START", "SELECT", "B", "A")),
)


def find_system(system_id: str) -> ConsoleSystem | None:
    """The table's console for an id or alias (case-insensitive), or None for a console it lacks."""
    wanted = system_id.strip().lower()
    for system in SYSTEMS:
        if wanted == system.id.lower() or wanted in (a.lower() for a in system.aliases):
            return system
    return None


def normalize_system_id(system_id: str) -> str:
    """BizHawk's id for a known console ("Genesis" -> "GEN"); any other id as given, stripped."""
    system = find_system(system_id)
    return system.id if system is not None else system_id.strip()


def _described(system_id: str) -> str:
    system = find_system(system_id)
    return f"{system.id} ({system.name})" if system is not None else repr(system_id)


def system_mismatch(client_system: str, profile_id: str, profile_system: str) -> str | None:
    """Why a client's console (HELLO's system id) cannot play a profile, or None when it can.

    The recorder refuses such a client with error 4006 (issue 9 item 6): a profile's addresses mean
    nothing in another console's RAM. A client that names no system is not refused for it.
    """
    if not client_system.strip() or normalize_system_id(client_system) == normalize_system_id(profile_system):
        return None
    return (
        f"the emulator runs a {_described(client_system)} game but profile {profile_id} is for "
        f"{_described(profile_system)}; load a {normalize_system_id(profile_system)} game or pick a profile "
        f"for {normalize_system_id(client_system)}"
    )
