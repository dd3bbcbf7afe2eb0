"""The codec against byte literals (docs/protocol.md), round trips, and malformed input."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import pytest

from dataset.errors import (
    ErrorCode,
    MalformedMessage,
    MessageTooLarge,
    ProtocolError,
    UnknownMessageKind,
    VersionMismatch,
)
from recorder import protocol as p

HELLO = p.Hello(
    "c", "1", "e", "core", "GEN", "rom", "abc", 320, 224, p.PixelFormat.RGB24, 65536, ("B", "A"),
    game="x", mode=p.Mode.POLICY, token="t", capabilities=p.Capability(3),
)  # fmt: skip

# The literal printed in docs/protocol.md.
HELLO_BYTES = bytes.fromhex(
    "01 0100 0100 63 0100 31 0100 65 0400 636f7265 0300 47454e 0300 726f6d"
    "0300 616263 0100 78 02 4001 e000 01 00000100 02 0100 42 0100 41 0100 74 03"
)

STEP = p.Step(5, 100, 7, (1, 2, 3, 4), p.Observation(2, 1, p.PixelFormat.BGRA32, bytes(range(8)), b"\x01\x02"))
STEP_BYTES = bytes.fromhex(
    "03 05000000 6400000000000000 0700000000000000 04"
    "01000000 02000000 03000000 04000000"
    "0200 0100 02 08000000 0001020304050607 02000000 0102"
)


def test_hello_matches_the_document() -> None:
    assert p.encode(HELLO) == HELLO_BYTES
    assert p.decode(HELLO_BYTES) == HELLO


def test_client_policy_hello_appends_the_policy_id() -> None:
    hello = p.Hello("c", "1", "e", "core", "GEN", "rom", "abc", 320, 224, p.PixelFormat.RGB24, 65536, ("B", "A"),
                    game="x", mode=p.Mode.CLIENT_POLICY, token="t", capabilities=p.Capability(3), policy_id="random")
    data = p.encode(hello)
    # Same layout as any HELLO (mode byte 3), then one more string: the policy id.
    assert data[:-8] == HELLO_BYTES[:36] + b"\x03" + HELLO_BYTES[37:]
    assert data[-8:] == bytes.fromhex("0600") + b"random"
    assert p.decode(data) == hello


def test_step_matches_the_document() -> None:
    assert p.encode(STEP) == STEP_BYTES
    decoded = p.decode(STEP_BYTES)
    assert decoded == STEP
    # BGRA32 -> RGB: pixel 0 is B=0 G=1 R=2.
    assert decoded.observation.rgb().tolist() == [[[2, 1, 0], [6, 5, 4]]]


def test_small_messages_match_the_document() -> None:
    assert p.encode(p.Action(1, 0x80, 1, 0)) == bytes.fromhex("42 01000000 80000000 0100 00000000")
    assert p.encode(p.Error(4004, "bad token")) == bytes.fromhex("7f a40f 0900 62616420746f6b656e")
    assert p.encode(p.Reset(3, True)) == bytes.fromhex("43 03000000 01")
    assert p.decode(bytes.fromhex("42 02000000 01000000 ffff 07000000")) == p.Action(2, 1, -1, 7)
    # STATUS: episode 2, 30 steps, last reward 1.5, return -12.25 (docs/protocol.md, STATUS example).
    status = bytes.fromhex("46 02000000 1e000000 000000000000f83f 00000000008028c0")
    assert len(status) == 25
    assert p.encode(p.Status(2, 30, 1.5, -12.25)) == status
    assert p.decode(status) == p.Status(2, 30, 1.5, -12.25)


ALL = [
    HELLO,
    p.Hello("c", "1", "e", "core", "GEN", "rom", "abc", 320, 224, p.PixelFormat.RGB24, 65536, ("B",),
            mode=p.Mode.CLIENT_POLICY, policy_id="scripted"),
    STEP,
    p.Welcome("abc123", "Airstriker-Genesis-v0", p.Mode.HUMAN, 4, p.SendFlag(7), 10_000, 4500, "srv", "0.1"),
    p.EpisodeBegin(2, 99, 12345, b"state-bytes", p.Observation(1, 1, p.PixelFormat.RGB24, b"\x01\x02\x03", b"ram")),
    p.EpisodeBegin(0, 0, 0, b"", p.Observation(0, 0, p.PixelFormat.NONE, b"", b"")),
    p.FramesDropped(10, 3, 400, 408),
    p.Action(9, 0xFFFFFFFF, 7, 123),
    p.Reset(4, False),
    p.EpisodeEnd(1, 300, 16, False, True, -12.5, "file.h5"),
    p.Status(7, 4500, -0.25, 1e9),
    p.Stop(p.StopReason.SHUTDOWN, "bye"),
    p.Error(1011, "internal ✓"),
]


@pytest.mark.parametrize("msg", ALL, ids=lambda m: type(m).__name__)
def test_round_trip(msg: p.Message) -> None:
    data = p.encode(msg)
    assert data[0] == msg.kind
    assert p.decode(data) == msg


@pytest.mark.parametrize("msg", ALL, ids=lambda m: type(m).__name__)
def test_every_truncation_and_extension_is_malformed(msg: p.Message) -> None:
    data = p.encode(msg)
    for cut in range(1, len(data)):
        with pytest.raises(MalformedMessage):
            p.decode(data[:cut])
    with pytest.raises(MalformedMessage, match="trailing"):
        p.decode(data + b"\x00")


def test_random_bytes_only_raise_protocol_errors() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
        with contextlib.suppress(ProtocolError):
            p.decode(data)


def test_unknown_kind_empty_text_and_oversized() -> None:
    with pytest.raises(UnknownMessageKind) as err:
        p.decode(b"\x20\x00")
    assert err.value.code == ErrorCode.UNKNOWN_KIND
    with pytest.raises(MalformedMessage):
        p.decode(b"")
    with pytest.raises(MalformedMessage, match="text"):
        p.decode("hello")  # type: ignore[arg-type]
    with pytest.raises(MessageTooLarge) as big:
        p.decode(b"\x03" + bytes(100), max_bytes=50)
    assert big.value.code == ErrorCode.MESSAGE_TOO_BIG


def test_wrong_protocol_version() -> None:
    data = bytearray(HELLO_BYTES)
    data[1:3] = (2).to_bytes(2, "little")
    with pytest.raises(VersionMismatch) as err:
        p.decode(bytes(data))
    assert err.value.code == ErrorCode.VERSION_MISMATCH


def test_inconsistent_sizes_are_malformed() -> None:
    # Pixel count that does not match width x height x bytes per pixel.
    bad = bytearray(STEP_BYTES)
    bad[43] = 7  # pixel byte count 8 -> 7
    with pytest.raises(MalformedMessage, match="pixel bytes"):
        p.decode(bytes(bad))
    # Unknown pixel format.
    bad = bytearray(STEP_BYTES)
    bad[42] = 9
    with pytest.raises(MalformedMessage, match="pixel format"):
        p.decode(bytes(bad))
    # A step with zero frames.
    zero = bytearray(STEP_BYTES[:21]) + b"\x00" + STEP_BYTES[38:]
    with pytest.raises(MalformedMessage, match="no frames"):
        p.decode(bytes(zero))
    # Invalid UTF-8 in a string.
    with pytest.raises(MalformedMessage, match="UTF-8"):
        p.decode(bytes.fromhex("7f a40f 0200 fffe"))
    # A string over the limit.
    with pytest.raises(MalformedMessage, match="limit"):
        p.decode(b"\x7f\xa4\x0f" + (2000).to_bytes(2, "little") + b"a" * 2000)


def test_rgb24_is_a_zero_copy_view() -> None:
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = p.Step(1, 4, 0, (0,) * 4, p.Observation(3, 2, p.PixelFormat.RGB24, frame.data, b"\x00" * 4))
    decoded = p.decode(p.encode(msg))
    rgb = decoded.observation.rgb()
    assert np.array_equal(rgb, frame)
    assert not rgb.flags.owndata


def test_zstd_observations_round_trip_and_are_bounded() -> None:
    import zstandard

    frame = np.zeros((224, 320, 3), dtype=np.uint8)
    frame[100:120, 50:60] = 200
    obs = p.Observation(320, 224, p.PixelFormat.RGB24, frame.data, bytes(65536), zstd=True)
    data = p.encode(p.Step(1, 4, 0, (0,) * 4, obs))
    assert data[42] == p.PixelFormat.RGB24 | p.ZSTD_FLAG
    assert len(data) < 2000  # vs 280 KB raw
    decoded = p.decode(data)
    assert decoded.observation == obs
    assert np.array_equal(decoded.observation.rgb(), frame)
    # A zstd frame that inflates past the declared screen size is refused, not allocated.
    bomb = zstandard.ZstdCompressor().compress(bytes(4 * 320 * 224))
    raw = bytearray(p.encode(p.Step(1, 4, 0, (0,) * 4, p.Observation(2, 1, p.PixelFormat.RGB24, bytes(6), b""))))
    raw[42] |= p.ZSTD_FLAG
    tail = len(bomb).to_bytes(4, "little") + bomb + zstandard.ZstdCompressor().compress(b"")
    bad = bytes(raw[:43]) + tail[:4] + bomb + (len(tail) - 4 - len(bomb)).to_bytes(4, "little") + tail[4 + len(bomb):]
    with pytest.raises(MalformedMessage, match="needs 6 pixel bytes, got 286720"):
        p.decode(bad)
    # Garbage instead of a zstd frame.
    junk = bytes(raw[:43]) + (4).to_bytes(4, "little") + b"junk" + (0).to_bytes(4, "little")
    with pytest.raises(MalformedMessage, match="zstd"):
        p.decode(junk)


def test_zstd_pixels_are_decoded_lazily_and_checked_then() -> None:
    import zstandard

    # A frame without a declared size is decompressed (and checked) at once.
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(6))
    ram = zstandard.ZstdCompressor().compress(b"ab")
    msg = (bytes.fromhex("03 01000000 0400000000000000 0000000000000000 01 00000000 0200 0100")
           + bytes([p.PixelFormat.RGB24 | p.ZSTD_FLAG]) + len(unsized).to_bytes(4, "little") + unsized
           + len(ram).to_bytes(4, "little") + ram)  # fmt: skip
    obs = p.decode(msg).observation
    assert not isinstance(obs.pixels, p.Packed) and bytes(obs.pixel_bytes) == bytes(6)
    # A sized frame stays packed until used; corruption inside it is found then, as MalformedMessage.
    sized = bytearray(zstandard.ZstdCompressor().compress(bytes(range(6))))
    del sized[-3:]  # a frame cut short
    bad = msg.replace(len(unsized).to_bytes(4, "little") + unsized, len(sized).to_bytes(4, "little") + bytes(sized))
    lazy = p.decode(bad).observation
    assert isinstance(lazy.pixels, p.Packed) and lazy.shape == (1, 2, 3)
    with pytest.raises(MalformedMessage):
        lazy.rgb()


def test_button_masks() -> None:
    assert p.button_mask([True, False, False, True]) == 0b1001
    assert p.mask_to_buttons(0b1001, 5).tolist() == [1, 0, 0, 1, 0]
