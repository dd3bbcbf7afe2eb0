"""The recorder's websocket server: one :class:`Connection` per emulator client.

The server is a thin asyncio adapter around the sans-I/O codec in
``recorder.protocol``: it feeds received bytes to :func:`decode`, runs the
session rules of docs/protocol.md, and writes one HDF5 file per episode with
``dataset.episode.EpisodeWriter``. This module is the one place where a
ProtocolError becomes what the peer sees (an ERROR message and a close code),
as python-websockets keeps exactly one place that maps exceptions to close codes.

Every connection is isolated: a client's bad bytes, disconnect or crash ends
only its own session, and its open episode is saved as truncated.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from dataset.episode import Actor, EndReason, EpisodeMeta, EpisodeWriter
from dataset.errors import (
    AuthenticationFailed,
    ConfigError,
    ErrorCode,
    ProfileError,
    ProtocolError,
    UnexpectedMessage,
    UnknownGame,
    UsageError,
)
from recorder import __version__
from recorder import protocol as p
from recorder.action_set import ActionSet
from recorder.console_system import system_mismatch
from recorder.policy import Policy, PolicyInput, make_policy
from recorder.profile import EpisodeJudge, GameProfile, find_profile_for_rom, load_profile

__all__ = ["STATUS_EVERY_STEPS", "EpisodeSummary", "PolicyFactory", "Recorder", "RecorderStats", "ServerConfig"]

log = logging.getLogger("sonic_rl.recorder")

HANDSHAKE_TIMEOUT_S = 10.0

#: A STATUS message (last reward, return so far) goes to the client after every this many steps of
#: an episode: about 4 a second at 60 frames/s and frame skip 4, enough for the tool window's
#: "last reward" (issue 3) at a negligible 25 bytes each.
STATUS_EVERY_STEPS = 15

#: Builds the policy for one policy-mode connection: (profile, seed) -> Policy.
PolicyFactory = Callable[[GameProfile, int], Policy]


@dataclass(frozen=True)
class ServerConfig:
    """Everything the recorder server needs; built once from the CLI and logged."""

    out: Path | None  # None: play without saving (evaluation)
    host: str = "127.0.0.1"
    port: int = 8765  # 0 picks a free port (tests)
    token: str | None = None
    game: str | None = None  # profile for clients whose HELLO names none
    mode: p.Mode = p.Mode.HUMAN  # for clients whose HELLO says ANY
    policy: str = "random"
    frame_skip: int = 4
    max_steps: int | None = None  # None: the profile's default step limit
    episodes: int | None = None  # total over all clients; None: unlimited
    seed: int = 0
    step_timeout: float = 10.0
    policy_only: bool = False  # refuse human-mode clients (online fine-tuning has no use for them)
    #: Episodes one connection may play: ``record --clients N`` shares the budget so that a fast
    #: emulator does not take the episodes of one still starting.
    episodes_per_client: int | None = None

    def check(self) -> None:
        """Refuse configurations that are unsafe or cannot work (one clear line each)."""
        if not _is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"refusing to bind to {self.host} without a token: pass --token SECRET "
                "(clients must send it) or bind to 127.0.0.1"
            )
        if not 1 <= self.frame_skip <= 255:
            raise ConfigError(f"--frame-skip must be 1..255, got {self.frame_skip}")
        if self.episodes is not None and self.episodes < 1:
            raise ConfigError(f"--episodes must be at least 1, got {self.episodes}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"--max-steps must be at least 1, got {self.max_steps}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class EpisodeSummary:
    """What the recorder reports about each finished episode."""

    session_id: str
    episode: int
    steps: int
    episode_return: float
    end_reason: EndReason
    path: Path | None
    policy_id: str


@dataclass
class RecorderStats:
    """Counters read by progress bars (mutated on the event loop only)."""

    steps: int = 0
    frames: int = 0
    connections: int = 0
    started: float = field(default_factory=time.monotonic)
    episodes: list[EpisodeSummary] = field(default_factory=list)


class Recorder:
    """The websocket server. ``await run()`` serves until :meth:`shutdown` or the episode budget is spent."""

    def __init__(
        self,
        config: ServerConfig,
        policy_factory: PolicyFactory | None = None,
        on_episode: Callable[[EpisodeSummary], None] | None = None,
    ) -> None:
        config.check()
        self.config = config
        self.policy_factory = policy_factory or (lambda prof, seed: make_policy(config.policy, prof, seed))
        self.on_episode = on_episode
        self.stats = RecorderStats()
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = asyncio.Event()
        self.done = asyncio.Event()  # budget spent or shut down
        self._stopping = False
        self._claimed = 0
        self._connections: set[Connection] = set()
        self._n_connections = 0
        if config.out is not None:
            config.out.mkdir(parents=True, exist_ok=True)
        if config.game:
            # Fail at start, not at the first connection: an unknown game, or a policy that cannot
            # play it (e.g. the scripted explorer on a profile without an [explorer] section).
            profile = load_profile(config.game)
            if policy_factory is None and config.mode == p.Mode.POLICY:
                make_policy(config.policy, profile, config.seed)

    # -- episode budget ------------------------------------------------------------------
    def claim_episode(self) -> bool:
        """Reserve one episode of the budget; False once it is spent or the recorder stops."""
        if self._stopping:
            return False
        if self.config.episodes is not None and self._claimed >= self.config.episodes:
            return False
        self._claimed += 1
        return True

    def episode_finished(self, summary: EpisodeSummary) -> None:
        self.stats.episodes.append(summary)
        if self.on_episode is not None:
            self.on_episode(summary)
        if self.config.episodes is not None and len(self.stats.episodes) >= self.config.episodes:
            self.done.set()

    # -- serving -------------------------------------------------------------------------
    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        async with websockets.serve(
            self._handle,
            self.config.host,
            self.config.port,
            max_size=p.MAX_MESSAGE_BYTES,
            max_queue=4,
            compression=None,  # frames go to zstd later; per-message deflate would only cost CPU
        ) as server:
            sock = next(iter(server.sockets))
            self.port = sock.getsockname()[1]
            log.info("listening on ws://%s:%d", self.config.host, self.port)
            self.ready.set()
            await self.done.wait()
            await self._close_all()

    def shutdown(self) -> None:
        """Ctrl-C / SIGTERM: save every open episode as truncated, tell clients, stop serving."""
        if self._stopping:
            return
        self._stopping = True
        self.done.set()

    async def _close_all(self) -> None:
        self._stopping = True
        await asyncio.gather(*(c.interrupt() for c in list(self._connections)), return_exceptions=True)

    async def _handle(self, ws: ServerConnection) -> None:
        self._n_connections += 1
        conn = Connection(self, ws, self._n_connections - 1)
        self._connections.add(conn)
        self.stats.connections += 1
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            self.stats.connections -= 1


class Connection:
    """One client session: handshake, episodes, steps (docs/protocol.md)."""

    def __init__(self, recorder: Recorder, ws: ServerConnection, index: int) -> None:
        self.recorder = recorder
        self.config = recorder.config
        self.ws = ws
        self.index = index
        self.session_id = secrets.token_hex(3)
        addr = ws.remote_address or ("?", "?")
        self.peer = f"{addr[0]}:{addr[1]}"
        self.hello: p.Hello | None = None
        self.profile: GameProfile | None = None
        self.mode = p.Mode.HUMAN
        self.policy: Policy | None = None
        self.policy_id = "human"  # who chose the buttons: "human", the server's or the client's policy
        self.discarded = 0  # client-policy STEPs that arrived after their episode ended
        self.actions: ActionSet | None = None
        self.max_steps = 0
        # Episode state.
        self.writer: EpisodeWriter | None = None
        self.judge: EpisodeJudge | None = None
        self.episode = -1
        self.steps = 0
        self.episode_return = 0.0
        self.pending_reset: int | None = None
        self.pending_action: p.Action | None = None
        self.frame_shape: tuple[int, int, int] | None = None
        self.next_seq: int | None = 1
        self.last_frame_counter = 0
        self.last_obs: tuple[np.ndarray, np.ndarray, int] | None = None
        self.stopped = False
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------
    async def run(self) -> None:
        reason = EndReason.DISCONNECT
        try:
            await self._handshake()
            async for raw in self.ws:
                async with self._lock:
                    if self.stopped:
                        continue  # in flight when we stopped; the session is over
                    await self._dispatch(p.decode(raw))
        except ProtocolError as exc:
            log.warning("client %s (%s): %s", self.session_id, self.peer, exc)
            await self._fail(exc.code, str(exc))
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("internal error in session %s", self.session_id)
            await self._fail(ErrorCode.INTERNAL_ERROR, "internal error in the recorder; see its log")
        finally:
            async with self._lock:
                if self.writer is not None:
                    log.warning(
                        "client %s disconnected mid-episode %d; saving it as truncated", self.session_id, self.episode
                    )
                    await self._end_episode(reason, notify=False)

    async def interrupt(self) -> None:
        """The recorder is stopping: save the open episode as truncated and say goodbye."""
        async with self._lock:
            if self.writer is not None:
                await self._end_episode(EndReason.INTERRUPTED, notify=True)
            self.stopped = True
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(p.encode(p.Stop(p.StopReason.SHUTDOWN, "the recorder is shutting down")))
                await self.ws.close(ErrorCode.GOING_AWAY, "recorder shutting down")

    async def _fail(self, code: int, message: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(p.encode(p.Error(code, message)))
            # RFC 6455 section 5.5: a close reason fits in 123 bytes.
            await self.ws.close(code, message.encode()[:123].decode("utf-8", "ignore"))

    async def _send(self, msg: p.Message) -> None:
        await self.ws.send(p.encode(msg))

    # -- handshake -----------------------------------------------------------------------
    async def _handshake(self) -> None:
        try:
            raw = await asyncio.wait_for(self.ws.recv(), HANDSHAKE_TIMEOUT_S)
        except TimeoutError:
            raise UnexpectedMessage(f"no HELLO within {HANDSHAKE_TIMEOUT_S:.0f} s of connecting") from None
        hello = p.decode(raw)
        if not isinstance(hello, p.Hello):
            raise UnexpectedMessage(f"the first message must be HELLO, got {hello.kind.name}")
        token = self.config.token or ""
        if token and not hmac.compare_digest(hello.token.encode(), token.encode()):
            raise AuthenticationFailed("wrong or missing token: use the token the recorder was started with")
        self.profile = self._choose_profile(hello)
        self._check_client(hello, self.profile)
        self.hello = hello
        self.mode = hello.mode if hello.mode != p.Mode.ANY else self.config.mode
        if self.config.policy_only and self.mode != p.Mode.POLICY:
            raise ProtocolError(
                "this recorder only plays its policy (sonic-train online): switch the tool to policy mode",
                ErrorCode.BAD_CONFIG,
            )
        self.max_steps = self.config.max_steps or self.profile.max_steps
        send = p.SendFlag.SCREEN | p.SendFlag.RAM | p.SendFlag.START_STATE
        await self._send(
            p.Welcome(
                session_id=self.session_id,
                profile_id=self.profile.id,
                mode=self.mode,
                frame_skip=self.config.frame_skip,
                send=send,
                step_timeout_ms=int(self.config.step_timeout * 1000),
                max_steps=self.max_steps,
                server_version=__version__,
            )
        )
        log.info(
            "client %s (%s) connected: %s %s, %s, game %s, %s mode",
            self.session_id, self.peer, hello.client_name, hello.client_version, hello.emulator,
            self.profile.id, self.mode.name.lower(),
        )  # fmt: skip
        if self.mode == p.Mode.CLIENT_POLICY:
            self.policy_id = hello.policy_id or "client"
            await self._reset_or_stop()
        elif self.mode == p.Mode.POLICY:
            try:
                self.policy = self.recorder.policy_factory(self.profile, self.config.seed + self.index)
            except UsageError as exc:  # e.g. the run's action set differs from this client's game
                msg = f"the recorder cannot play {self.profile.id}: {exc}"
                raise ProtocolError(msg, ErrorCode.BAD_CONFIG) from None
            self.policy_id = self.policy.policy_id
            await self._reset_or_stop()

    def _choose_profile(self, hello: p.Hello) -> GameProfile:
        wanted = hello.game or self.config.game
        if wanted:
            try:
                return load_profile(wanted)
            except ProfileError as exc:
                raise UnknownGame(str(exc)) from None
        found = find_profile_for_rom(hello.rom_name, hello.rom_hash)
        if found is None:
            raise UnknownGame(
                f"no game profile for ROM {hello.rom_name!r} (hash {hello.rom_hash}); "
                "start the recorder with --game ID or add a profile"
            )
        return found

    def _check_client(self, hello: p.Hello, profile: GameProfile) -> None:
        wrong_system = system_mismatch(hello.system, profile.id, profile.system)
        if wrong_system:  # the RAM and buttons of another console would only add noise to the message
            raise ProtocolError(wrong_system, ErrorCode.BAD_CONFIG)
        problems = []
        if hello.ram_size != profile.ram_size:
            problems.append(f"RAM is {hello.ram_size} bytes, the profile expects {profile.ram_size}")
        if hello.pixel_format == p.PixelFormat.NONE:
            problems.append("the client declares no screen format")
        try:
            self.actions = profile.action_set(hello.buttons)
        except ProfileError as exc:
            problems.append(str(exc))
        if problems:
            detail = "; ".join(problems)
            raise ProtocolError(f"client does not fit profile {profile.id}: {detail}", ErrorCode.BAD_CONFIG)

    # -- episodes ------------------------------------------------------------------------
    async def _reset_or_stop(self) -> None:
        share = self.config.episodes_per_client
        if (share is None or self.episode + 1 < share) and self.recorder.claim_episode():
            self.episode += 1
            self.pending_reset = self.episode
            await self._send(p.Reset(self.episode, load_start_state=True))
        else:
            await self._stop()

    async def _stop(self) -> None:
        self.stopped = True
        await self._send(p.Stop(p.StopReason.DONE, "episode budget reached"))

    def _open_episode(self, frame: np.ndarray, ram: np.ndarray, counter: int, start_state: bytes | None) -> None:
        assert self.profile is not None and self.hello is not None
        self.steps = 0
        self.episode_return = 0.0
        self.frame_shape = frame.shape  # type: ignore[assignment]
        self.judge = self.profile.judge(self.config.frame_skip)
        self.judge.start(ram)
        if self.policy is not None:
            self.policy.reset()
        self.last_frame_counter = counter
        self.last_obs = (frame, ram, counter)
        if self.config.out is None:
            self.writer = _NullWriter()  # type: ignore[assignment]
            return
        extra = getattr(self.policy, "metadata", None) or {}
        meta = EpisodeMeta(
            game=self.profile.id,
            rom_name=self.hello.rom_name,
            rom_hash=self.hello.rom_hash,
            emulator=self.hello.emulator,
            core=self.hello.core,
            system=self.hello.system,
            client_name=self.hello.client_name,
            client_version=self.hello.client_version,
            recorder_version=__version__,
            profile_toml=self.profile.text,
            frame_skip=self.config.frame_skip,
            mode="human" if self.mode == p.Mode.HUMAN else "policy",
            policy_id=self.policy_id,
            button_names=tuple(self.hello.buttons),
            action_names=tuple(self.profile.action_names),
            episode_index=self.episode,
            session_id=self.session_id,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            extra=tuple((str(k), str(v)) for k, v in dict(extra).items())
            + ((("policy_runs_in", "client"),) if self.mode == p.Mode.CLIENT_POLICY else ()),
        )
        self.writer = EpisodeWriter(
            self.config.out,
            meta,
            frame_shape=tuple(frame.shape),  # type: ignore[arg-type]
            ram_size=len(ram),
            buttons_per_step=self.config.frame_skip,
            start_state=start_state or None,
        )
        self.writer.begin(frame, ram, counter, time.time())

    async def _end_episode(self, reason: EndReason, *, notify: bool) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        path: Path | None = None
        try:
            if self.steps == 0 and isinstance(writer, EpisodeWriter):
                # Ended before its first step (a client gone right after EPISODE_BEGIN): no
                # transition, no input to keep; a file would only be an empty episode to trip on.
                writer.abandon()
                writer.temp_path.unlink(missing_ok=True)
                log.info("episode %s/%d ended before its first step; nothing to save", self.session_id, self.episode)
            else:
                # Closing compresses the last chunk and fsyncs: off the loop, so other clients keep going.
                path = await asyncio.get_running_loop().run_in_executor(None, writer.close, reason)
        finally:
            summary = EpisodeSummary(
                self.session_id,
                self.episode,
                self.steps,
                self.episode_return,
                reason,
                path,
                self.policy_id,
            )
            log.info(
                "episode %s/%d ended: %s after %d steps, return %.1f%s",
                self.session_id, self.episode, reason.label, self.steps, self.episode_return,
                f", saved {path.name}" if path else "",
            )  # fmt: skip
            self.recorder.episode_finished(summary)
        if notify:
            with contextlib.suppress(ConnectionClosed):
                await self._send(
                    p.EpisodeEnd(
                        self.episode,
                        self.steps,
                        int(reason),
                        reason.terminal,
                        not reason.terminal,
                        self.episode_return,
                        path.name if path else "",
                    )
                )

    # -- messages ------------------------------------------------------------------------
    async def _dispatch(self, msg: p.Message) -> None:
        if isinstance(msg, p.Step):
            await self._on_step(msg)
        elif isinstance(msg, p.EpisodeBegin):
            await self._on_begin(msg)
        elif isinstance(msg, p.FramesDropped):
            self._on_dropped(msg)
        elif isinstance(msg, p.Error):
            log.warning("client %s reported error %d: %s", self.session_id, msg.code, msg.message)
        else:
            raise UnexpectedMessage(f"{msg.kind.name} is not expected from a client during a session")

    @property
    def _server_resets(self) -> bool:
        """Policy and client-policy sessions begin every episode with a RESET from the recorder."""
        return self.mode in (p.Mode.POLICY, p.Mode.CLIENT_POLICY)

    async def _on_begin(self, msg: p.EpisodeBegin) -> None:
        obs = msg.observation
        if self._server_resets:
            if self.pending_reset is None or msg.episode != self.pending_reset:
                raise UnexpectedMessage(
                    f"EPISODE_BEGIN for episode {msg.episode} without a matching RESET "
                    f"(expected {self.pending_reset})"
                )
            self.pending_reset = None
            if self.mode == p.Mode.CLIENT_POLICY:
                self.next_seq = None  # steps streamed past the last episode's end were discarded
        else:
            if self.writer is not None:
                await self._end_episode(EndReason.CLIENT_STOP, notify=True)
            if not self.recorder.claim_episode():
                await self._stop()
                return
            self.episode += 1
        self._open_episode(obs.rgb(), obs.ram_array(), msg.frame, bytes(msg.start_state))
        if self.mode == p.Mode.POLICY:
            await self._act(obs)

    async def _act(self, obs: p.Observation) -> None:
        assert self.policy is not None and self.profile is not None
        ram = obs.ram_array()
        # obs.rgb is passed uncalled: the screen is decoded only if the policy looks at it.
        pobs = PolicyInput(obs.rgb, ram, self.profile.read_variables(ram), self.steps)
        act_async = getattr(self.policy, "act_async", None)
        action = int(await act_async(pobs)) if act_async is not None else int(self.policy.act(pobs))
        assert self.actions is not None
        if not 0 <= action < len(self.actions):
            raise RuntimeError(f"policy {self.policy.policy_id} chose action {action} outside the action set")
        version = int(getattr(self.policy, "version", 0))
        self.pending_action = p.Action(self.next_seq, self.actions.mask(action), action, version)
        await self._send(self.pending_action)

    def _on_dropped(self, msg: p.FramesDropped) -> None:
        log.warning(
            "client %s dropped %d steps (seq %d.., frames %d-%d): its send queue was full",
            self.session_id, msg.count, msg.first_seq, msg.first_frame, msg.last_frame,
        )  # fmt: skip
        if self.writer is not None:
            self.writer.add_gap(self.steps + 1, self.last_frame_counter + self.config.frame_skip, msg.last_frame)
        self.next_seq = msg.first_seq + msg.count

    async def _on_step(self, msg: p.Step) -> None:
        if self.writer is None:
            if self.mode == p.Mode.CLIENT_POLICY and self.episode >= 0:
                # A streaming client learns that its episode ended one message late: steps it sent
                # past the end belong to no episode (it was told to reset), so they are dropped.
                self.discarded += 1
                log.debug("client %s: dropped STEP %d sent after its episode ended", self.session_id, msg.seq)
                return
            raise UnexpectedMessage("STEP before EPISODE_BEGIN")
        assert self.judge is not None
        if self.next_seq is not None and msg.seq != self.next_seq:
            if self.mode == p.Mode.POLICY:
                raise UnexpectedMessage(f"STEP seq {msg.seq}, expected {self.next_seq} (the last ACTION's seq)")
            log.warning("client %s: STEP seq %d, expected %d: steps lost or repeated", self.session_id, msg.seq,
                        self.next_seq)  # fmt: skip
        self.next_seq = msg.seq + 1
        n = len(msg.buttons)
        if n != self.config.frame_skip:
            raise UnexpectedMessage(f"STEP holds {n} frames but the session's frame skip is {self.config.frame_skip}")
        expected = self.last_frame_counter + n
        if msg.frame != expected:
            # docs/protocol.md: a gap or repeat is logged and recorded, never silently accepted.
            log.warning("client %s: frame counter %d, expected %d (gap of %d)", self.session_id, msg.frame, expected,
                        msg.frame - expected)  # fmt: skip
            self.writer.add_gap(self.steps + 1, expected, msg.frame)
        self.last_frame_counter = msg.frame
        obs = msg.observation
        ram = obs.ram_array()
        if obs.shape != self.frame_shape:
            await self._on_resize(msg, obs.rgb(), ram)
            return
        reward, end = self.judge.step(ram)
        if end is None and self.steps + 1 >= self.max_steps:
            end = EndReason.STEP_LIMIT
        if self.mode == p.Mode.POLICY:
            act = self.pending_action
            assert act is not None
            action, actor, version = act.action, Actor.POLICY, act.policy_version
        elif self.mode == p.Mode.CLIENT_POLICY:
            assert self.actions is not None
            # The client's policy plays from the profile's action set; recover the index from the masks.
            action, actor, version = self.actions.of_step(msg.buttons), Actor.POLICY, 0
        else:
            action, actor, version = -1, Actor.HUMAN, 0
        self.steps += 1
        self.episode_return += reward
        self.recorder.stats.steps += 1
        self.recorder.stats.frames += n
        if end is None and self.mode == p.Mode.POLICY:
            await self._act(obs)  # reply first: the client waits on it, the file does not
        frame = obs.rgb()
        self.writer.step(
            frame=frame,
            ram=ram,
            frame_counter=msg.frame,
            timestamp=time.time(),
            buttons=np.asarray(msg.buttons, dtype=np.uint32),
            action=action,
            actor=actor,
            policy_version=version,
            reward=float(reward),
        )
        self.last_obs = (frame, ram, msg.frame)
        if self.steps % STATUS_EVERY_STEPS == 0:
            # After the ACTION (policy mode), so it adds no lockstep latency; before EPISODE_END on
            # an episode's last step, so it still names the episode it reports on. Display only: a
            # client that already closed must not stop us recording the STEPs it sent before closing.
            with contextlib.suppress(ConnectionClosed):
                await self._send(p.Status(self.episode, self.steps, float(reward), self.episode_return))
        if end is not None:
            await self._episode_over(end)

    async def _episode_over(self, reason: EndReason) -> None:
        await self._end_episode(reason, notify=True)
        if self._server_resets:
            await self._reset_or_stop()
        elif self.recorder.claim_episode():
            # Human mode: the player keeps playing; the next episode starts where this one ended.
            assert self.last_obs is not None
            frame, ram, counter = self.last_obs
            self.episode += 1
            self._open_episode(frame, ram, counter, None)
        else:
            await self._stop()

    async def _on_resize(self, msg: p.Step, frame: np.ndarray, ram: np.ndarray) -> None:
        log.warning("client %s: screen changed from %s to %s; starting a new episode", self.session_id,
                    self.frame_shape, frame.shape)  # fmt: skip
        await self._end_episode(EndReason.SCREEN_CHANGED, notify=True)
        if self._server_resets:
            await self._reset_or_stop()
        elif self.recorder.claim_episode():
            self.episode += 1
            self._open_episode(frame, ram, msg.frame, None)
        else:
            await self._stop()


class _NullWriter:
    """Stands in for EpisodeWriter when nothing is saved (``sonic-train eval`` without --record)."""

    def begin(self, *args: Any, **kwargs: Any) -> None:
        pass

    def step(self, **kwargs: Any) -> None:
        pass

    def add_gap(self, *args: Any) -> None:
        pass

    def close(self, reason: EndReason) -> None:
        return None
