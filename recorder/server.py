"""The recorder's websocket server: one :class:`Connection` per emulator client.

A thin asyncio adapter. Each received message goes through the sans-I/O codec
(``recorder.protocol.decode``) into the connection's sans-I/O session rules
(``recorder.session.Session``), and the adapter carries out the effects the session returns:
send a message, write a step with ``dataset.episode.EpisodeWriter``, close an episode file, ask
the policy for an action. This module is the one place where a ProtocolError becomes what the
peer sees (an ERROR message and a close code), as python-websockets keeps exactly one place that
maps exceptions to close codes; and the place of the limits that need a clock or a socket: the
connection cap, the handshake and idle timeouts (docs/protocol.md, "Limits").

Every connection is isolated: a client's bad bytes, disconnect or crash ends
only its own session, and its open episode is saved as truncated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from dataset.episode import EndReason, EpisodeWriter
from dataset.errors import ErrorCode, ProtocolError, StorageError, UsageError
from dataset.escaping import printable
from recorder import protocol as p
from recorder.policy import EndEpisode, Policy, make_policy
from recorder.profile import GameProfile
from recorder.server_config import ServerConfig
from recorder.session import (
    Act,
    CloseEpisode,
    Effect,
    MakePolicy,
    OpenEpisode,
    RecordGap,
    Session,
    WriteStep,
)

__all__ = ["EpisodeSummary", "PolicyFactory", "Recorder", "RecorderStats", "ServerConfig"]

log = logging.getLogger("sonic_rl.recorder")

#: Builds the policy for one policy-mode connection: (profile, seed) -> Policy.
PolicyFactory = Callable[[GameProfile, int], Policy]


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
    #: When the first episode was claimed and the last one ended (``time.monotonic``).
    first_episode_at: float | None = None
    last_episode_at: float | None = None

    def recording_seconds(self, *, live: bool = False) -> float:
        """From the first episode's start to the last one's end (``live``: to now): what frames/s is over."""
        if self.first_episode_at is None:
            return 0.0
        end = time.monotonic() if live or self.last_episode_at is None else self.last_episode_at
        return end - self.first_episode_at


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
        #: Why episodes still open when the recorder stops end (saved as truncated).
        self.stop_reason = EndReason.INTERRUPTED
        self._claimed = 0
        #: The output folder stopped taking data (disk full, ...): the recorder stopped, and run()
        #: raises this once every connection has been told (issue 11 item 2).
        self.failure: StorageError | None = None
        self._connections: set[Connection] = set()
        self._n_connections = 0
        #: The operator's --game (an id or a .toml path), loaded once: clients that name no game, or
        #: this one's id, get it; a client never names a file (recorder.session).
        self.profile: GameProfile | None = None
        if config.out is not None:
            config.out.mkdir(parents=True, exist_ok=True)
        if config.game:
            # Fail at start, not at the first connection: an unknown game, or a policy that cannot
            # play it (e.g. the scripted explorer on a profile without an [explorer] section).
            self.profile = config.profiles.resolve(config.game)
            if policy_factory is None and config.mode == p.Mode.POLICY:
                make_policy(config.policy, self.profile, config.seed)

    # -- episode budget ------------------------------------------------------------------
    def claim_episode(self) -> bool:
        """Reserve one episode of the budget; False once it is spent or the recorder stops."""
        if self._stopping:
            return False
        if self.config.episodes is not None and self._claimed >= self.config.episodes:
            return False
        self._claimed += 1
        if self.stats.first_episode_at is None:
            self.stats.first_episode_at = time.monotonic()
        return True

    def storage_failed(self, exc: StorageError) -> None:
        """An episode could not be written (its writer discarded it): stop, as the next would fail too."""
        if self.failure is None:
            self.failure = exc
        self.shutdown(EndReason.SERVER_STOP)

    def episode_finished(self, summary: EpisodeSummary) -> None:
        self.stats.episodes.append(summary)
        self.stats.last_episode_at = time.monotonic()
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
        if self.failure is not None:
            raise self.failure  # one line for the user (`record` exits 2); the clients got STOP

    def shutdown(self, reason: EndReason = EndReason.INTERRUPTED) -> None:
        """Save every open episode as truncated (``reason``: Ctrl-C / SIGTERM, or a spent budget), stop serving."""
        if self._stopping:
            return
        self._stopping = True
        self.stop_reason = reason
        self.done.set()

    async def _close_all(self) -> None:
        self._stopping = True
        await asyncio.gather(*(c.interrupt() for c in list(self._connections)), return_exceptions=True)

    async def _handle(self, ws: ServerConnection) -> None:
        if len(self._connections) >= self.config.max_connections:
            # Refused before any session: a close frame only (as for 1009), which clients retry later.
            log.warning("refused a connection: already serving %d clients", len(self._connections))
            cap = self.config.max_connections
            await ws.close(ErrorCode.TRY_AGAIN_LATER, f"the recorder already serves {cap} clients")
            return
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
    """One client connection: feeds its :class:`Session` and carries out what it returns."""

    def __init__(self, recorder: Recorder, ws: ServerConnection, index: int) -> None:
        self.recorder = recorder
        self.config = recorder.config
        self.ws = ws
        _small_reads(ws)
        addr = ws.remote_address or ("?", "?")
        self.peer = f"{addr[0]}:{addr[1]}"
        self.session = Session(
            recorder.config,
            session_id=secrets.token_hex(3),
            index=index,
            claim_episode=recorder.claim_episode,
            server_profile=recorder.profile,
        )
        self.session_id = self.session.session_id
        self.writer: EpisodeWriter | _NullWriter | None = None
        self._lock = asyncio.Lock()
        self._timed_out = False  # the idle watchdog is closing the connection
        #: When the client was last heard from (time.monotonic: the wall clock can jump).
        self._heard = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------
    async def run(self) -> None:
        watchdog = asyncio.create_task(self._watch_idle())
        try:
            async for raw in self.ws:
                async with self._lock:
                    if self.session.stopped:
                        continue  # in flight when we stopped; the session is over
                    self._heard = time.monotonic()
                    await self._do(self.session.receive(p.decode(raw)))
                    self._heard = time.monotonic()  # the time we spent (a policy thinking) is not the client's
        except ProtocolError as exc:
            log.warning("client %s (%s): %s", self.session_id, self.peer, printable(exc))  # may quote its HELLO
            await self._fail(exc.code, str(exc), drain=True)
        except StorageError as exc:
            async with self._lock:
                await self._fail(ErrorCode.GOING_AWAY, str(exc), drain=True, notice=self._storage_stop(exc))
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("internal error in session %s", self.session_id)
            await self._fail(ErrorCode.INTERNAL_ERROR, "internal error in the recorder; see its log", drain=True)
        finally:
            if self._timed_out:
                await watchdog  # let it finish the closing handshake it began
            else:
                watchdog.cancel()
            async with self._lock:
                try:
                    await self._do(self.session.disconnect())
                except StorageError as exc:  # nobody left to tell
                    self._discarded(exc)

    async def interrupt(self) -> None:
        """The recorder is stopping: save the open episode as truncated and say goodbye."""
        async with self._lock:
            with contextlib.suppress(ConnectionClosed):
                if not self.session.stopped:  # else it said goodbye already (STOP, or a full disk's)
                    try:
                        await self._do(self.session.interrupt(self.recorder.stop_reason))
                    except StorageError as exc:  # the last save failed: the STOP says why
                        await self.ws.send(p.encode(self._storage_stop(exc)))
        # The close handshake waits for the client's close frame, which queues behind the steps it
        # streamed meanwhile: run() must go on draining them (it drops them: the session is
        # stopped), so the lock is released first. Held, the queue filled, reading paused, and every
        # `record` waited out websockets' 10 s close timeout after its last episode (issue 12).
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(ErrorCode.GOING_AWAY, "recorder shutting down")

    async def _watch_idle(self) -> None:
        """Close a connection that sends no HELLO in time, or nothing at all for the idle time."""
        while True:
            left = self._idle_left()
            if left > 0 or self._lock.locked():  # busy on the client's last message: not idle
                await asyncio.sleep(max(left, 0.1))
                continue
            async with self._lock:
                if self._idle_left() > 0:
                    continue  # heard from while we waited for the lock
                self._timed_out = True
                if self.session.hello is None:
                    msg = f"no HELLO within {self.config.handshake_timeout:.0f} s of connecting"
                    code = ErrorCode.UNEXPECTED
                elif self.session.stopped:
                    msg, code = "the session is over: close the connection", ErrorCode.NORMAL
                else:
                    msg = f"no message for {self.config.idle_timeout:.0f} s; closing the idle connection"
                    code = ErrorCode.STEP_TIMEOUT
                log.warning("client %s (%s): %s", self.session_id, self.peer, msg)
                if code == ErrorCode.NORMAL:
                    await self.ws.close(code, msg)
                else:
                    await self._fail(code, msg)
            return

    def _idle_left(self) -> float:
        """Seconds until the connection counts as idle (the handshake's limit until HELLO)."""
        welcomed = self.session.hello is not None
        limit = self.config.idle_timeout if welcomed else self.config.handshake_timeout
        return self._heard + limit - time.monotonic()

    def _discarded(self, exc: StorageError) -> None:
        """The open episode's writer refused a write and discarded the episode; the recorder stops."""
        self.writer = None
        # The error itself reaches the user once, from the command (`record` exits 2 with it).
        log.info("client %s: episode %d discarded: its file could not be written", self.session_id,
                 self.session.episode)  # fmt: skip
        self.recorder.storage_failed(exc)

    def _storage_stop(self, exc: StorageError) -> p.Stop:
        """The output folder is full (or stopped taking writes): the episode is discarded, the
        recorder stops, and the client hears so and why (STOP reason 1, then close 1001;
        docs/protocol.md), never an internal error."""
        self._discarded(exc)
        [stop] = [e for e in self.session.interrupt(EndReason.SERVER_STOP, str(exc)) if isinstance(e, p.Stop)]
        return stop

    async def _fail(self, code: int, message: str, *, drain: bool = False, notice: p.Message | None = None) -> None:
        """Send ERROR (or ``notice``) and close with `code`.

        `drain` (only from run(), which has stopped reading): read and drop what the client still
        streams until its close frame arrives. Without it a streaming client's close reply queues
        behind the STEPs it sent meanwhile and the close waits out websockets' 10 s timeout,
        holding one of the capped connection slots (found by tests/recorder/test_fuzz.py).
        """
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(p.encode(notice or p.Error(code, message)))
            # RFC 6455 section 5.5: a close reason fits in 123 bytes.
            closing = self.ws.close(code, message.encode()[:123].decode("utf-8", "ignore"))
            if not drain:
                await closing
                return
            close = asyncio.ensure_future(closing)
            try:
                async for _ in self.ws:
                    pass
            finally:
                await close

    # -- effects -------------------------------------------------------------------------
    async def _do(self, effects: list[Effect]) -> None:
        """Carry out the session's effects, in order."""
        ended: EndReason | None = None
        for effect in effects:
            if isinstance(effect, WriteStep):
                self._write(effect)
            elif isinstance(effect, Act):
                ended = await self._act(effect)
            elif isinstance(effect, p.Status):
                # Display only: a client that already closed must not stop us recording the STEPs
                # it sent before closing.
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send(p.encode(effect))
            elif isinstance(effect, CloseEpisode):
                await self._close_episode(effect)
            elif isinstance(effect, OpenEpisode):
                self._open_episode(effect)
            elif isinstance(effect, RecordGap):
                assert self.writer is not None
                self.writer.add_gap(effect.step, effect.expected_frame, effect.got_frame)
            elif isinstance(effect, MakePolicy):
                await self._do(self.session.play(self._make_policy(effect)))
            else:
                await self.ws.send(p.encode(effect))
        if ended is not None:  # after this step's own effects (written, STATUS), as at any other end
            await self._do(self.session.policy_ended(ended))

    def _make_policy(self, effect: MakePolicy) -> Policy:
        try:
            return self.recorder.policy_factory(effect.profile, effect.seed)
        except UsageError as exc:  # e.g. the run's action set differs from this client's game
            raise ProtocolError(f"the recorder cannot play {effect.profile.id}: {exc}", ErrorCode.BAD_CONFIG) from None

    async def _act(self, effect: Act) -> EndReason | None:
        """Send the policy's ACTION; or, when it answers EndEpisode, send nothing and return its reason."""
        policy = self.session.policy
        assert policy is not None
        act_async = getattr(policy, "act_async", None)
        obs = effect.observation
        answer = await act_async(obs) if act_async is not None else policy.act(obs)
        if isinstance(answer, EndEpisode):
            return answer.reason
        await self.ws.send(p.encode(self.session.acted(int(answer))))
        return None

    def _write(self, step: WriteStep) -> None:
        assert self.writer is not None
        self.writer.step(
            frame=step.frame, ram=step.ram, frame_counter=step.frame_counter, timestamp=step.timestamp,
            buttons=step.buttons, action=step.action, actor=step.actor, policy_version=step.policy_version,
            reward=step.reward,
        )  # fmt: skip
        self.recorder.stats.steps += 1
        self.recorder.stats.frames += len(step.buttons)

    def _open_episode(self, effect: OpenEpisode) -> None:
        if self.config.out is None:
            self.writer = _NullWriter()
            return
        self.writer = EpisodeWriter(
            self.config.out,
            effect.meta,
            frame_shape=effect.frame.shape,  # type: ignore[arg-type]
            ram_size=len(effect.ram),
            buttons_per_step=self.config.frame_skip,
            start_state=effect.start_state,
        )
        self.writer.begin(effect.frame, effect.ram, effect.frame_counter, effect.timestamp)

    async def _close_episode(self, effect: CloseEpisode) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        path: Path | None = None
        discarded = False
        try:
            if not effect.save and isinstance(writer, EpisodeWriter):
                writer.abandon()
                writer.temp_path.unlink(missing_ok=True)
                log.info("episode %s/%d ended before its first step; nothing to save", self.session_id, effect.episode)
            else:
                # Closing compresses the last chunk and fsyncs: off the loop, so other clients keep going.
                path = await asyncio.get_running_loop().run_in_executor(None, writer.close, effect.reason)
        except StorageError:
            discarded = True  # no episode to report: the caller stops the recorder
            raise
        finally:
            if not discarded:
                self._finished(effect, path)
        if effect.notify:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(p.encode(effect.message(path.name if path else "")))

    def _finished(self, effect: CloseEpisode, path: Path | None) -> None:
        summary = EpisodeSummary(
            self.session_id, effect.episode, effect.steps, effect.episode_return, effect.reason, path,
            effect.policy_id,
        )  # fmt: skip
        log.info(
            "episode %s/%d ended: %s after %d steps, return %.1f%s",
            self.session_id, effect.episode, effect.reason.label, effect.steps, effect.episode_return,
            f", saved {path.name}" if path else "",
        )  # fmt: skip
        self.recorder.episode_finished(summary)


#: Bytes asyncio asks the socket for per read. Its default, 256 KiB, is above glibc's 128 KiB mmap
#: threshold: every read of a 3 KB compressed STEP mapped, shrank and unmapped a fresh buffer, ~16 us
#: of each lockstep round trip (issue 13). Below it, a raw BizHawk frame takes a few more reads, each
#: cheaper than one large one.
_READ_BYTES = 64 * 1024


def _small_reads(ws: ServerConnection) -> None:
    """Read this connection's socket in :data:`_READ_BYTES` pieces (CPython's selector transports
    read ``max_size`` bytes; other event loops keep their own size)."""
    transport = getattr(ws, "transport", None)
    if transport is not None and isinstance(getattr(transport, "max_size", None), int):
        with contextlib.suppress(AttributeError):
            transport.max_size = _READ_BYTES


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
