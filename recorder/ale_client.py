"""The embedded Atari 2600 client: ale-py (the Arcade Learning Environment, on Stella) behind
``recorder.embedded_client``, speaking the same protocol as the stable-retro client (issue 9 item 4).

Games are named as ALE names them (``boxing``, ``breakout``, ``demon_attack``, ``pong``,
``space_invaders``); the ROMs ship in ale-py's wheel. The client offers the Atari joystick
as BizHawk's Atari 2600 controller names it, ``UP DOWN LEFT RIGHT BUTTON``, so one profile
serves both; a mask becomes the ALE action with the same directions and fire (opposite
directions cancel, as a real stick cannot hold both). In paddle games (Breakout, Pong) ALE
turns the paddle with LEFT and RIGHT.

Determinism, for ``sonic-rec verify --replay``: sticky actions are off
(``repeat_action_probability`` 0; Machado et al. 2018 add them to *evaluate* agents,
but a recording must show what each button did), every episode starts from one state
cloned once after ALE's reset, and ``cloneState(include_rng=True)`` carries ALE's
random generator with the state. Once ALE's game is over it emulates no more frames (the
screen stays as it is); the profiles end the episode (GAME_OVER) on that step.

Run directly: ``python -m recorder.ale_client --url ws://127.0.0.1:8765 --game breakout``.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from dataset.errors import ConfigError
from recorder.embedded_client import client_main
from recorder.emulator import Emulator

__all__ = ["EMULATOR", "JOYSTICK_BUTTONS", "AleEmulator", "main", "mask_to_action_name"]

#: BizHawk's Atari 2600 joystick (player 1), without the "P1 " prefix: bit i of a mask is button i.
JOYSTICK_BUTTONS: tuple[str, ...] = ("UP", "DOWN", "LEFT", "RIGHT", "BUTTON")


def mask_to_action_name(mask: int) -> str:
    """The ALE action (``ale_py.Action`` member name) for a joystick mask in JOYSTICK_BUTTONS order."""
    up, down, left, right, fire = ((mask >> i) & 1 for i in range(5))
    vertical = "UP" if up and not down else "DOWN" if down and not up else ""
    horizontal = "LEFT" if left and not right else "RIGHT" if right and not left else ""
    name = vertical + horizontal + ("FIRE" if fire else "")
    return name or "NOOP"


class AleEmulator(Emulator):
    """One ALE game, stepped one frame per ``act`` so every frame's buttons are the recorded ones."""

    core = "Stella"
    system = "A26"  # BizHawk's id for the Atari 2600 (recorder/console_system.py)

    def __init__(self, game: str, state: str | None = None, seed: int = 0) -> None:
        import ale_py  # heavy import, and only clients need it
        from ale_py import roms

        if state:
            raise ConfigError("ALE games have one start state; leave --state out with --emulator ale")
        if game not in roms.get_all_rom_ids():
            raise ConfigError(f"ale-py has no game {game!r}; ale_py.roms.get_all_rom_ids() lists its names")
        rom = roms.get_rom_path(game)
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner on every client's stderr
        self.ale = ale_py.ALEInterface()
        self.ale.setInt("random_seed", seed)
        self.ale.setFloat("repeat_action_probability", 0.0)
        self.ale.setInt("frame_skip", 1)
        self.ale.setInt("max_num_frames_per_episode", 0)  # the recorder truncates, not ALE
        self.ale.loadROM(str(rom))
        self.ale.reset_game()
        self._start = self.ale.cloneState(include_rng=True)
        self._state_class = ale_py.ALEState
        # All 32 masks, looked up once: act() takes an Action.
        self._actions = tuple(getattr(ale_py.Action, mask_to_action_name(m)) for m in range(32))
        self.game = game
        self.version = f"ale-py {ale_py.__version__}"
        self.rom_name = game
        with open(rom, "rb") as f:
            self.rom_hash = hashlib.sha1(f.read()).hexdigest()
        self.buttons = JOYSTICK_BUTTONS
        height, width = self.ale.getScreenDims()
        self.screen_size = (int(width), int(height))
        self.ram_size = int(self.ale.getRAMSize())
        self.frame = 0

    def reset(self) -> bytes:
        self.ale.restoreState(self._start)
        self.frame = 0
        return bytes(self._start.serialize())

    def set_state(self, state: bytes) -> None:
        self.ale.restoreState(self._state_class(state))

    def step(self, mask: int, frames: int) -> None:
        action = self._actions[mask & 31]
        act = self.ale.act
        for _ in range(frames):
            act(action)
        self.frame += frames

    def screen(self) -> np.ndarray:
        return self.ale.getScreenRGB()

    def ram(self) -> np.ndarray:
        return self.ale.getRAM().copy()

    def lives(self) -> int:
        """ALE's own count of lives (tests check the profiles' RAM variables against it)."""
        return int(self.ale.lives())

    def game_over(self) -> bool:
        return bool(self.ale.game_over())


EMULATOR = AleEmulator


def main(argv: list[str] | None = None) -> int:
    return client_main(
        argv,
        prog="python -m recorder.ale_client",
        description="The embedded Atari 2600 client (ale-py) for the recorder.",
        default_game="breakout",
        game_help="ALE game name (boxing, breakout, demon_attack, pong, space_invaders, ...)",
        make_emulator=lambda config: AleEmulator(config.game, config.state, seed=config.seed),
    )


if __name__ == "__main__":
    sys.exit(main())
