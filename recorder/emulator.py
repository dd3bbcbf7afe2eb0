"""The one interface every embedded emulator offers its client process, and which one runs a kind.

An embedded client (``recorder.embedded_client``) speaks the recorder's protocol
for any emulator that can load a start state, hold a button mask for some frames,
and show its screen and RAM: stable-retro's Genesis (``recorder.retro_client``) and
ale-py's Atari 2600 (``recorder.ale_client``) today. Re-simulation
(``recorder.resimulation``) drives the same interface to check a recording bit for
bit. Each kind's module is imported only when that kind is used: each brings a
large native library.
"""

from __future__ import annotations

import abc
import importlib

import numpy as np

from recorder import protocol as p

__all__ = ["EMULATOR_KINDS", "Emulator", "emulator_class", "kind_of_recording"]

#: --emulator name -> (client module, prefix of HELLO's ``emulator`` field that names it).
EMULATOR_KINDS: dict[str, tuple[str, str]] = {
    "retro": ("recorder.retro_client", "stable-retro"),
    "ale": ("recorder.ale_client", "ale-py"),
}


class Emulator(abc.ABC):
    """A deterministic emulator driven frame by frame with button masks (bit i = ``buttons[i]``).

    ``reset`` returns the exact state an episode starts from and ``set_state`` loads
    one: the same state and masks must give the same screens and RAM, bit for bit.
    """

    #: HELLO's fields: emulator name and version, core, BizHawk's system id, ROM name and SHA-1.
    version: str
    core: str
    system: str
    rom_name: str
    rom_hash: str
    buttons: tuple[str, ...]  # bit i of a mask is buttons[i]
    screen_size: tuple[int, int]  # (width, height)
    ram_size: int
    frame: int  # frames emulated since the last reset

    @abc.abstractmethod
    def reset(self) -> bytes:
        """Load the game's start state; returns that state, from which episodes replay."""

    @abc.abstractmethod
    def set_state(self, state: bytes) -> None:
        """Load a state ``reset`` returned."""

    @abc.abstractmethod
    def step(self, mask: int, frames: int) -> None:
        """Hold the buttons of ``mask`` for ``frames`` frames."""

    @abc.abstractmethod
    def screen(self) -> np.ndarray:
        """The last frame, (height, width, 3) uint8 RGB."""

    @abc.abstractmethod
    def ram(self) -> np.ndarray:
        """Main RAM as the game profile reads it: ``ram_size`` uint8, a fresh contiguous array."""

    def observation(self) -> p.Observation:
        width, height = self.screen_size
        screen = np.ascontiguousarray(self.screen())
        return p.Observation(width, height, p.PixelFormat.RGB24, screen.data, self.ram().data, zstd=True)

    def close(self) -> None:  # noqa: B027 - most emulators need nothing closed
        """Free the emulator (one stable-retro emulator per process)."""


def emulator_class(kind: str) -> type[Emulator]:
    """The Emulator of an embedded kind ("retro", "ale"); imports its module on first use."""
    module, _ = EMULATOR_KINDS[kind]
    return getattr(importlib.import_module(module), "EMULATOR")  # noqa: B009 - each module names its class so


def kind_of_recording(emulator: str) -> str | None:
    """The embedded kind that recorded an episode, from its ``emulator`` metadata; None for BizHawk."""
    for kind, (_, prefix) in EMULATOR_KINDS.items():
        if emulator.startswith(prefix):
            return kind
    return None
