"""The embedded emulator client: stable-retro's Genesis core speaking the recorder's protocol.

It plays the part of the C# BizHawk tool when no BizHawk is at hand, over the
same websocket and the same codec (docs/protocol.md), so tests and users
exercise the real path. One emulator per process (stable-retro allows one per
process), so ``sonic-rec record --clients N`` starts N of these.

Run directly: ``python -m recorder.retro_client --url ws://127.0.0.1:8765 --game Airstriker-Genesis-v0``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

from dataset.errors import Disconnected, ProtocolError, RemoteError, UnexpectedMessage
from recorder import __version__
from recorder import protocol as p
from recorder.transport import WebSocket

__all__ = ["RetroEmulator", "main", "run_client", "to_68k_order"]

log = logging.getLogger("sonic_rl.retro_client")


def to_68k_order(ram: np.ndarray) -> np.ndarray:
    """stable-retro's Genesis RAM has every 16-bit word byte-swapped; return the 68000's own order.

    BizHawk's "68K RAM" domain shows big-endian memory, so swapping here makes the same
    profile address read the same value from both emulators (../shared/emulators.md).
    """
    return ram.reshape(-1, 2)[:, ::-1].reshape(-1)


class RetroEmulator:
    """A stable-retro environment driven frame by frame with button masks."""

    def __init__(self, game: str, state: str | None = None) -> None:
        import stable_retro as retro  # heavy import, and only clients need it

        kwargs = {} if state is None else {"state": state}
        self.env = retro.make(game=game, render_mode=None, **kwargs)
        self.game = game
        self.buttons: tuple[str, ...] = tuple(self.env.buttons)
        self.version = f"stable-retro {str(getattr(retro, '__version__', '1.0.1')).strip()}"
        self.frame = 0
        height, width = self.env.em.get_screen().shape[:2]
        self.screen_size = (width, height)
        self.ram_size = len(self.env.get_ram())
        rom = self._rom_sha1()
        self.rom_name = game
        self.rom_hash = rom

    def _rom_sha1(self) -> str:
        import stable_retro as retro

        try:
            return open(retro.data.get_file_path(self.game, "rom.sha"), encoding="ascii").read().split()[0]
        except (OSError, IndexError, TypeError):
            return ""

    def reset(self) -> bytes:
        """Load the game's start state; returns the exact emulator state episodes replay from."""
        self.env.reset()
        self.frame = 0
        return self.env.em.get_state()

    def set_state(self, state: bytes) -> None:
        self.env.em.set_state(state)

    def step(self, mask: int, frames: int) -> None:
        buttons = p.mask_to_buttons(mask, len(self.buttons))
        em = self.env.em
        for _ in range(frames):
            em.set_button_mask(buttons)
            em.step()
        self.frame += frames

    def screen(self) -> np.ndarray:
        return self.env.em.get_screen()

    def ram(self) -> np.ndarray:
        return to_68k_order(self.env.get_ram())

    def observation(self) -> p.Observation:
        width, height = self.screen_size
        screen = np.ascontiguousarray(self.screen())
        # ram() is already a fresh contiguous copy (the swap), so its buffer is sent as it is.
        return p.Observation(width, height, p.PixelFormat.RGB24, screen.data, self.ram().data, zstd=True)

    def close(self) -> None:
        self.env.close()


@dataclass(frozen=True)
class ClientConfig:
    url: str
    game: str  # stable-retro game id
    state: str | None = None
    profile: str = ""  # the game profile (id or .toml path); HELLO names its id; default: the game id
    token: str = ""
    name: str = "sonic-rl embedded client"
    #: Play this recording policy here and stream (client-policy mode, no lockstep); None: the
    #: recorder's policy plays (policy mode, lockstep), as for trained networks.
    policy: str | None = None
    seed: int = 0


def run_client(config: ClientConfig) -> int:
    """Connect, handshake, then obey RESET / ACTION until STOP. Returns a process exit code."""
    from recorder.profile import load_profile

    # HELLO names a profile by id, never by path: the recorder looks names up among its own
    # profiles only (issue 9); one started with the same .toml as --game knows its id.
    profile_id = load_profile(config.profile).id if config.profile else config.game
    emu = RetroEmulator(config.game, config.state)
    width, height = emu.screen_size
    hello = p.Hello(
        client_name=config.name,
        client_version=__version__,
        emulator=emu.version,
        core="genesis_plus_gx",
        system="Genesis",
        rom_name=emu.rom_name,
        rom_hash=emu.rom_hash,
        screen_width=width,
        screen_height=height,
        pixel_format=p.PixelFormat.RGB24,
        ram_size=emu.ram_size,
        buttons=emu.buttons,
        game=profile_id,
        mode=p.Mode.CLIENT_POLICY if config.policy else p.Mode.POLICY,
        token=config.token,
        capabilities=p.Capability.LOAD_START_STATE | p.Capability.SEND_START_STATE,
        policy_id=config.policy or "",
    )
    try:
        with WebSocket(config.url, max_size=p.MAX_MESSAGE_BYTES) as ws:
            if config.policy:
                return _streaming_session(ws, emu, hello, config)
            return _session(ws, emu, hello)
    except (RemoteError, ProtocolError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Disconnected as exc:
        if exc.code not in (1000, 1001):
            print(f"error: {RemoteError(exc.code, exc.reason)}", file=sys.stderr)
            return 2
        return 0
    except OSError as exc:
        print(f"error: cannot reach the recorder at {config.url}: {exc}", file=sys.stderr)
        return 3
    finally:
        emu.close()


def _session(ws: WebSocket, emu: RetroEmulator, hello: p.Hello) -> int:
    ws.send(p.encode(hello))
    welcome = _expect(ws.recv(), p.Welcome)
    frame_skip = welcome.frame_skip
    log.info("session %s: %s, frame skip %d", welcome.session_id, welcome.profile_id, frame_skip)
    seq = 0
    while True:
        msg = p.decode(ws.recv())
        if isinstance(msg, p.Action):
            if msg.seq != seq + 1:
                raise UnexpectedMessage(f"ACTION for seq {msg.seq}, expected {seq + 1}")
            seq = msg.seq
            emu.step(msg.buttons, frame_skip)
            step = p.Step(seq, emu.frame, time.time_ns() // 1000, (msg.buttons,) * frame_skip, emu.observation())
            ws.send(p.encode(step))
        elif isinstance(msg, p.Reset):
            state = emu.reset()
            begin = p.EpisodeBegin(msg.episode, emu.frame, time.time_ns() // 1000, state, emu.observation())
            ws.send(p.encode(begin))
        elif _control(msg):
            return 0


def _streaming_session(ws: WebSocket, emu: RetroEmulator, hello: p.Hello, config: ClientConfig) -> int:
    """Client-policy mode: play our own policy and stream steps without waiting for the recorder.

    The recorder still decides where episodes end (EPISODE_END, then RESET or STOP); the
    steps sent before that news arrives are past the end and the recorder drops them.
    """
    from recorder.policy import PolicyInput, make_policy
    from recorder.profile import load_profile

    ws.send(p.encode(hello))
    welcome = _expect(ws.recv(), p.Welcome)
    frame_skip = welcome.frame_skip
    profile = load_profile(config.profile or config.game)
    policy = make_policy(str(config.policy), profile, config.seed)
    masks = profile.action_set(emu.buttons).masks
    seq = 0
    playing = False
    step = 0
    ram = emu.ram()
    while True:
        data = ws.poll() if playing else ws.recv()
        if data is None:
            action = policy.act(PolicyInput(emu.screen, ram, profile.read_variables(ram), step))
            emu.step(masks[action], frame_skip)
            seq += 1
            step += 1
            obs = emu.observation()
            ram = np.frombuffer(obs.ram, dtype=np.uint8)
            ws.send(p.encode(p.Step(seq, emu.frame, time.time_ns() // 1000, (masks[action],) * frame_skip, obs)))
            continue
        msg = p.decode(data)
        if isinstance(msg, p.Reset):
            state = emu.reset()
            policy.reset()
            obs = emu.observation()
            ram = np.frombuffer(obs.ram, dtype=np.uint8)
            step = 0
            ws.send(p.encode(p.EpisodeBegin(msg.episode, emu.frame, time.time_ns() // 1000, state, obs)))
            playing = True
        else:
            if isinstance(msg, p.EpisodeEnd):
                playing = False  # wait for RESET or STOP
            if _control(msg):
                return 0


def _control(msg: p.Message) -> bool:
    """Messages both session loops treat alike; True means stop (STOP), an ERROR raises."""
    if isinstance(msg, p.EpisodeEnd):
        log.info("episode %d: %d steps, return %.1f", msg.episode, msg.steps, msg.episode_return)
    elif isinstance(msg, p.Status):
        # Display only (docs/protocol.md, STATUS): this client has no window, just a log.
        log.debug("episode %d, step %d: reward %.1f, return %.1f", msg.episode, msg.steps,
                  msg.last_reward, msg.episode_return)  # fmt: skip
    elif isinstance(msg, p.Stop):
        log.info("recorder says stop: %s", msg.message)
        return True
    elif isinstance(msg, p.Error):
        raise RemoteError(msg.code, msg.message)
    else:
        raise UnexpectedMessage(f"unexpected {msg.kind.name} from the recorder")
    return False


def _expect(data: bytes, kind: type) -> p.Message:
    msg = p.decode(data)
    if isinstance(msg, p.Error):
        raise RemoteError(msg.code, msg.message)
    if not isinstance(msg, kind):
        raise UnexpectedMessage(f"expected {kind.__name__}, got {msg.kind.name}")
    return msg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m recorder.retro_client", description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="ws://127.0.0.1:8765")
    ap.add_argument("--game", default="Airstriker-Genesis-v0", help="stable-retro game id")
    ap.add_argument("--profile", default="", help="game profile for the recorder (id or .toml path; default --game)")
    ap.add_argument("--state", default=None, help="stable-retro state name (default: the game's default)")
    ap.add_argument("--token", default="")
    ap.add_argument("--policy", default=None,
                    help="play this recording policy here and stream (random, scripted); default: the recorder's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s retro-client %(levelname)s %(message)s")
    # The recorder owns shutdown (it sends STOP): a terminal's Ctrl-C must not kill us mid-message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = ClientConfig(args.url, args.game, state=args.state, token=args.token, profile=args.profile,
                          policy=args.policy, seed=args.seed)  # fmt: skip
    return run_client(config)


if __name__ == "__main__":
    sys.exit(main())
