"""Fuzz the recorder over real websockets (issue 11): adversarial message sequences in its three modes.

A seeded, structured generator plays a client that mostly follows docs/protocol.md and, at random
points, sends something malformed or adversarial: every field of HELLO at its limits, screens of
0x0 or past 1,024 pixels, RAM of the wrong size, corrupt zstd frames, sequence numbers and frame
counters at the ends of their ranges, undeclared button bits, kinds only the server sends, bit
flips, truncations, abrupt closes. The test is black-box: it only speaks the protocol to a real
server on 127.0.0.1 and looks at what comes back, at the files in the output folder and at the
recorder's log. For every case it asserts that

- the server replies only with documented codes (docs/protocol.md, "Error and close codes"),
  never 1011 (an internal error) for a client's input, and an ERROR before a 4xxx close;
- a case that sent only valid messages is refused nothing;
- the server stays up: a good client is served after every case;
- no episode file fails ``sonic-rec verify`` (``dataset.catalog.check``), none is left
  unfinished once the recorder has stopped, nothing is logged as an internal error, and no
  log message carries a raw control character (client text is escaped, issue 11 item 5).

Every case ends with a one-byte message of an unknown kind (``SENTINEL``): the recorder answers it
with ERROR 4001 once it has processed everything before it, so a case never waits on a timer.

Cases: ``SONIC_FUZZ_CASES`` in all (default 150, a third per mode: about 10 s of cases on two
shared cores), from base seed ``SONIC_FUZZ_SEED`` (default 0); a failure names the case's seed and
the messages it sent. ``SONIC_FUZZ_CASES=3000 pytest tests/recorder/test_fuzz.py`` is a longer run.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zstandard
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from dataset.catalog import check, find_episode_files
from dataset.errors import ErrorCode
from dataset.leftovers import find_leftovers
from recorder import protocol as p
from recorder.server import Recorder, ServerConfig
from tests.recorder.conftest import RETRO_BUTTONS, hello, running_recorder

CASES = int(os.environ.get("SONIC_FUZZ_CASES", "150"))
SEED = int(os.environ.get("SONIC_FUZZ_SEED", "0"))
MODES = (p.Mode.HUMAN, p.Mode.POLICY, p.Mode.CLIENT_POLICY)

#: What a client's input may be answered with (docs/protocol.md): 1011 is a bug in the recorder.
DOCUMENTED = {int(c) for c in ErrorCode} - {ErrorCode.INTERNAL_ERROR, ErrorCode.GOING_AWAY}
SENTINEL = b"\x3e"  # an unknown kind: ERROR 4001, after everything sent before it was processed
RAM = 65536  # the Airstriker profile's
K = 4  # the recorder's frame skip in these tests
U32, U64 = 2**32, 2**64
#: Text a client controls that reaches the recorder's log and the files: newlines, ANSI escapes,
#: a bidi override, DEL and BEL, a 1,024-byte name (the limit). A NUL, which no HDF5 attribute can
#: store, is a fault of its own (f_nul, "hello:nul").
NASTY_TEXT = (
    "a\nb\r\nFAKE 12:00:00 INFO ok", "\x1b[31mred\x1b[0m\x1b]0;title\x07", "\u202egnp.exe", "del\x7fbel\x07",
    "é" * 512, "", "\x9b2J", "line\u2028sep",
)  # fmt: skip


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(data)


@functools.cache
def zeros_frame(size: int, *, sized: bool) -> bytes:
    """A zstd frame of ``size`` zero bytes, declaring its size or not (a streaming compressor's)."""
    if sized:
        return zstd(bytes(size))
    c = zstandard.ZstdCompressor(level=1).compressobj()
    return c.compress(bytes(size)) + c.flush()


@dataclass
class Outcome:
    """What the server did in one conversation."""

    errors: list[int] = field(default_factory=list)  # codes of ERROR messages received
    words: list[str] = field(default_factory=list)  # and their messages
    close: int | None = None  # close code received (1006: the connection dropped without one)
    file_names: list[str] = field(default_factory=list)  # EPISODE_END's saved file names
    session: str | None = None
    hung: bool = False


class Conversation:
    """A client that mostly follows docs/protocol.md and remembers what it sent (``trace``)."""

    def __init__(self, ws: ClientConnection, rng: random.Random, mode: p.Mode) -> None:
        self.ws, self.rng, self.mode = ws, rng, mode
        self.trace: list[str] = []
        self.valid = True  # False once anything not plainly valid was sent
        self.out = Outcome()
        self.closed = False
        self.aborted = False  # this client dropped the connection itself
        self.stopped = False
        self.width, self.height = 8, 4
        self.seq, self.frame, self.episode = 1, 0, 0
        self.in_episode = False
        self.dropped = False  # a FRAMES_DROPPED was sent since the last STEP
        self.pending_reset: int | None = None
        self.action: p.Action | None = None

    # -- wire --------------------------------------------------------------------------
    def send(self, what: str, data: bytes | str, valid: bool | None) -> None:
        self.trace.append(what if valid else f"{what}!")
        if valid is not True:
            self.valid = False
        if self.closed:
            return
        try:
            self.ws.send(data)
        except ConnectionClosed as exc:
            self._closed(exc)

    def _closed(self, exc: ConnectionClosed) -> None:
        self.closed = True
        if self.out.close is None or exc.rcvd is not None:
            self.out.close = exc.rcvd.code if exc.rcvd is not None else 1006

    def recv(self, timeout: float) -> p.Message | None:
        # Also once closed: messages that arrived before the close frame are still read (an ERROR
        # the server sent while this client was sending something else).
        try:
            raw = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self._closed(exc)
            return None
        return self._record(p.decode(raw))

    def _record(self, msg: p.Message) -> p.Message:
        if isinstance(msg, p.Error):
            self.out.errors.append(msg.code)
            self.out.words.append(msg.message)
        elif isinstance(msg, p.Welcome):
            self.out.session = msg.session_id
            self.mode = msg.mode  # a HELLO may have asked for another mode, or let the recorder choose
        elif isinstance(msg, p.Reset):
            self.pending_reset, self.action = msg.episode, None
        elif isinstance(msg, p.Action):
            self.action = msg
        elif isinstance(msg, p.EpisodeEnd):
            if msg.file_name:
                self.out.file_names.append(msg.file_name)
            if self.mode != p.Mode.HUMAN:  # a human-mode episode goes on where the last one ended
                self.in_episode, self.action = False, None
        elif isinstance(msg, p.Stop):
            self.stopped = True
        return msg

    def wait(self, ready: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.closed or self.stopped or time.monotonic() > deadline:
                return False
            self.recv(0.05)
        return True

    def pump(self, timeout: float = 0.0) -> None:
        """Read what has arrived (waiting ``timeout`` for the first message)."""
        while not self.closed and self.recv(timeout) is not None:
            timeout = 0.0

    def finish(self) -> Outcome:
        """Send the sentinel and read until the server closes; ``hung`` if it never does."""
        if self.aborted:
            return self.out
        if not self.closed:
            self.send("sentinel", SENTINEL, self.valid)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                raw = self.ws.recv(timeout=0.2)
            except TimeoutError:
                rcvd = self.ws.protocol.close_rcvd
                if rcvd is not None:
                    # The server's close frame is here, but it completes the handshake only once it
                    # reads again, which a recorder that stopped reading after an ERROR does at its
                    # close timeout (10 s): take its code and drop the connection.
                    self.closed, self.out.close = True, rcvd.code
                    self.ws.socket.shutdown(socket.SHUT_RDWR)
                    break
                continue
            except ConnectionClosed as exc:
                self._closed(exc)
                break
            self._record(p.decode(raw))
        else:
            self.out.hung = True
        return self.out

    # -- messages ----------------------------------------------------------------------
    def observation(self, width: int | None = None, height: int | None = None, **kw) -> p.Observation:  # type: ignore[no-untyped-def]
        w = self.width if width is None else width
        h = self.height if height is None else height
        fmt = kw.pop("fmt", p.PixelFormat.RGB24)  # HELLO's (hello() in conftest)
        pixels = kw.pop("pixels", None)
        if pixels is None:
            pixels = self.rng.randbytes(w * h * p.BYTES_PER_PIXEL[fmt])
        ram = kw.pop("ram", None)
        if ram is None:
            if self.rng.random() < 0.1:  # random RAM: the profile's judge must cope with any values
                ram = self.rng.randbytes(RAM)
            else:
                buf = bytearray(RAM)
                buf[0x100] = self.seq % 256
                ram = bytes(buf)
        return p.Observation(w, h, fmt, pixels, ram, zstd=kw.pop("zstd", self.rng.random() < 0.3))

    def masks(self) -> tuple[int, ...]:
        if self.mode == p.Mode.POLICY and self.action is not None:
            return (self.action.buttons,) * K
        return tuple(self.rng.getrandbits(len(RETRO_BUTTONS)) for _ in range(K))

    def step_message(self, **kw) -> p.Step:  # type: ignore[no-untyped-def]
        seq = kw.pop("seq", self.action.seq if self.mode == p.Mode.POLICY and self.action else self.seq)
        return p.Step(seq, kw.pop("frame", self.frame + K), kw.pop("time_us", int(time.time() * 1e6)),
                      kw.pop("buttons", self.masks()), kw.pop("observation", None) or self.observation())  # fmt: skip

    def begin_message(self, **kw) -> p.EpisodeBegin:  # type: ignore[no-untyped-def]
        episode = self.pending_reset if self.pending_reset is not None else self.episode
        state = kw.pop("start_state", None)
        if state is None:
            state = self.rng.randbytes(self.rng.choice((0, 0, 16, 4096)))
        obs = kw.pop("observation", None) or self.observation()
        return p.EpisodeBegin(kw.pop("episode", episode), kw.pop("frame", self.frame), 0, state, obs)

    def sent_step(self) -> None:
        self.dropped = False
        self.seq += 1
        self.frame += K
        self.action = None

    def sent_begin(self) -> None:
        self.in_episode, self.pending_reset = True, None
        self.episode += 1

    # -- valid moves -------------------------------------------------------------------
    def hello_and_welcome(self, data: bytes | str, what: str, valid: bool | None) -> bool:
        self.send(what, data, valid)
        return self.wait(lambda: self.out.session is not None)

    def valid_move(self) -> bool:
        """One valid message for the session's state; False when the session cannot go on."""
        if self.mode != p.Mode.HUMAN and not self.wait(lambda: self.pending_reset is not None or self.in_episode):
            return False
        if self.pending_reset is not None:
            self.send("begin", p.encode(self.begin_message()), True)
            self.sent_begin()
            return True
        if not self.in_episode:  # human mode: the client begins episodes
            self.send("begin", p.encode(self.begin_message()), True)
            self.sent_begin()
            return True
        if self.mode == p.Mode.POLICY and not self.wait(lambda: self.action or self.pending_reset is not None):
            return False
        if self.pending_reset is not None:
            return self.valid_move()
        r = self.rng.random()
        if self.mode == p.Mode.HUMAN and r < 0.05:
            self.send("begin(client_stop)", p.encode(self.begin_message()), True)
            self.sent_begin()
        elif self.mode != p.Mode.POLICY and r < 0.1 and not self.dropped:
            # One report per run of skipped steps: a second before the next STEP is refused.
            self.dropped = True
            count = self.rng.randint(1, 3)
            msg = p.FramesDropped(self.seq, count, self.frame + K, self.frame + K * count)
            self.send("dropped", p.encode(msg), True)
            self.seq += count
            self.frame += K * count
        elif r < 0.13:
            text = self.rng.choice(NASTY_TEXT)
            self.send("client_error", p.encode(p.Error(self.rng.getrandbits(16), text)), True)
        else:
            self.send("step", p.encode(self.step_message()), True)
            self.sent_step()
        return True


# --- faults -----------------------------------------------------------------------------------
# Each takes the conversation and sends one adversarial message (valid=None: the protocol allows
# more than one answer; False: it must be refused or recorded as a gap, never break anything).


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def _obs_offset(msg: p.Step | p.EpisodeBegin) -> int:
    """Offset of the observation block (docs/protocol.md, STEP and EPISODE_BEGIN tables)."""
    if isinstance(msg, p.Step):
        return 22 + 4 * len(msg.buttons)
    return 25 + len(msg.start_state)


def _carrier(c: Conversation, obs: p.Observation | None = None) -> p.Step | p.EpisodeBegin:
    """The message the session expects now (a STEP in an episode, else EPISODE_BEGIN), to be damaged."""
    if c.in_episode and c.pending_reset is None:
        return c.step_message(observation=obs)
    return c.begin_message(observation=obs)


def _send_obs(c: Conversation, what: str, valid: bool | None, obs: p.Observation) -> None:
    msg = _carrier(c, obs)
    c.send(f"{msg.kind.name.lower()}:{what}", p.encode(msg), valid)


def f_zero_screen(c: Conversation) -> None:
    fmt = c.rng.choice(list(p.PixelFormat))
    _send_obs(c, f"screen0x0/{fmt.name}", False, c.observation(0, 0, fmt=fmt, pixels=b""))


def f_screen_change(c: Conversation) -> None:
    w, h = c.rng.choice(((1, 1), (3, 5), (320, 224), (8, 4), (4, 8), (1024, 1)))
    _send_obs(c, f"screen{w}x{h}", None, c.observation(w, h))


def f_format_change(c: Conversation) -> None:
    _send_obs(c, "bgra32", None, c.observation(fmt=p.PixelFormat.BGRA32))


def f_max_screen(c: Conversation) -> None:
    obs = c.observation(1024, 1024, pixels=bytes(1024 * 1024 * 3), fmt=p.PixelFormat.RGB24)
    _send_obs(c, "screen1024x1024", None, obs)


def f_screen_too_big(c: Conversation) -> None:
    w, h = c.rng.choice(((1025, 1), (1, 1025), (65535, 65535), (2048, 0)))
    _send_obs(c, f"screen{w}x{h}", False, c.observation(w, h, pixels=b"\x00" * 64, zstd=False))


def f_pixel_count(c: Conversation) -> None:
    n = c.width * c.height * 3 + c.rng.choice((-1, 1, -3, 3, 1000))
    _send_obs(c, "pixel_count", False, c.observation(fmt=p.PixelFormat.RGB24, pixels=bytes(max(0, n)), zstd=False))


def f_ram_size(c: Conversation) -> None:
    n = c.rng.choice((0, 1, RAM - 1, RAM + 1, 2 * RAM, p.MAX_RAM_BYTES))
    _send_obs(c, f"ram{n}", False, c.observation(ram=bytes(n)))


def f_ram_too_big(c: Conversation) -> None:
    msg = _carrier(c, c.observation(zstd=False))
    data = p.encode(msg)
    at = _obs_offset(msg) + 9 + c.width * c.height * p.BYTES_PER_PIXEL[msg.observation.pixel_format]
    claim = c.rng.choice((p.MAX_RAM_BYTES + 1, U32 - 1))
    c.send(f"{msg.kind.name.lower()}:ram_len_claim{claim}", _patch(data, at, "<I", claim), False)


def f_format(c: Conversation) -> None:
    msg = _carrier(c)
    data = p.encode(msg)
    value = c.rng.choice((0, 3, 0x7F, 0x80, 0x83, 0xFF))
    c.send(f"{msg.kind.name.lower()}:format{value}", _patch(data, _obs_offset(msg) + 4, "<B", value), False)


def f_zstd_garbage(c: Conversation) -> None:
    msg = _carrier(c, c.observation(zstd=False))
    data = bytearray(p.encode(msg))
    at = _obs_offset(msg) + 4
    data[at] |= p.ZSTD_FLAG  # raw bytes announced as zstd frames
    c.send(f"{msg.kind.name.lower()}:zstd_garbage", bytes(data), False)


def f_zstd_pixels(c: Conversation) -> None:
    w, h = c.width, c.height
    size = w * h * 3 + c.rng.choice((-3, 3, 1 << 20, 100 << 20))
    body = zeros_frame(max(0, size), sized=c.rng.random() < 0.5)
    msg = _carrier(c, p.Observation(w, h, p.PixelFormat.RGB24, b"", zstd(bytes(RAM))))
    data = bytearray(p.encode(msg))
    at = _obs_offset(msg)
    # Splice a frame of the wrong size (or a bomb) in as the pixels, flag set.
    head = struct.pack("<HHBI", w, h, p.PixelFormat.RGB24 | p.ZSTD_FLAG, len(body))
    data[at:at + 9] = head
    data[at + 9:at + 9] = body
    c.send(f"{msg.kind.name.lower()}:zstd_pixels{size - w * h * 3:+d}", bytes(data), False)


def f_zstd_ram(c: Conversation) -> None:
    ram = c.rng.choice((zeros_frame(RAM - 1, sized=True), zeros_frame(RAM + 7, sized=False),
                        zeros_frame(64 << 20, sized=True), b"\x28\xb5\x2f\xfd"))  # the last: a bare zstd magic
    pixels = zstd(bytes(c.width * c.height * 3))  # a sound frame: only the RAM frame is wrong
    msg = _carrier(c, p.Observation(c.width, c.height, p.PixelFormat.RGB24, pixels, ram))
    data = bytearray(p.encode(msg))
    data[_obs_offset(msg) + 4] |= p.ZSTD_FLAG  # both fields were written as given: announce them as zstd
    c.send(f"{msg.kind.name.lower()}:zstd_ram", bytes(data), False)


def f_seq(c: Conversation) -> None:
    if not c.in_episode:
        return f_step_before_begin(c)
    value = c.rng.choice((0, c.seq - 1, c.seq + 1, c.seq + 1000, U32 - 1))
    valid = None if c.mode != p.Mode.POLICY else False  # human mode logs a jump; lockstep refuses it
    c.send(f"step:seq{value}", p.encode(c.step_message(seq=value % U32)), valid)
    c.sent_step()


def f_frame_counter(c: Conversation) -> None:
    value = c.rng.choice((0, c.frame, max(0, c.frame - 1), c.frame + K + 1, 2**63 - 1, 2**63, U64 - 1,
                          c.rng.getrandbits(64)))  # fmt: skip
    if isinstance(_carrier(c), p.Step):
        c.send(f"step:frame{value}", p.encode(c.step_message(frame=value)), None)
        c.sent_step()
    else:
        c.send(f"begin:frame{value}", p.encode(c.begin_message(frame=value)), None)
        c.sent_begin()
    c.frame = value if value < 2**62 else c.frame


def f_time(c: Conversation) -> None:
    if c.in_episode and c.pending_reset is None:
        # Any u64 is a valid client time; in lockstep the STEP is valid only with its ACTION.
        valid = c.mode != p.Mode.POLICY or c.action is not None
        c.send("step:time_max", p.encode(c.step_message(time_us=U64 - 1)), valid)
        c.sent_step()


def f_frames_per_step(c: Conversation) -> None:
    if not c.in_episode:
        return f_step_before_begin(c)
    n = c.rng.choice((1, K - 1, K + 1, 255))
    buttons = tuple(c.rng.getrandbits(len(RETRO_BUTTONS)) for _ in range(n))
    c.send(f"step:frames{n}", p.encode(c.step_message(buttons=buttons)), False)
    c.sent_step()


def f_no_frames(c: Conversation) -> None:
    data = p.encode(c.step_message())
    c.send("step:frames0", data[:21] + b"\x00" + data[22 + 4 * K:], False)


def f_undeclared_buttons(c: Conversation) -> None:
    if not c.in_episode:
        return f_step_before_begin(c)
    bit = c.rng.choice((1 << len(RETRO_BUTTONS), 1 << 31, U32 - 1))
    at = c.rng.randrange(K)
    buttons = tuple(m | bit if i == at else m for i, m in enumerate(c.masks()))
    c.send(f"step:buttons{bit:#x}", p.encode(c.step_message(buttons=buttons)), False)
    c.sent_step()


def f_dropped(c: Conversation) -> None:
    first = c.rng.choice((c.seq, 0, U32 - 1))
    count = c.rng.choice((0, 1, U32 - 1, U32 - c.seq))
    f1 = c.rng.choice((c.frame + K, 2**63, U64 - 1, 0))
    f2 = c.rng.choice((f1, f1 + 4 * count, 0, U64 - 1, 2**63))
    msg = p.FramesDropped(first % U32, count % U32, f1 % U64, f2 % U64)
    c.send(f"dropped({first},{count},{f1},{f2})", p.encode(msg), None)


def f_begin_episode(c: Conversation) -> None:
    value = c.rng.choice((c.episode + 7, U32 - 1, 0))
    valid = c.mode == p.Mode.HUMAN
    c.send(f"begin:episode{value}", p.encode(c.begin_message(episode=value)), valid)
    if valid:
        c.sent_begin()


def f_start_state(c: Conversation) -> None:
    msg = c.begin_message(start_state=b"")
    data = p.encode(msg)
    claim = c.rng.choice((p.MAX_START_STATE_BYTES + 1, U32 - 1, 1 << 20))
    c.send(f"begin:start_state_claim{claim}", _patch(data, 21, "<I", claim), False)


def f_step_before_begin(c: Conversation) -> None:
    c.send("step(no episode)", p.encode(c.step_message()), None)


def f_server_kind(c: Conversation) -> None:
    msg = c.rng.choice((
        p.Welcome("s", "Airstriker-Genesis-v0", p.Mode.HUMAN, 4, p.SendFlag.SCREEN, 1000, 0),
        p.Action(c.seq, 1, 0, 0), p.Reset(0), p.EpisodeEnd(0, 1, 1, True, False, 0.0, "x.h5"),
        p.Stop(p.StopReason.DONE, "bye"), p.Status(0, 1, 0.0, 0.0), hello(),
    ))  # fmt: skip
    c.send(f"kind:{msg.kind.name}", p.encode(msg), False)


def f_unknown_kind(c: Conversation) -> None:
    kind = c.rng.choice([k for k in range(256) if k not in set(p.Kind)])
    c.send(f"kind{kind:#x}", bytes([kind]) + c.rng.randbytes(c.rng.randrange(64)), False)


def f_nul(c: Conversation) -> None:
    """A NUL in a client ERROR's words: logged escaped, or refused."""
    c.send("error:nul", p.encode(p.Error(1, "nul?byte")).replace(b"?", b"\x00"), False)


def f_empty_or_text(c: Conversation) -> None:
    data: bytes | str = c.rng.choice((b"", "hello", "\x03" * 30))
    c.send(f"raw{data!r}", data, False)


def f_truncated(c: Conversation) -> None:
    data = p.encode(_carrier(c))
    cut = c.rng.choice((1, 5, 21, 22, len(data) // 2, len(data) - 1))
    c.send(f"truncated@{cut}", data[:cut], False)


def f_trailing(c: Conversation) -> None:
    data = p.encode(_carrier(c))
    c.send("trailing", data + c.rng.randbytes(c.rng.randint(1, 9)), False)


def f_bitflip(c: Conversation) -> None:
    msg = _carrier(c)
    data = bytearray(p.encode(msg))
    for _ in range(c.rng.randint(1, 6)):
        # Mostly the headers, where a flip changes a length, a count or a size.
        at = c.rng.randrange(min(len(data), 48)) if c.rng.random() < 0.8 else c.rng.randrange(len(data))
        data[at] ^= 1 << c.rng.randrange(8)
    c.send(f"{msg.kind.name.lower()}:bitflip", bytes(data), None)


def f_oversize(c: Conversation) -> None:
    c.send("oversize", b"\x03" + bytes(p.MAX_MESSAGE_BYTES), False)


def f_abrupt(c: Conversation) -> None:
    """The client goes away mid-session: a close frame, or none at all."""
    c.trace.append("abrupt_close")
    c.valid = False
    if c.rng.random() < 0.5:
        c.ws.close()
    else:
        c.ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the server sees the TCP connection drop
    c.closed = c.aborted = True
    c.out.close = None


SESSION_FAULTS: list[tuple[Callable[[Conversation], None], float]] = [
    (f_zero_screen, 2), (f_screen_change, 2), (f_format_change, 1), (f_max_screen, 0.3), (f_screen_too_big, 1),
    (f_pixel_count, 1),
    (f_ram_size, 2), (f_ram_too_big, 1), (f_format, 1), (f_zstd_garbage, 1), (f_zstd_pixels, 1), (f_zstd_ram, 1),
    (f_seq, 2), (f_frame_counter, 2), (f_time, 0.5), (f_frames_per_step, 1), (f_no_frames, 0.5),
    (f_undeclared_buttons, 2), (f_dropped, 2), (f_begin_episode, 1), (f_start_state, 0.5),
    (f_step_before_begin, 0.5), (f_server_kind, 1), (f_unknown_kind, 0.5), (f_nul, 0.3), (f_empty_or_text, 0.5),
    (f_truncated, 1), (f_trailing, 1), (f_bitflip, 3), (f_oversize, 0.1), (f_abrupt, 0.7),
]  # fmt: skip


def bad_hello(c: Conversation) -> tuple[str, bytes | str, bool | None]:
    """A HELLO with one or two fields at or past their limits, or something else first."""
    rng = c.rng
    fields: dict[str, object] = {"mode": c.mode, "policy_id": "scripted" if c.mode == p.Mode.CLIENT_POLICY else ""}
    names = []
    valid: bool | None = True
    for _ in range(rng.randint(1, 2)):
        choice = rng.randrange(9)
        if choice == 0:
            key = rng.choice(("client_name", "client_version", "emulator", "core", "system", "rom_name", "rom_hash",
                              "token", "policy_id"))  # fmt: skip
            fields[key] = rng.choice(NASTY_TEXT)
            names.append(f"{key}=text")
            if key == "system" and fields[key].strip():
                valid = False  # another console than the profile's GEN: refused with 4006 (issue 9 item 6)
        elif choice == 1:
            fields["screen_width"], fields["screen_height"] = rng.choice(((0, 0), (1, 1), (1024, 1024), (1025, 4),
                                                                          (65535, 65535)))  # fmt: skip
            names.append(f"screen{fields['screen_width']}x{fields['screen_height']}")
            valid = None
        elif choice == 2:
            fields["ram_size"] = rng.choice((0, 1, RAM - 1, RAM + 1, p.MAX_RAM_BYTES + 1, U32 - 1))
            names.append(f"ram{fields['ram_size']}")
            valid = False
        elif choice == 3:
            fields["pixel_format"] = p.PixelFormat.NONE
            names.append("format_none")
            valid = False
        elif choice == 4:
            fields["buttons"] = rng.choice(((), RETRO_BUTTONS * 2, ("", *RETRO_BUTTONS), ("up", "b\n", "\x1b[1m"),
                                            tuple(b.lower() for b in RETRO_BUTTONS),
                                            tuple(f"X{i}" for i in range(32))))  # fmt: skip
            names.append(f"buttons{len(fields['buttons'])}")  # type: ignore[arg-type]
            valid = None
        elif choice == 5:
            fields["game"] = rng.choice(("NoSuchGame-v0", "\x1b[2Jgame\n", "../../../etc/passwd", "/nonexistent.toml"))
            names.append("game")
            valid = False
        elif choice == 6:
            fields["capabilities"] = p.Capability(rng.choice((0, 1, 2, 3)))
            names.append("caps")
        elif choice == 7:
            fields["mode"] = rng.choice((p.Mode.ANY, p.Mode.HUMAN, p.Mode.POLICY))
            names.append(f"mode{int(fields['mode'])}")  # type: ignore[call-overload]
            valid = None
        else:
            fields["protocol_version"] = rng.choice((0, 2, 65535))
            names.append(f"version{fields['protocol_version']}")
            valid = False
    if fields["mode"] != p.Mode.CLIENT_POLICY:
        fields["policy_id"] = ""
    data = p.encode(hello(**fields))
    raw = rng.random()
    if raw < 0.08:
        return "hello:truncated", data[: rng.randrange(1, len(data))], False
    if raw < 0.14:
        return "hello:trailing", data + b"\x00", False
    if raw < 0.2:
        buf = bytearray(data)
        buf[5] = 0xFF  # inside the client name: not UTF-8
        return "hello:bad_utf8", bytes(buf), False
    if raw < 0.24:
        return "hello:mode_byte", _patch(data, _hello_mode_offset(hello(**fields)), "<B", 0x7F), False
    if raw < 0.3:
        first = rng.choice((SENTINEL + b"x", p.encode(p.FramesDropped(1, 1, 1, 1)), b"", "text"))
        return "first:not_hello", first, False
    if raw < 0.34:
        nul = p.encode(hello(**{**fields, "rom_name": "nul?byte"})).replace(b"nul?byte", b"nul\x00byte")
        return "hello:nul", nul, False
    if raw < 0.4:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        return "hello:bitflip", bytes(buf), None
    return "hello:" + ",".join(names), data, valid


def _hello_mode_offset(h: p.Hello) -> int:
    """Offset of HELLO's mode byte: kind, version, then 8 strings (docs/protocol.md, HELLO table)."""
    strings = (h.client_name, h.client_version, h.emulator, h.core, h.system, h.rom_name, h.rom_hash, h.game)
    return 3 + sum(2 + len(x.encode()) for x in strings)


# --- cases --------------------------------------------------------------------------------


def client(rec: Recorder) -> ClientConnection:
    # A recorder that stops reading after an ERROR (its queue full of this client's messages) only
    # answers the close handshake at its close timeout: do not wait 10 s for that in every case.
    return connect(f"ws://127.0.0.1:{rec.port}", max_size=p.MAX_MESSAGE_BYTES, compression=None, close_timeout=1)


@dataclass
class Result:
    index: int
    seed: int
    mode: p.Mode
    trace: list[str]
    outcome: Outcome
    problems: list[str]
    seconds: float = 0.0


def play_case(rec: Recorder, index: int, seed: int, mode: p.Mode) -> Result:
    rng = random.Random(seed)
    with client(rec) as ws:
        c = Conversation(ws, rng, mode)
        if rng.random() < 0.3:
            what, data, valid = bad_hello(c)
        else:
            policy_id = "scripted" if mode == p.Mode.CLIENT_POLICY else ""
            what, data, valid = "hello", p.encode(hello(mode=mode, policy_id=policy_id)), True
        if c.hello_and_welcome(data, what, valid):
            n_ops = rng.randint(1, 24)
            fault_at = {rng.randrange(n_ops) for _ in range(rng.choice((0, 1, 1, 2)))}
            funcs, weights = zip(*SESSION_FAULTS, strict=True)
            for i in range(n_ops):
                c.pump()  # as a streaming client does: it stops sending once it has read an ERROR
                if c.closed or c.stopped or c.out.errors:
                    break
                if i in fault_at:
                    rng.choices(funcs, weights)[0](c)
                    c.pump()
                elif not c.valid_move():
                    break
        c.pump()
        c.finish()
    return Result(index, seed, mode, c.trace, c.out, judge(c))


def judge(c: Conversation) -> list[str]:
    out = c.out
    problems = []
    if out.hung:
        problems.append("no answer to the sentinel within 15 s")
    for code in out.errors:
        if code not in DOCUMENTED:
            problems.append(f"ERROR {code}")
    if not c.aborted and out.close is not None:
        if out.close not in DOCUMENTED:
            problems.append(f"close {out.close}")
        elif 4000 <= out.close < 5000 and out.close not in out.errors:
            problems.append(f"close {out.close} without an ERROR {out.close} first")
        if c.valid and not c.stopped and (out.errors != [ErrorCode.UNKNOWN_KIND] or out.close != 4001):
            problems.append(f"valid messages refused: errors {out.errors} {out.words}, close {out.close}")
    return problems


def good_client(rec: Recorder, mode: p.Mode, seed: int) -> str | None:
    """A plain valid session in ``mode``: None if it was served, else what went wrong."""
    try:
        with client(rec) as ws:
            c = Conversation(ws, random.Random(seed), mode)
            policy_id = "scripted" if mode == p.Mode.CLIENT_POLICY else ""
            if not c.hello_and_welcome(p.encode(hello(mode=mode, policy_id=policy_id)), "hello", True):
                return f"no WELCOME (errors {c.out.errors}, close {c.out.close})"
            for _ in range(3):
                if not c.valid_move():
                    return f"not served after {c.trace} (errors {c.out.errors} {c.out.words}, close {c.out.close})"
            c.finish()
            problems = judge(c)
            return "; ".join(problems) if problems else None
    except (OSError, ConnectionClosed, TimeoutError) as exc:
        return f"cannot connect: {exc!r}"


@pytest.mark.parametrize("mode", MODES, ids=[m.name.lower() for m in MODES])
def test_fuzz(mode: p.Mode, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sonic_rl")
    out_dir = tmp_path / "data"
    cases = max(1, CASES // len(MODES))
    results: list[Result] = []
    config = ServerConfig(out=out_dir, port=0, max_steps=16, policy="random")
    started = time.monotonic()
    with running_recorder(config) as rec:
        assert rec.port is not None
        for i in range(cases):
            seed = SEED * 1_000_003 + i * 3 + MODES.index(mode)
            t0 = time.monotonic()
            result = play_case(rec, i, seed, mode)
            served = good_client(rec, mode, seed)
            result.seconds = time.monotonic() - t0
            if served is not None:
                result.problems.append(f"a good client was not served afterwards: {served}")
            results.append(result)
            if served is not None and served.startswith("cannot connect"):
                break  # the server is gone: the rest would only repeat it
    elapsed = time.monotonic() - started
    # Every episode file: sound, and attributed to the case whose session wrote it.
    by_session = {r.outcome.session: r for r in results if r.outcome.session}
    files = find_episode_files([out_dir])
    for f in files:
        problems = check(f)
        if problems:
            owner = next((r for s, r in by_session.items() if f"_{s}_" in f.name), None)
            note = f"file {f.name} fails verify: {problems[0]}"
            if owner is None:
                results.append(Result(-1, -1, mode, [], Outcome(), [note]))
            else:
                owner.problems.append(note)
    names = {f.name for f in files}
    for r in results:
        for name in r.outcome.file_names:
            if name not in names:
                r.problems.append(f"EPISODE_END named {name}, which is not in the folder")
    for left in find_leftovers([out_dir]):
        owner = next((r for s, r in by_session.items() if f"_{s}_" in left.path.name), None)
        note = f"unfinished file left after the recorder stopped (an episode lost): {left.path.name}"
        (owner.problems if owner else results[0].problems).append(note)
    ours = [rec for rec in caplog.records if rec.name.startswith("sonic_rl")]
    internal = [rec for rec in ours if rec.levelno >= logging.ERROR]
    # Client text (HELLO strings, ERROR words, NASTY_TEXT) reaches the log escaped (issue 11 item 5).
    internal += [rec for rec in ours if not rec.getMessage().isprintable()][:3]
    failed = [r for r in results if r.problems]
    summary = _summary(mode, results, failed, internal, len(files), elapsed)
    print(summary)
    assert not failed and not internal, summary


def _summary(mode, results, failed, internal, n_files, elapsed) -> str:  # type: ignore[no-untyped-def]
    codes = collections.Counter(r.outcome.close for r in results)
    lines = [
        f"fuzz {mode.name.lower()}: {len(results)} cases (seed {SEED}), {n_files} episode files, "
        f"{elapsed:.1f} s; close codes {dict(sorted(codes.items(), key=str))}; {len(failed)} failed cases, "
        f"{len(internal)} internal errors or unescaped messages logged"
    ]
    kinds: dict[str, list[Result]] = collections.defaultdict(list)
    for r in failed:
        for prob in r.problems:
            kinds[prob.split(":")[0][:60]].append(r)
    for kind, rs in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {len(rs)} x {kind}")
        for r in rs[:3]:
            lines.append(f"    case {r.index} seed {r.seed}: {' '.join(r.trace)[:300]} -> {r.problems[0][:300]}")
    lines.append(f"  cases {sum(r.seconds for r in results):.1f} s (the rest: the recorder's shutdown, verify)")
    slow = max(results, key=lambda r: r.seconds)
    lines.append(f"  slowest: case {slow.index} seed {slow.seed}, {slow.seconds:.2f} s: {' '.join(slow.trace)[:200]}")
    for record in internal[:5]:
        lines.append(f"  logged: {record.getMessage()[:200]!r}")
    return "\n".join(lines)
