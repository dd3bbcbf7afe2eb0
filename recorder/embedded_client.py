"""The embedded emulator client process: any :class:`recorder.emulator.Emulator` speaking the protocol.

It plays the part of the C# BizHawk tool when no BizHawk is at hand, over the
same websocket and the same codec (docs/protocol.md), so tests and users
exercise the real path. This is the one client loop: ``recorder.retro_client``
(stable-retro, Genesis) and ``recorder.ale_client`` (ale-py, Atari 2600) only
supply their emulator. One emulator per process (stable-retro allows one per
process), so ``sonic-rec record --clients N`` starts N of these.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dataset.errors import Disconnected, ProtocolError, RemoteError, UnexpectedMessage, UsageError
from recorder import __version__
from recorder import protocol as p
from recorder.emulator import Emulator
from recorder.transport import WebSocket

__all__ = ["ClientConfig", "client_main", "run_client"]

log = logging.getLogger("sonic_rl.embedded_client")


@dataclass(frozen=True)
class ClientConfig:
    url: str
    game: str  # the emulator's game: a stable-retro id, an ALE ROM name
    state: str | None = None  # stable-retro start state (other emulators have one start)
    profile: str = ""  # the game profile (id or .toml path); HELLO names its id; default: the game
    token: str = ""
    name: str = "sonic-rl embedded client"
    #: Play this recording policy here and stream (client-policy mode, no lockstep); None: the
    #: recorder's policy plays (policy mode, lockstep), as for trained networks.
    policy: str | None = None
    seed: int = 0


def _profile_id(profile: str) -> str:
    """HELLO names a profile by id, never by path: the recorder looks names up among its own profiles
    only (issue 9). A .toml path is read here for its id; an id is sent as it is (a run's stored
    profile, played in lockstep, is known to the recorder but need not be installed here)."""
    from recorder.profile import load_profile
    from recorder.profile_library import is_profile_path

    return load_profile(profile).id if is_profile_path(profile) else profile


def hello_for(emu: Emulator, config: ClientConfig) -> p.Hello:
    width, height = emu.screen_size
    return p.Hello(
        client_name=config.name,
        client_version=__version__,
        emulator=emu.version,
        core=emu.core,
        system=emu.system,
        rom_name=emu.rom_name,
        rom_hash=emu.rom_hash,
        screen_width=width,
        screen_height=height,
        pixel_format=p.PixelFormat.RGB24,
        ram_size=emu.ram_size,
        buttons=emu.buttons,
        game=_profile_id(config.profile) or config.game,
        mode=p.Mode.CLIENT_POLICY if config.policy else p.Mode.POLICY,
        token=config.token,
        capabilities=p.Capability.LOAD_START_STATE | p.Capability.SEND_START_STATE,
        policy_id=config.policy or "",
    )


def run_client(emu: Emulator, config: ClientConfig) -> int:
    """Connect, handshake, then obey RESET / ACTION until STOP. Returns a process exit code."""
    try:
        with WebSocket(config.url, max_size=p.MAX_MESSAGE_BYTES) as ws:
            if config.policy:
                return _streaming_session(ws, emu, hello_for(emu, config), config)
            return _session(ws, emu, hello_for(emu, config))
    except (RemoteError, ProtocolError, UsageError) as exc:  # UsageError: a --profile that does not load
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


def _session(ws: WebSocket, emu: Emulator, hello: p.Hello) -> int:
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


def _streaming_session(ws: WebSocket, emu: Emulator, hello: p.Hello, config: ClientConfig) -> int:
    """Client-policy mode: play our own policy and stream steps without waiting for the recorder.

    The recorder still decides where episodes end (EPISODE_END, then RESET or STOP); the
    steps sent before that news arrives are past the end and the recorder drops them.
    """
    from recorder.policy import PolicyInput, episode_seed, make_policy
    from recorder.profile import load_profile

    ws.send(p.encode(hello))
    welcome = _expect(ws.recv(), p.Welcome)
    frame_skip = welcome.frame_skip
    profile = load_profile(config.profile or config.game)
    # Checks the policy's name before the first episode; every RESET seeds a fresh one.
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
            # A fresh generator per episode: the draws for steps sent past the last episode's end
            # (a number that depends on timing) must not shift this episode's (recorder/policy.py).
            policy = make_policy(str(config.policy), profile, episode_seed(config.seed, msg.episode))
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


def client_main(
    argv: list[str] | None,
    *,
    prog: str,
    description: str,
    default_game: str,
    game_help: str,
    make_emulator: Callable[[ClientConfig], Emulator],
) -> int:
    """The command line every embedded client shares; ``make_emulator`` builds its emulator."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--url", default="ws://127.0.0.1:8765")
    ap.add_argument("--game", default=default_game, help=game_help)
    ap.add_argument("--profile", default="", help="game profile for the recorder (id or .toml path; default --game)")
    ap.add_argument("--state", default=None, help="start state, for emulators with several (stable-retro)")
    ap.add_argument("--token", default="")
    ap.add_argument("--policy", default=None,
                    help="play this recording policy here and stream (random, scripted); default: the recorder's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s {prog.split('.')[-1]} %(levelname)s %(message)s")
    # The recorder owns shutdown (it sends STOP): a terminal's Ctrl-C must not kill us mid-message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = ClientConfig(args.url, args.game, state=args.state, token=args.token, profile=args.profile,
                          policy=args.policy, seed=args.seed)  # fmt: skip
    try:
        emulator = make_emulator(config)
    except UsageError as exc:
        # One line, and the exit status of a user's mistake (a missing ROM, an unknown start state):
        # the recorder shows it as its own error (recorder.supervisor).
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_client(emulator, config)
