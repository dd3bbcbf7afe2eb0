"""The recorder's session rules, sans-I/O: fed decoded messages, it says what to do.

One :class:`Session` per client connection holds the rules of docs/protocol.md: the handshake,
sequence numbers and frame-counter gaps, the episode budget, judging each step with the game
profile, per-mode actions (human, policy in lockstep, client policy streaming) and STATUS. Like
the codec in ``recorder.protocol`` (and the protocol cores of python-websockets or h11), it
never touches a socket, a file or an event loop: :meth:`Session.receive` takes one decoded
message and returns a list of *effects* that its adapter, ``recorder.server.Connection``,
carries out in order:

- a ``recorder.protocol`` message: send it;
- :class:`OpenEpisode`: create the episode's writer with observation 0;
- :class:`RecordGap`, :class:`WriteStep`: hand them to that writer;
- :class:`CloseEpisode`: close the writer, report the episode, and send its EPISODE_END;
- :class:`MakePolicy`: build the server's policy, then call :meth:`Session.play`;
- :class:`Act`: ask the policy for an action, then send :meth:`Session.acted`'s ACTION.

So the rules are tested by feeding messages, with no sockets and no sleeps
(tests/recorder/test_session.py).

Every message is checked completely before the session changes anything (issue 11): a refused
message raises a ProtocolError carrying its close code and leaves no gap row, step, reply or
half-advanced counter behind. Compressed pixels are therefore decompressed while checking, and
values are held to what an episode file can store, by the writer's own limits
(``dataset.episode``), so no client input reaches the writer to fail there.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from dataset.episode import FRAME_COUNTER_LIMIT, Actor, EndReason, EpisodeMeta, undeclared_button_bits
from dataset.errors import (
    AuthenticationFailed,
    ErrorCode,
    MalformedMessage,
    ProfileError,
    ProtocolError,
    UnexpectedMessage,
    UnknownGame,
)
from dataset.escaping import printable
from recorder import __version__
from recorder import protocol as p
from recorder.action_set import ActionSet
from recorder.console_system import system_mismatch
from recorder.policy import Policy, PolicyInput
from recorder.profile import EpisodeJudge, GameProfile
from recorder.server_config import ServerConfig

__all__ = [
    "LAST_SEQ",
    "STATUS_EVERY_STEPS",
    "Act",
    "CloseEpisode",
    "Effect",
    "MakePolicy",
    "OpenEpisode",
    "RecordGap",
    "Session",
    "WriteStep",
]

log = logging.getLogger("sonic_rl.recorder")

#: A STATUS message (last reward, return so far) goes to the client after every this many steps of
#: an episode: about 4 a second at 60 frames/s and frame skip 4, enough for the tool window's
#: "last reward" (issue 3) at a negligible 25 bytes each.
STATUS_EVERY_STEPS = 15

#: Sequence numbers are u32 on the wire and start at 1: this is the last one a connection has.
LAST_SEQ = 2**32 - 1

#: What a client may name in HELLO's game field: a profile id ("Airstriker-Genesis-v0"), never a
#: path. The recorder looks the id up among its own profiles only (issue 9): a client must not make
#: it read files of its choosing or learn whether they exist.
_PROFILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


# --- effects: what the adapter does, in order ----------------------------------------------


@dataclass(frozen=True, eq=False)
class OpenEpisode:
    """Create the episode's writer (or none when the recorder saves nothing) with observation 0."""

    meta: EpisodeMeta
    frame: np.ndarray  # (H, W, 3) RGB
    ram: np.ndarray
    frame_counter: int
    start_state: bytes | None
    timestamp: float


@dataclass(frozen=True)
class RecordGap:
    """Observation ``step`` of the open episode carried ``got_frame`` where ``expected_frame`` was due."""

    step: int
    expected_frame: int
    got_frame: int


@dataclass(frozen=True, eq=False)
class WriteStep:
    """One step for the open episode's writer: ``EpisodeWriter.step``'s keywords."""

    frame: np.ndarray
    ram: np.ndarray
    frame_counter: int
    timestamp: float
    buttons: np.ndarray
    action: int
    actor: Actor
    policy_version: int
    reward: float


@dataclass(frozen=True)
class CloseEpisode:
    """Close the open episode's writer (save it unless it has no step), report it to the recorder,
    and, when ``notify``, send :meth:`message` with the saved file's name."""

    episode: int
    steps: int
    episode_return: float
    reason: EndReason
    policy_id: str
    notify: bool

    @property
    def save(self) -> bool:
        # Ended before its first step (a client gone right after EPISODE_BEGIN): no transition,
        # no input to keep; a file would only be an empty episode to trip on.
        return self.steps > 0

    def message(self, file_name: str) -> p.EpisodeEnd:
        terminal = self.reason.terminal
        return p.EpisodeEnd(
            self.episode, self.steps, int(self.reason), terminal, not terminal, self.episode_return, file_name
        )


@dataclass(frozen=True)
class MakePolicy:
    """Policy mode: build the server's policy for this profile and seed, then call :meth:`Session.play`."""

    profile: GameProfile
    seed: int


@dataclass(frozen=True, eq=False)
class Act:
    """Policy mode: choose an action for this input, then send :meth:`Session.acted`'s ACTION."""

    observation: PolicyInput


Effect = p.Message | OpenEpisode | RecordGap | WriteStep | CloseEpisode | MakePolicy | Act


# --- the rules ------------------------------------------------------------------------------


class Session:
    """One client's session (docs/protocol.md). Not thread-safe: one caller feeds it.

    ``claim_episode`` reserves one episode of the recorder's budget (shared by all connections)
    and says whether there was one. ``server_profile`` is the recorder's ``--game``, already
    loaded; ``clock`` stamps observations (wall-clock seconds, as episode files store them).
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        session_id: str,
        index: int,
        claim_episode: Callable[[], bool],
        server_profile: GameProfile | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.session_id = session_id
        self.index = index
        self._claim_episode = claim_episode
        self._server_profile = server_profile
        self._clock = clock
        self.hello: p.Hello | None = None
        self.profile: GameProfile | None = None
        self.actions: ActionSet | None = None
        self.mode = p.Mode.HUMAN
        self.max_steps = 0
        self.policy: Policy | None = None
        self.policy_id = "human"  # who chose the buttons: "human", the server's or the client's policy
        self.stopped = False  # STOP was sent (or the recorder is shutting down): nothing more to do
        self.discarded = 0  # client-policy STEPs that arrived after their episode ended
        # The open episode.
        self.episode = -1
        self.open = False
        self.steps = 0
        self.episode_return = 0.0
        self._judge: EpisodeJudge | None = None
        self._frame_shape: tuple[int, int, int] | None = None
        self._last_obs: tuple[np.ndarray, np.ndarray, int] | None = None
        # The connection's sequence and frame counters.
        self.next_seq: int | None = 1
        self.last_frame_counter = 0
        self.pending_reset: int | None = None
        self._pending_action: p.Action | None = None
        self._dropped_since_step = False
        self._undeclared_buttons = 0

    # -- entry points ------------------------------------------------------------------------
    def receive(self, msg: p.Message) -> list[Effect]:
        """Apply one message from the client; raises ProtocolError (and changes nothing) for a bad one."""
        if self.stopped:
            return []  # in flight when the session stopped
        if self.hello is None:
            if not isinstance(msg, p.Hello):
                raise UnexpectedMessage(f"the first message must be HELLO, got {msg.kind.name}")
            return self._on_hello(msg)
        if isinstance(msg, p.Step):
            return self._on_step(msg)
        if isinstance(msg, p.EpisodeBegin):
            return self._on_begin(msg)
        if isinstance(msg, p.FramesDropped):
            return self._on_dropped(msg)
        if isinstance(msg, p.Error):
            log.warning("client %s reported error %d: %s", self.session_id, msg.code, printable(msg.message))
            return []
        raise UnexpectedMessage(f"{msg.kind.name} is not expected from a client during a session")

    def play(self, policy: Policy) -> list[Effect]:
        """Policy mode: the adapter built the policy :class:`MakePolicy` asked for; start the first episode."""
        self.policy = policy
        self.policy_id = policy.policy_id
        return self._reset_or_stop()

    def acted(self, action: int) -> p.Action:
        """The ACTION that carries the policy's choice for the step :class:`Act` asked about."""
        assert self.policy is not None and self.actions is not None and self.next_seq is not None
        if not 0 <= action < len(self.actions):
            raise RuntimeError(f"policy {self.policy_id} chose action {action} outside the action set")
        version = int(getattr(self.policy, "version", 0))
        self._pending_action = p.Action(self.next_seq, self.actions.mask(action), action, version)
        return self._pending_action

    def policy_ended(self, reason: EndReason) -> list[Effect]:
        """The policy answered :class:`Act` with ``EndEpisode(reason)`` instead of an action: end the
        episode here (no ACTION is sent) and start the next, as at any other end."""
        assert self.mode == p.Mode.POLICY and self.open
        return self._episode_over(reason)

    def interrupt(self, reason: EndReason = EndReason.INTERRUPTED, why: str = "") -> list[Effect]:
        """The recorder is stopping (``reason``: Ctrl-C, a spent budget, a full disk): save the open
        episode as truncated and say goodbye (and ``why``, when it is news to the user)."""
        effects: list[Effect] = []
        if self.open:
            effects.append(self._close(reason, notify=True))
        self.stopped = True
        words = f"the recorder is shutting down: {why}" if why else "the recorder is shutting down"
        effects.append(p.Stop(p.StopReason.SHUTDOWN, words))
        return effects

    def disconnect(self) -> list[Effect]:
        """The connection is gone: save the open episode as truncated (nobody to tell)."""
        if not self.open:
            return []
        log.warning("client %s disconnected mid-episode %d; saving it as truncated", self.session_id, self.episode)
        return [self._close(EndReason.DISCONNECT, notify=False)]

    @property
    def server_resets(self) -> bool:
        """Policy and client-policy sessions begin every episode with a RESET from the recorder."""
        return self.mode in (p.Mode.POLICY, p.Mode.CLIENT_POLICY)

    # -- handshake ---------------------------------------------------------------------------
    def _on_hello(self, hello: p.Hello) -> list[Effect]:
        token = self.config.token or ""
        if token and not hmac.compare_digest(hello.token.encode(), token.encode()):
            raise AuthenticationFailed("wrong or missing token: use the token the recorder was started with")
        for what, text in _stored_strings(hello):
            if "\x00" in text:  # HDF5 attributes cannot hold it: the episode file could not be written
                raise MalformedMessage(f"HELLO's {what} contains a NUL character")
        profile = self._choose_profile(hello)
        actions = _check_client(hello, profile)
        mode = hello.mode if hello.mode != p.Mode.ANY else self.config.mode
        if self.config.policy_only and mode != p.Mode.POLICY:
            raise ProtocolError(
                "this recorder only plays its policy (sonic-train online or eval): switch the emulator client "
                "to policy mode",
                ErrorCode.BAD_CONFIG,
            )
        self.hello, self.profile, self.actions, self.mode = hello, profile, actions, mode
        self._undeclared_buttons = undeclared_button_bits(hello.buttons)
        self.max_steps = self.config.max_steps or profile.max_steps
        welcome = p.Welcome(
            session_id=self.session_id,
            profile_id=profile.id,
            mode=mode,
            frame_skip=self.config.frame_skip,
            send=p.SendFlag.SCREEN | p.SendFlag.RAM | p.SendFlag.START_STATE,
            step_timeout_ms=int(self.config.step_timeout * 1000),
            max_steps=self.max_steps,
            server_version=__version__,
        )
        log.info(
            "client %s connected: %s %s, %s, game %s, %s mode",
            self.session_id, printable(hello.client_name), printable(hello.client_version), printable(hello.emulator),
            profile.id, mode.name.lower(),
        )  # fmt: skip
        if mode == p.Mode.CLIENT_POLICY:
            self.policy_id = hello.policy_id or "client"
            return [welcome, *self._reset_or_stop()]
        if mode == p.Mode.POLICY:
            return [welcome, MakePolicy(profile, self.config.seed + self.index)]
        return [welcome]

    def _choose_profile(self, hello: p.Hello) -> GameProfile:
        """The profile for this client, only ever among the recorder's own (issue 9)."""
        if hello.game:
            if not _PROFILE_ID.fullmatch(hello.game) or hello.game.lower().endswith(".toml"):
                raise UnknownGame(
                    f"HELLO names the game {hello.game!r}, which is not a profile id: a client names one of "
                    "the recorder's profiles (e.g. Airstriker-Genesis-v0), never a file"
                )
            server = self._server_profile
            if server is not None and hello.game.lower() in (server.id.lower(), server.id.lower().removesuffix("-v0")):
                return server
            try:
                return self.config.profiles.get(hello.game)
            except ProfileError as exc:
                raise UnknownGame(str(exc)) from None
        if self._server_profile is not None:
            return self._server_profile
        found = self.config.profiles.find_for_rom(hello.rom_name, hello.rom_hash)
        if found is None:
            raise UnknownGame(
                f"no game profile for ROM {hello.rom_name!r} (hash {hello.rom_hash}); "
                "start the recorder with --game ID or add a profile"
            )
        return found

    # -- episodes ----------------------------------------------------------------------------
    def _reset_or_stop(self) -> list[Effect]:
        share = self.config.episodes_per_client
        if (share is None or self.episode + 1 < share) and self._claim_episode():
            self.episode += 1
            self.pending_reset = self.episode
            return [p.Reset(self.episode, load_start_state=True)]
        return [self._stop()]

    def _stop(self) -> p.Stop:
        self.stopped = True
        return p.Stop(p.StopReason.DONE, "episode budget reached")

    def _judge_from(self, ram: np.ndarray) -> EpisodeJudge:
        """A judge started on an episode's first RAM (refused in words when the profile cannot judge it)."""
        assert self.profile is not None
        judge = self.profile.judge(self.config.frame_skip)
        try:
            judge.start(ram)
        except ProfileError as exc:  # e.g. a progress reward with no end for the level the client is in
            raise ProtocolError(f"cannot judge this episode: {exc}", ErrorCode.BAD_CONFIG) from None
        return judge

    def _open(
        self, judge: EpisodeJudge, frame: np.ndarray, ram: np.ndarray, counter: int, start_state: bytes | None
    ) -> OpenEpisode:
        assert self.profile is not None and self.hello is not None
        self.open = True
        self.steps = 0
        self.episode_return = 0.0
        self._frame_shape = frame.shape  # type: ignore[assignment]
        self._judge = judge
        if self.policy is not None:
            self.policy.reset()
        self.last_frame_counter = counter
        self._last_obs = (frame, ram, counter)
        # Read after reset(): a trainer policy sets this episode's metadata (epsilon, checkpoint) there.
        extra = dict(getattr(self.policy, "metadata", None) or {})
        hello = self.hello
        meta = EpisodeMeta(
            game=self.profile.id,
            rom_name=hello.rom_name,
            rom_hash=hello.rom_hash,
            emulator=hello.emulator,
            core=hello.core,
            system=hello.system,
            client_name=hello.client_name,
            client_version=hello.client_version,
            recorder_version=__version__,
            profile_toml=self.profile.text,
            frame_skip=self.config.frame_skip,
            mode="human" if self.mode == p.Mode.HUMAN else "policy",
            policy_id=self.policy_id,
            button_names=tuple(hello.buttons),
            action_names=tuple(self.profile.action_names),
            episode_index=self.episode,
            session_id=self.session_id,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            extra=tuple((str(k), str(v)) for k, v in extra.items())
            + ((("policy_runs_in", "client"),) if self.mode == p.Mode.CLIENT_POLICY else ()),
        )
        return OpenEpisode(meta, frame, ram, counter, start_state or None, self._clock())

    def _close(self, reason: EndReason, *, notify: bool) -> CloseEpisode:
        self.open = False
        self._judge = None
        return CloseEpisode(self.episode, self.steps, self.episode_return, reason, self.policy_id, notify)

    def _episode_over(self, reason: EndReason) -> list[Effect]:
        """End the open episode and start what follows it (RESET, the next human episode, or STOP)."""
        effects: list[Effect] = [self._close(reason, notify=True)]
        if self.server_resets:
            return effects + self._reset_or_stop()
        if not self._claim_episode():
            return [*effects, self._stop()]
        # Human mode: the player keeps playing; the next episode starts where this one ended.
        assert self._last_obs is not None
        frame, ram, counter = self._last_obs
        judge = self._judge_from(ram)
        self.episode += 1
        return [*effects, self._open(judge, frame, ram, counter, None)]

    def _policy_input(self, frame: np.ndarray, ram: np.ndarray) -> PolicyInput:
        assert self.profile is not None
        return PolicyInput(frame, ram, _Variables(self.profile, ram), self.steps)

    # -- messages ----------------------------------------------------------------------------
    def _checked_observation(self, obs: p.Observation, what: str) -> tuple[np.ndarray, np.ndarray]:
        """The screen (RGB) and RAM of an observation that fits HELLO; MalformedMessage otherwise.

        Decompresses the pixels: corrupt ones are refused here, before anything changes.
        """
        hello = self.hello
        assert hello is not None
        if obs.width == 0 or obs.height == 0:
            raise MalformedMessage(
                f"{what} has a {obs.width}x{obs.height} screen; WELCOME asks for the screen in every observation"
            )
        if obs.pixel_format != hello.pixel_format:
            raise MalformedMessage(
                f"{what} has {obs.pixel_format.name} pixels, HELLO declared {hello.pixel_format.name}"
            )
        if len(obs.ram) != hello.ram_size:
            raise MalformedMessage(f"{what} has {len(obs.ram)} bytes of RAM, HELLO declared {hello.ram_size}")
        return obs.rgb(), obs.ram_array()

    def _on_begin(self, msg: p.EpisodeBegin) -> list[Effect]:
        if self.server_resets and (self.pending_reset is None or msg.episode != self.pending_reset):
            raise UnexpectedMessage(
                f"EPISODE_BEGIN for episode {msg.episode} without a matching RESET (expected {self.pending_reset})"
            )
        _check_counter("EPISODE_BEGIN's frame counter", msg.frame)
        frame, ram = self._checked_observation(msg.observation, "EPISODE_BEGIN")
        judge = self._judge_from(ram)
        # The message is sound: from here on, state changes.
        effects: list[Effect] = []
        self._dropped_since_step = False
        if self.server_resets:
            self.pending_reset = None
            if self.mode == p.Mode.CLIENT_POLICY:
                self.next_seq = None  # steps streamed past the last episode's end were discarded
        else:
            if self.open:
                effects.append(self._close(EndReason.CLIENT_STOP, notify=True))
            if not self._claim_episode():
                return [*effects, self._stop()]
            self.episode += 1
        effects.append(self._open(judge, frame, ram, msg.frame, bytes(msg.start_state)))
        if self.mode == p.Mode.POLICY:
            effects.append(Act(self._policy_input(frame, ram)))
        return effects

    def _on_dropped(self, msg: p.FramesDropped) -> list[Effect]:
        if msg.count == 0:
            raise MalformedMessage("FRAMES_DROPPED reports 0 skipped steps")
        if msg.first_seq + msg.count > LAST_SEQ:
            raise MalformedMessage(
                f"FRAMES_DROPPED skips seq {msg.first_seq}..{msg.first_seq + msg.count - 1}, past the last "
                f"seq number {LAST_SEQ}; reconnect to start again at 1"
            )
        _check_counter("FRAMES_DROPPED's first frame counter", msg.first_frame)
        _check_counter("FRAMES_DROPPED's last frame counter", msg.last_frame)
        if self._dropped_since_step:
            # The client reports consecutive skips as one message, before the next STEP it sends:
            # a stream of them adds gap rows and log lines without a step (a gap flood).
            raise UnexpectedMessage("two FRAMES_DROPPED without a STEP between them: report consecutive skips once")
        expected = self.last_frame_counter + self.config.frame_skip
        if self.open:
            _check_counter("the frame counter expected after the dropped steps", expected)
        log.warning(
            "client %s dropped %d steps (seq %d.., frames %d-%d): its send queue was full",
            self.session_id, msg.count, msg.first_seq, msg.first_frame, msg.last_frame,
        )  # fmt: skip
        self._dropped_since_step = True
        self.next_seq = msg.first_seq + msg.count
        return [RecordGap(self.steps + 1, expected, msg.last_frame)] if self.open else []

    def _on_step(self, msg: p.Step) -> list[Effect]:
        if not self.open:
            if self.mode == p.Mode.CLIENT_POLICY and self.episode >= 0:
                # A streaming client learns that its episode ended one message late: steps it sent
                # past the end belong to no episode (it was told to reset), so they are dropped.
                self.discarded += 1
                self._dropped_since_step = False
                log.debug("client %s: dropped STEP %d sent after its episode ended", self.session_id, msg.seq)
                return []
            raise UnexpectedMessage("STEP before EPISODE_BEGIN")
        # Check the whole message first.
        policy_mode = self.mode == p.Mode.POLICY
        seq_ok = self.next_seq is None or msg.seq == self.next_seq
        if policy_mode:
            if not seq_ok:
                raise UnexpectedMessage(f"STEP seq {msg.seq}, expected {self.next_seq} (the last ACTION's seq)")
            if msg.seq >= LAST_SEQ:
                raise UnexpectedMessage(f"the connection has used all {LAST_SEQ - 1} seq numbers; reconnect")
        n = len(msg.buttons)
        if n != self.config.frame_skip:
            raise UnexpectedMessage(f"STEP holds {n} frames but the session's frame skip is {self.config.frame_skip}")
        bits = 0
        for mask in msg.buttons:
            bits |= mask
        if bits & self._undeclared_buttons:
            assert self.hello is not None
            raise MalformedMessage(
                f"STEP {msg.seq} holds button masks {list(msg.buttons)} with bits beyond the "
                f"{len(self.hello.buttons)} buttons HELLO declared"
            )
        _check_counter("STEP's frame counter", msg.frame)
        expected = self.last_frame_counter + n
        if msg.frame != expected:
            _check_counter("the frame counter expected for this STEP", expected)
        obs = msg.observation
        frame, ram = self._checked_observation(obs, f"STEP {msg.seq}")
        resized = frame.shape != self._frame_shape
        judge = self._judge_from(ram) if resized and not self.server_resets else None
        # The message is sound: from here on, state changes.
        if not seq_ok:
            log.warning("client %s: STEP seq %d, expected %d: steps lost or repeated", self.session_id, msg.seq,
                        self.next_seq)  # fmt: skip
        self.next_seq = msg.seq + 1
        reported = self._dropped_since_step
        self._dropped_since_step = False
        effects: list[Effect] = []
        if msg.frame != expected:
            # docs/protocol.md: a gap or repeat is logged and recorded, never silently accepted.
            log.warning("client %s: frame counter %d, expected %d (gap of %d)", self.session_id, msg.frame, expected,
                        msg.frame - expected)  # fmt: skip
        if (msg.frame != expected or reported) and not resized:
            # After a FRAMES_DROPPED notice the step's own row is recorded even without a jump: the
            # notice's row names this observation with the client's last skipped frame, and
            # `verify` wants one of the row's gaps to name the counter stored (issue 11: a report
            # that disagreed with the STEP left a file verify rejected). A gap before a new screen
            # names a step the ending episode never gets.
            effects.append(RecordGap(self.steps + 1, expected, msg.frame))
        self.last_frame_counter = msg.frame
        if resized:
            return self._on_resize(msg, frame, ram, judge)
        assert self._judge is not None
        reward, end = self._judge.step(ram)
        if end is None and self.steps + 1 >= self.max_steps:
            end = EndReason.STEP_LIMIT
        if policy_mode:
            act = self._pending_action
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
        if end is None and policy_mode:
            effects.append(Act(self._policy_input(frame, ram)))  # reply first: the client waits on it
        effects.append(
            WriteStep(
                frame=frame,
                ram=ram,
                frame_counter=msg.frame,
                timestamp=self._clock(),
                buttons=np.asarray(msg.buttons, dtype=np.uint32),
                action=action,
                actor=actor,
                policy_version=version,
                reward=float(reward),
            )
        )
        self._last_obs = (frame, ram, msg.frame)
        if self.steps % STATUS_EVERY_STEPS == 0:
            # After the ACTION (policy mode), so it adds no lockstep latency; before EPISODE_END on
            # an episode's last step, so it still names the episode it reports on.
            effects.append(p.Status(self.episode, self.steps, float(reward), self.episode_return))
        if end is not None:
            effects += self._episode_over(end)
        return effects

    def _on_resize(
        self, msg: p.Step, frame: np.ndarray, ram: np.ndarray, judge: EpisodeJudge | None
    ) -> list[Effect]:
        log.warning("client %s: screen changed from %s to %s; starting a new episode", self.session_id,
                    self._frame_shape, frame.shape)  # fmt: skip
        effects: list[Effect] = [self._close(EndReason.SCREEN_CHANGED, notify=True)]
        if self.server_resets:
            return effects + self._reset_or_stop()
        if not self._claim_episode():
            return [*effects, self._stop()]
        assert judge is not None
        self.episode += 1
        return [*effects, self._open(judge, frame, ram, msg.frame, None)]


class _Variables(Mapping[str, int]):
    """The profile's RAM variables, read on first use: the lockstep reply waits on the policy, and
    most policies (random, a network on frames) never look at them."""

    __slots__ = ("_profile", "_ram", "_values")

    def __init__(self, profile: GameProfile, ram: np.ndarray) -> None:
        self._profile = profile
        self._ram = ram
        self._values: dict[str, int] | None = None

    def _read(self) -> dict[str, int]:
        if self._values is None:
            self._values = self._profile.read_variables(self._ram)
        return self._values

    def __getitem__(self, name: str) -> int:
        return self._read()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


def _check_client(hello: p.Hello, profile: GameProfile) -> ActionSet:
    """The client's action set, if its HELLO can serve the profile; ProtocolError 4006 otherwise."""
    wrong_system = system_mismatch(hello.system, profile.id, profile.system)
    if wrong_system:  # the RAM and buttons of another console would only add noise to the message
        raise ProtocolError(wrong_system, ErrorCode.BAD_CONFIG)
    problems = []
    if hello.ram_size != profile.ram_size:
        problems.append(f"RAM is {hello.ram_size} bytes, the profile expects {profile.ram_size}")
    if hello.pixel_format == p.PixelFormat.NONE:
        problems.append("the client declares no screen format")
    if not (1 <= hello.screen_width <= p.MAX_SCREEN_SIDE and 1 <= hello.screen_height <= p.MAX_SCREEN_SIDE):
        problems.append(
            f"the screen is {hello.screen_width}x{hello.screen_height}; each side must be 1..{p.MAX_SCREEN_SIDE}"
        )
    actions = None
    try:
        actions = profile.action_set(hello.buttons)
    except ProfileError as exc:
        problems.append(str(exc))
    if problems or actions is None:
        detail = "; ".join(problems)
        raise ProtocolError(f"client does not fit profile {profile.id}: {detail}", ErrorCode.BAD_CONFIG)
    return actions


def _stored_strings(hello: p.Hello) -> list[tuple[str, str]]:
    """HELLO's strings that every episode file stores as attributes."""
    return [
        ("client name", hello.client_name), ("client version", hello.client_version), ("emulator", hello.emulator),
        ("core", hello.core), ("system", hello.system), ("ROM name", hello.rom_name), ("ROM hash", hello.rom_hash),
        ("policy id", hello.policy_id),
    ]  # fmt: skip


def _check_counter(what: str, value: int) -> None:
    """Frame counters are stored as int64-compatible values (dataset.episode's limit)."""
    if value >= FRAME_COUNTER_LIMIT:
        raise MalformedMessage(f"{what} {value} is not below 2^63, the largest an episode file stores")
