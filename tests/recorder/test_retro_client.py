"""The stable-retro client's RAM byte order (recorder/retro_client.py)."""

from __future__ import annotations

import numpy as np

from recorder.retro_client import RetroEmulator, to_68k_order


def test_68k_order_swaps_the_bytes_of_every_word_into_a_fresh_array() -> None:
    ram = np.arange(8, dtype=np.uint8)
    swapped = to_68k_order(ram)
    assert swapped.tolist() == [1, 0, 3, 2, 5, 4, 7, 6]
    assert swapped.dtype == np.uint8 and swapped.flags.c_contiguous and swapped.flags.writeable
    swapped[0] = 99  # a copy: the emulator's own RAM is untouched
    assert ram[1] == 1
    # stable-retro's get_ram() of a fresh emulator: the big-endian word at 68000 address 0 is
    # bytes 0 and 1 of our order, and the same value read with the profile's ">u2".
    emu = RetroEmulator("Airstriker-Genesis-v0")
    try:
        emu.reset()
        emu.step(0, 30)
        raw = emu.env.get_ram()
        ours = emu.ram()
        assert len(ours) == emu.ram_size == 65536
        words = raw.view("<u2")  # stable-retro keeps each 16-bit word in host (little-endian) order
        assert np.array_equal(ours.view(">u2"), words)
    finally:
        emu.close()
