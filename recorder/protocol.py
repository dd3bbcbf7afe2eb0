"""The sonic-rl wire protocol, version 1: a sans-I/O codec.

Bytes in, typed messages out, and back. Nothing here touches a socket, a
thread or asyncio: the recorder's websocket server, the embedded stable-retro
client, the tests and (by the same document) the C# BizHawk tool are thin
adapters around :func:`encode` and :func:`decode`, as python-websockets keeps
its protocol core free of I/O. ``docs/protocol.md`` spells out every byte; this
module is its executable form and the two change together.

Every message is one binary websocket message (so framing is the websocket's
job, which removes the "where does a message end" bugs of earlier unframed
TCP bridges). Byte 0 is the :class:`Kind`; all integers are little-endian.
"""

from __future__ import annotations

import enum
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import zstandard

from dataset.errors import (
    MalformedMessage,
    MessageTooLarge,
    UnknownMessageKind,
    VersionMismatch,
)

__all__ = [
    "MAX_BUTTONS",
    "MAX_FRAMES_PER_STEP",
    "MAX_MESSAGE_BYTES",
    "MAX_RAM_BYTES",
    "MAX_SCREEN_SIDE",
    "MAX_STRING_BYTES",
    "PROTOCOL_VERSION",
    "Action",
    "Capability",
    "EpisodeBegin",
    "EpisodeEnd",
    "Error",
    "FramesDropped",
    "Hello",
    "Kind",
    "Message",
    "Mode",
    "Observation",
    "Packed",
    "PixelFormat",
    "Reset",
    "SendFlag",
    "Status",
    "Step",
    "Stop",
    "StopReason",
    "Welcome",
    "button_mask",
    "decode",
    "encode",
    "mask_to_buttons",
    "pixels_to_rgb",
]

PROTOCOL_VERSION = 1

#: Largest websocket message either side accepts (a 1024x1024 BGRA frame plus 1 MiB RAM fits).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_STRING_BYTES = 1024
MAX_BUTTONS = 32
MAX_FRAMES_PER_STEP = 255
MAX_SCREEN_SIDE = 1024
MAX_RAM_BYTES = 1024 * 1024
MAX_START_STATE_BYTES = 8 * 1024 * 1024


class Kind(enum.IntEnum):
    """Message kinds (byte 0). 0x01-0x3F client to server, 0x41-0x7E server to client."""

    HELLO = 0x01
    EPISODE_BEGIN = 0x02
    STEP = 0x03
    FRAMES_DROPPED = 0x04
    WELCOME = 0x41
    ACTION = 0x42
    RESET = 0x43
    EPISODE_END = 0x44
    STOP = 0x45
    STATUS = 0x46
    ERROR = 0x7F


class Mode(enum.IntEnum):
    """Who chooses the buttons. ANY in a HELLO lets the recorder decide."""

    ANY = 0
    HUMAN = 1
    POLICY = 2
    #: The client runs a policy of its own and streams like a human player (no lockstep):
    #: the fast way to record a dataset with a scripted or random policy. HELLO names it.
    CLIENT_POLICY = 3


class PixelFormat(enum.IntEnum):
    """Screen pixel layouts; the recorder stores RGB whatever the client sends."""

    NONE = 0  # no screen in this message (WELCOME said not to send it)
    RGB24 = 1  # 3 bytes per pixel: R, G, B; rows top to bottom (stable-retro's get_screen())
    BGRA32 = 2  # 4 bytes per pixel: B, G, R, A = BizHawk's 0xAARRGGBB int[] copied on a little-endian CPU


BYTES_PER_PIXEL = {PixelFormat.NONE: 0, PixelFormat.RGB24: 3, PixelFormat.BGRA32: 4}

#: Bit 7 of an observation's pixel-format byte: pixels and RAM are each one zstd frame.
ZSTD_FLAG = 0x80


class Capability(enum.IntFlag):
    """What a client can do (HELLO)."""

    NONE = 0
    LOAD_START_STATE = 1  # can load a start state when RESET asks for it
    SEND_START_STATE = 2  # puts the start state's bytes in EPISODE_BEGIN (replayable episodes)


class SendFlag(enum.IntFlag):
    """What the recorder wants in each observation (WELCOME)."""

    NONE = 0
    SCREEN = 1
    RAM = 2
    START_STATE = 4


class StopReason(enum.IntEnum):
    DONE = 0  # the recorder's episode budget is reached
    SHUTDOWN = 1  # the recorder is shutting down (Ctrl-C, SIGTERM)


# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """Client's first message: who it is and what it will send."""

    client_name: str
    client_version: str
    emulator: str
    core: str
    system: str
    rom_name: str
    rom_hash: str
    screen_width: int
    screen_height: int
    pixel_format: PixelFormat
    ram_size: int
    buttons: tuple[str, ...]
    game: str = ""
    mode: Mode = Mode.ANY
    token: str = ""
    capabilities: Capability = Capability.NONE
    policy_id: str = ""  # sent only in CLIENT_POLICY mode: which policy of the client's plays
    protocol_version: int = PROTOCOL_VERSION

    kind = Kind.HELLO


@dataclass(frozen=True)
class Welcome:
    """Server's answer to HELLO: the session configuration."""

    session_id: str
    profile_id: str
    mode: Mode
    frame_skip: int
    send: SendFlag
    step_timeout_ms: int
    max_steps: int
    server_name: str = "sonic-rl recorder"
    server_version: str = ""
    protocol_version: int = PROTOCOL_VERSION

    kind = Kind.WELCOME


@dataclass(frozen=True)
class Packed:
    """Pixels still zstd-compressed as they arrived; decompressed on first use.

    Keeps decompression off the lockstep round trip: the recorder answers with the
    next buttons first (policies that read only RAM never need the screen) and
    decompresses while the client emulates.
    """

    data: memoryview
    size: int

    def unpack(self) -> bytes:
        raw = _decompress(self.data, self.size, "pixels")
        if len(raw) != self.size:
            raise MalformedMessage(f"pixels decompress to {len(raw)} bytes, the screen needs {self.size}")
        return raw


@dataclass(frozen=True, eq=False)
class Observation:
    """Screen and RAM after a step. ``pixels`` and ``ram`` are views into the message bytes
    (``pixels`` may be :class:`Packed` in a decoded zstd message: use ``pixel_bytes`` or ``rgb()``)."""

    width: int
    height: int
    pixel_format: PixelFormat
    pixels: memoryview | bytes | Packed
    ram: memoryview | bytes
    #: Send pixels and RAM zstd-compressed (level 1). A 280 KB Genesis observation becomes a few KB,
    #: which makes a lockstep round trip through Python websockets several times cheaper; clients
    #: without zstd (the C# tool) send raw bytes.
    zstd: bool = False

    @cached_property
    def pixel_bytes(self) -> memoryview | bytes:
        """The raw pixels (decompressed once, on first use)."""
        return self.pixels.unpack() if isinstance(self.pixels, Packed) else self.pixels

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Observation):
            return NotImplemented
        return (
            (self.width, self.height, self.pixel_format, self.zstd)
            == (other.width, other.height, other.pixel_format, other.zstd)
            and bytes(self.pixel_bytes) == bytes(other.pixel_bytes)
            and bytes(self.ram) == bytes(other.ram)
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3): the shape ``rgb()`` will have, known without decoding pixels."""
        return (self.height, self.width, 3)

    def rgb(self) -> np.ndarray:
        """The screen as an (H, W, 3) uint8 RGB array."""
        return pixels_to_rgb(self.pixel_bytes, self.width, self.height, self.pixel_format)

    def ram_array(self) -> np.ndarray:
        return np.frombuffer(self.ram, dtype=np.uint8)


@dataclass(frozen=True, eq=False)
class EpisodeBegin:
    """First observation of an episode (after RESET in policy mode; at will in human mode)."""

    episode: int
    frame: int
    time_us: int
    start_state: memoryview | bytes
    observation: Observation

    kind = Kind.EPISODE_BEGIN

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EpisodeBegin):
            return NotImplemented
        return (
            (self.episode, self.frame, self.time_us) == (other.episode, other.frame, other.time_us)
            and bytes(self.start_state) == bytes(other.start_state)
            and self.observation == other.observation
        )


@dataclass(frozen=True, eq=False)
class Step:
    """One step: the buttons held on each emulated frame, then the observation after them."""

    seq: int
    frame: int
    time_us: int
    buttons: tuple[int, ...]
    observation: Observation

    kind = Kind.STEP

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Step):
            return NotImplemented
        return (
            (self.seq, self.frame, self.time_us, self.buttons)
            == (other.seq, other.frame, other.time_us, other.buttons)
            and self.observation == other.observation
        )


@dataclass(frozen=True)
class FramesDropped:
    """The client could not send ``count`` STEP messages (its queue was full)."""

    first_seq: int
    count: int
    first_frame: int
    last_frame: int

    kind = Kind.FRAMES_DROPPED


@dataclass(frozen=True)
class Action:
    """Policy mode: the buttons to hold for every frame of step ``seq``."""

    seq: int
    buttons: int
    action: int = -1
    policy_version: int = 0

    kind = Kind.ACTION


@dataclass(frozen=True)
class Reset:
    """Start episode ``episode``: load the start state if asked, then send EPISODE_BEGIN."""

    episode: int
    load_start_state: bool = True

    kind = Kind.RESET


@dataclass(frozen=True)
class EpisodeEnd:
    """The recorder ended (and saved) an episode. ``reason`` is a dataset.episode.EndReason code."""

    episode: int
    steps: int
    reason: int
    terminated: bool
    truncated: bool
    episode_return: float
    file_name: str = ""

    kind = Kind.EPISODE_END


@dataclass(frozen=True)
class Status:
    """Progress of the open episode, for the client's display only (issue 3: "last reward").

    Purely informational: it never overrides the player or changes the session, so a client
    may ignore it, and must accept it at any time after WELCOME.
    """

    episode: int
    steps: int  # steps of the episode so far, the latest included
    last_reward: float  # reward of the latest step
    episode_return: float  # sum of the episode's rewards so far

    kind = Kind.STATUS


@dataclass(frozen=True)
class Stop:
    reason: StopReason = StopReason.DONE
    message: str = ""

    kind = Kind.STOP


@dataclass(frozen=True)
class Error:
    code: int
    message: str

    kind = Kind.ERROR


Message = Hello | Welcome | EpisodeBegin | Step | FramesDropped | Action | Reset | EpisodeEnd | Status | Stop | Error

# --- primitives -------------------------------------------------------------------------

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_OBS_HEAD = struct.Struct("<HHBI")  # width, height, pixel format, pixel byte count
_STEP_HEAD = struct.Struct("<BIQQB")  # kind, seq, frame, time_us, n_frames
_BEGIN_HEAD = struct.Struct("<BIQQI")  # kind, episode, frame, time_us, start-state length
_ACTION = struct.Struct("<BIIhI")  # kind, seq, buttons, action, policy_version
_RESET = struct.Struct("<BIB")
_END_HEAD = struct.Struct("<BIIBBd")  # kind, episode, steps, reason, flags, return
_DROPPED = struct.Struct("<BIIQQ")
_STATUS = struct.Struct("<BIIdd")  # kind, episode, steps, last reward, episode return (25 bytes)
_WELCOME_MID = struct.Struct("<BBBII")  # mode, frame skip, send flags, step timeout ms, max steps
_HELLO_MID = struct.Struct("<BHHBI")  # mode, width, height, pixel format, ram size


class _Reader:
    """Bounds-checked cursor over one message; every overrun is a MalformedMessage."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: memoryview, pos: int = 1) -> None:
        self.buf = buf
        self.pos = pos

    def take(self, n: int, what: str) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise MalformedMessage(f"message ends inside {what} (needs {n} bytes at offset {self.pos})")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def unpack(self, st: struct.Struct, what: str) -> tuple:
        return st.unpack(self.take(st.size, what))

    def u8(self, what: str) -> int:
        return self.unpack(_U8, what)[0]

    def u16(self, what: str) -> int:
        return self.unpack(_U16, what)[0]

    def string(self, what: str) -> str:
        n = self.u16(what)
        if n > MAX_STRING_BYTES:
            raise MalformedMessage(f"{what} is {n} bytes, over the {MAX_STRING_BYTES}-byte limit")
        try:
            return str(self.take(n, what), "utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage(f"{what} is not valid UTF-8") from exc

    def blob(self, what: str, limit: int) -> memoryview:
        n = self.unpack(_U32, what)[0]
        if n > limit:
            raise MalformedMessage(f"{what} is {n} bytes, over the {limit}-byte limit")
        return self.take(n, what)

    def end(self, kind: Kind) -> None:
        if self.pos != len(self.buf):
            raise MalformedMessage(
                f"{kind.name} has {len(self.buf) - self.pos} unexpected trailing bytes"
            )


def _string(s: str, what: str) -> bytes:
    data = s.encode("utf-8")
    if len(data) > MAX_STRING_BYTES:
        raise ValueError(f"{what} is {len(data)} bytes, over the {MAX_STRING_BYTES}-byte limit")
    return _U16.pack(len(data)) + data


def _enum(enum_type: type[enum.IntEnum], value: int, what: str) -> enum.IntEnum:
    try:
        return enum_type(value)
    except ValueError as exc:
        raise MalformedMessage(f"{what} {value} is not one of the known values") from exc


# --- observations -----------------------------------------------------------------------


def pixels_to_rgb(pixels: memoryview | bytes, width: int, height: int, fmt: PixelFormat) -> np.ndarray:
    """Convert a message's pixels to (H, W, 3) RGB. RGB24 is a zero-copy view."""
    flat = np.frombuffer(pixels, dtype=np.uint8)
    if fmt == PixelFormat.RGB24:
        return flat.reshape(height, width, 3)
    if fmt == PixelFormat.BGRA32:
        # BizHawk's int 0xAARRGGBB sits in memory as B, G, R, A on little-endian CPUs.
        return flat.reshape(height, width, 4)[:, :, 2::-1]
    raise MalformedMessage("the observation carries no screen")


def _flat(data: bytes | memoryview) -> memoryview:
    # A memoryview of an (H, W, 3) array has len() == H: count bytes, not items.
    return memoryview(data).cast("B")


_zstd = threading.local()  # zstandard (de)compressors must not be shared between threads


def _compressor() -> zstandard.ZstdCompressor:
    if not hasattr(_zstd, "c"):
        _zstd.c = zstandard.ZstdCompressor(level=1)
    return _zstd.c


def _decompress(data: memoryview, limit: int, what: str) -> bytes:
    if not hasattr(_zstd, "d"):
        _zstd.d = zstandard.ZstdDecompressor()
    try:
        # A frame that declares its size is allocated at that size (max_output_size only bounds
        # frames without one), so check the declaration before decompressing.
        declared = zstandard.frame_content_size(data)
        if declared > limit:
            raise MalformedMessage(f"{what} is a zstd frame of {declared} bytes, over the {limit}-byte limit")
        return _zstd.d.decompress(data, max_output_size=limit)
    except zstandard.ZstdError as exc:
        raise MalformedMessage(f"{what} is not a valid zstd frame of at most {limit} bytes: {exc}") from None


def _encode_observation(obs: Observation) -> list[bytes | memoryview]:
    pixels, ram = _flat(obs.pixel_bytes), _flat(obs.ram)
    fmt = int(obs.pixel_format)
    if obs.zstd:
        pixels, ram = _compressor().compress(pixels), _compressor().compress(ram)  # type: ignore[assignment]
        fmt |= ZSTD_FLAG
    return [_OBS_HEAD.pack(obs.width, obs.height, fmt, len(pixels)), pixels, _U32.pack(len(ram)), ram]


def _decode_observation(r: _Reader) -> Observation:
    width, height, fmt_code, n_pixels = r.unpack(_OBS_HEAD, "observation header")
    compressed = bool(fmt_code & ZSTD_FLAG)
    fmt = PixelFormat(_enum(PixelFormat, fmt_code & ~ZSTD_FLAG, "pixel format"))
    if width > MAX_SCREEN_SIDE or height > MAX_SCREEN_SIDE:
        raise MalformedMessage(f"screen {width}x{height} exceeds {MAX_SCREEN_SIDE} pixels a side")
    expected = width * height * BYTES_PER_PIXEL[fmt]
    if not compressed:
        if n_pixels != expected:
            raise MalformedMessage(
                f"screen {width}x{height} {fmt.name} needs {expected} pixel bytes, message says {n_pixels}"
            )
        raw = r.take(n_pixels, "pixels")
        return Observation(width, height, fmt, raw, r.blob("RAM", MAX_RAM_BYTES))
    packed = r.take(n_pixels, "pixels")
    try:
        declared = zstandard.frame_content_size(packed)
    except zstandard.ZstdError as exc:
        raise MalformedMessage(f"pixels are not a zstd frame: {exc}") from None
    if declared == -1:  # size not declared: decompress now to check it
        pixels: memoryview | bytes | Packed = Packed(packed, expected).unpack()
    elif declared != expected:
        raise MalformedMessage(f"screen {width}x{height} {fmt.name} needs {expected} pixel bytes, got {declared}")
    else:
        pixels = Packed(packed, expected)
    ram = _decompress(r.blob("RAM", MAX_RAM_BYTES), MAX_RAM_BYTES, "RAM")
    return Observation(width, height, fmt, pixels, ram, zstd=True)


# --- encode -----------------------------------------------------------------------------


def encode(msg: Message) -> bytes:
    """Serialize a message to the bytes of one binary websocket message."""
    parts: list[bytes | memoryview]
    if isinstance(msg, Step):
        if not 0 < len(msg.buttons) <= MAX_FRAMES_PER_STEP:
            raise ValueError(f"a step holds 1..{MAX_FRAMES_PER_STEP} frames, got {len(msg.buttons)}")
        parts = [
            _STEP_HEAD.pack(Kind.STEP, msg.seq, msg.frame, msg.time_us, len(msg.buttons)),
            struct.pack(f"<{len(msg.buttons)}I", *msg.buttons),
            *_encode_observation(msg.observation),
        ]
    elif isinstance(msg, Action):
        return _ACTION.pack(Kind.ACTION, msg.seq, msg.buttons, msg.action, msg.policy_version)
    elif isinstance(msg, EpisodeBegin):
        parts = [
            _BEGIN_HEAD.pack(Kind.EPISODE_BEGIN, msg.episode, msg.frame, msg.time_us, len(msg.start_state)),
            msg.start_state,
            *_encode_observation(msg.observation),
        ]
    elif isinstance(msg, Hello):
        if len(msg.buttons) > MAX_BUTTONS:
            raise ValueError(f"at most {MAX_BUTTONS} buttons")
        parts = [
            _U8.pack(Kind.HELLO),
            _U16.pack(msg.protocol_version),
            _string(msg.client_name, "client name"),
            _string(msg.client_version, "client version"),
            _string(msg.emulator, "emulator"),
            _string(msg.core, "core"),
            _string(msg.system, "system"),
            _string(msg.rom_name, "ROM name"),
            _string(msg.rom_hash, "ROM hash"),
            _string(msg.game, "game"),
            _HELLO_MID.pack(msg.mode, msg.screen_width, msg.screen_height, msg.pixel_format, msg.ram_size),
            _U8.pack(len(msg.buttons)),
            *(_string(b, "button name") for b in msg.buttons),
            _string(msg.token, "token"),
            _U8.pack(msg.capabilities),
        ]
        if msg.mode == Mode.CLIENT_POLICY:
            parts.append(_string(msg.policy_id, "policy id"))
    elif isinstance(msg, Welcome):
        parts = [
            _U8.pack(Kind.WELCOME),
            _U16.pack(msg.protocol_version),
            _string(msg.server_name, "server name"),
            _string(msg.server_version, "server version"),
            _string(msg.session_id, "session id"),
            _string(msg.profile_id, "profile id"),
            _WELCOME_MID.pack(msg.mode, msg.frame_skip, msg.send, msg.step_timeout_ms, msg.max_steps),
        ]
    elif isinstance(msg, Reset):
        return _RESET.pack(Kind.RESET, msg.episode, int(msg.load_start_state))
    elif isinstance(msg, EpisodeEnd):
        flags = int(msg.terminated) | (int(msg.truncated) << 1)
        parts = [
            _END_HEAD.pack(Kind.EPISODE_END, msg.episode, msg.steps, msg.reason, flags, msg.episode_return),
            _string(msg.file_name, "file name"),
        ]
    elif isinstance(msg, Status):
        return _STATUS.pack(Kind.STATUS, msg.episode, msg.steps, msg.last_reward, msg.episode_return)
    elif isinstance(msg, FramesDropped):
        return _DROPPED.pack(Kind.FRAMES_DROPPED, msg.first_seq, msg.count, msg.first_frame, msg.last_frame)
    elif isinstance(msg, Stop):
        parts = [_U8.pack(Kind.STOP), _U8.pack(msg.reason), _string(msg.message, "stop message")]
    elif isinstance(msg, Error):
        parts = [_U8.pack(Kind.ERROR), _U16.pack(msg.code), _string(msg.message, "error message")]
    else:  # pragma: no cover - the Message union is closed
        raise TypeError(f"not a protocol message: {type(msg).__name__}")
    return b"".join(parts)


# --- decode -----------------------------------------------------------------------------


def decode(data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse one binary websocket message.

    Raises MalformedMessage, UnknownMessageKind, VersionMismatch or MessageTooLarge
    (all ProtocolError, each with its ErrorCode) and nothing else for any input.
    Large fields (pixels, RAM, start state) are zero-copy views into ``data``.
    """
    if isinstance(data, str):
        raise MalformedMessage("text messages are not part of the protocol; send binary messages")
    buf = memoryview(data)
    if len(buf) > max_bytes:
        raise MessageTooLarge(f"message of {len(buf)} bytes exceeds the {max_bytes}-byte limit")
    if len(buf) == 0:
        raise MalformedMessage("empty message")
    try:
        kind = Kind(buf[0])
    except ValueError:
        raise UnknownMessageKind(f"unknown message kind 0x{buf[0]:02x}") from None
    r = _Reader(buf)
    msg = _DECODERS[kind](r)
    r.end(kind)
    return msg


def _decode_step(r: _Reader) -> Step:
    r.pos = 0
    _, seq, frame, time_us, n = r.unpack(_STEP_HEAD, "STEP header")
    if n == 0:
        raise MalformedMessage("STEP holds no frames")
    buttons = struct.unpack(f"<{n}I", r.take(4 * n, "button masks"))
    return Step(seq, frame, time_us, buttons, _decode_observation(r))


def _decode_begin(r: _Reader) -> EpisodeBegin:
    r.pos = 0
    _, episode, frame, time_us, n_state = r.unpack(_BEGIN_HEAD, "EPISODE_BEGIN header")
    if n_state > MAX_START_STATE_BYTES:
        raise MalformedMessage(f"start state of {n_state} bytes exceeds {MAX_START_STATE_BYTES}")
    state = r.take(n_state, "start state")
    return EpisodeBegin(episode, frame, time_us, state, _decode_observation(r))


def _decode_hello(r: _Reader) -> Hello:
    version = r.u16("protocol version")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(
            f"client speaks protocol version {version}, this recorder speaks {PROTOCOL_VERSION}"
        )
    strings = [
        r.string(what)
        for what in ("client name", "client version", "emulator", "core", "system", "ROM name", "ROM hash", "game")
    ]
    mode, width, height, fmt, ram_size = r.unpack(_HELLO_MID, "HELLO screen fields")
    if width > MAX_SCREEN_SIDE or height > MAX_SCREEN_SIDE:
        raise MalformedMessage(f"HELLO declares a {width}x{height} screen, over {MAX_SCREEN_SIDE} pixels a side")
    if ram_size > MAX_RAM_BYTES:
        raise MalformedMessage(f"HELLO declares {ram_size} bytes of RAM, over the {MAX_RAM_BYTES}-byte limit")
    n_buttons = r.u8("button count")
    if n_buttons > MAX_BUTTONS:
        raise MalformedMessage(f"{n_buttons} buttons declared, at most {MAX_BUTTONS} allowed")
    buttons = tuple(r.string("button name") for _ in range(n_buttons))
    token = r.string("token")
    caps = r.u8("capabilities")
    mode_value = _enum(Mode, mode, "mode")
    policy_id = r.string("policy id") if mode_value == Mode.CLIENT_POLICY else ""
    return Hello(
        *strings[:7],
        screen_width=width,
        screen_height=height,
        pixel_format=_enum(PixelFormat, fmt, "pixel format"),
        ram_size=ram_size,
        buttons=buttons,
        game=strings[7],
        mode=mode_value,
        token=token,
        capabilities=Capability(caps & 3),
        policy_id=policy_id,
        protocol_version=version,
    )


def _decode_welcome(r: _Reader) -> Welcome:
    version = r.u16("protocol version")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(f"recorder speaks protocol version {version}, client speaks {PROTOCOL_VERSION}")
    server_name, server_version, session_id, profile_id = (
        r.string(w) for w in ("server name", "server version", "session id", "profile id")
    )
    mode, frame_skip, send, timeout, max_steps = r.unpack(_WELCOME_MID, "WELCOME fields")
    return Welcome(
        session_id=session_id,
        profile_id=profile_id,
        mode=_enum(Mode, mode, "mode"),
        frame_skip=frame_skip,
        send=SendFlag(send & 7),
        step_timeout_ms=timeout,
        max_steps=max_steps,
        server_name=server_name,
        server_version=server_version,
        protocol_version=version,
    )


def _decode_action(r: _Reader) -> Action:
    r.pos = 0
    _, seq, buttons, action, version = r.unpack(_ACTION, "ACTION")
    return Action(seq, buttons, action, version)


def _decode_reset(r: _Reader) -> Reset:
    r.pos = 0
    _, episode, load = r.unpack(_RESET, "RESET")
    return Reset(episode, bool(load))


def _decode_end(r: _Reader) -> EpisodeEnd:
    r.pos = 0
    _, episode, steps, reason, flags, ret = r.unpack(_END_HEAD, "EPISODE_END")
    return EpisodeEnd(episode, steps, reason, bool(flags & 1), bool(flags & 2), ret, r.string("file name"))


def _decode_dropped(r: _Reader) -> FramesDropped:
    r.pos = 0
    _, first_seq, count, first_frame, last_frame = r.unpack(_DROPPED, "FRAMES_DROPPED")
    return FramesDropped(first_seq, count, first_frame, last_frame)


def _decode_status(r: _Reader) -> Status:
    r.pos = 0
    _, episode, steps, last_reward, episode_return = r.unpack(_STATUS, "STATUS")
    return Status(episode, steps, last_reward, episode_return)


def _decode_stop(r: _Reader) -> Stop:
    reason = _enum(StopReason, r.u8("stop reason"), "stop reason")
    return Stop(StopReason(reason), r.string("stop message"))


def _decode_error(r: _Reader) -> Error:
    return Error(r.u16("error code"), r.string("error message"))


_DECODERS = {
    Kind.HELLO: _decode_hello,
    Kind.EPISODE_BEGIN: _decode_begin,
    Kind.STEP: _decode_step,
    Kind.FRAMES_DROPPED: _decode_dropped,
    Kind.WELCOME: _decode_welcome,
    Kind.ACTION: _decode_action,
    Kind.RESET: _decode_reset,
    Kind.EPISODE_END: _decode_end,
    Kind.STATUS: _decode_status,
    Kind.STOP: _decode_stop,
    Kind.ERROR: _decode_error,
}


def button_mask(pressed: Sequence[bool] | np.ndarray) -> int:
    """Pack per-button booleans (in HELLO's button order) into a mask: bit i = button i."""
    mask = 0
    for i, on in enumerate(pressed):
        if on:
            mask |= 1 << i
    return mask


def mask_to_buttons(mask: int, n_buttons: int) -> np.ndarray:
    """Unpack a mask into an (n_buttons,) uint8 0/1 array (stable-retro's MultiBinary layout)."""
    return ((mask >> np.arange(n_buttons, dtype=np.uint32)) & 1).astype(np.uint8)

