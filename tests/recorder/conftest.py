"""A real recorder server on a free loopback port, in a background thread, for socket-level tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from websockets.sync.client import ClientConnection, connect

from recorder import protocol as p
from recorder.server import Recorder, ServerConfig

RETRO_BUTTONS = ("B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z")
W, H = 8, 4  # tiny screens keep socket tests fast; the recorder takes any size


@contextmanager
def running_recorder(config: ServerConfig, **kwargs) -> Iterator[Recorder]:  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    holder: dict[str, Recorder] = {}

    async def main() -> None:
        holder["r"] = Recorder(config, **kwargs)
        await holder["r"].run()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    for _ in range(200):
        if "r" in holder and holder["r"].ready.is_set():
            break
        threading.Event().wait(0.02)
    rec = holder["r"]
    try:
        yield rec
    finally:
        loop.call_soon_threadsafe(rec.shutdown)
        thread.join(10)
        loop.close()


def hello(**overrides) -> p.Hello:  # type: ignore[no-untyped-def]
    fields = dict(
        client_name="test client", client_version="0", emulator="test", core="none", system="GEN",
        rom_name="Airstriker", rom_hash="", screen_width=W, screen_height=H, pixel_format=p.PixelFormat.RGB24,
        ram_size=65536, buttons=RETRO_BUTTONS, game="Airstriker-Genesis-v0", mode=p.Mode.HUMAN,
    )  # fmt: skip
    fields.update(overrides)
    return p.Hello(**fields)


def observation(i: int) -> p.Observation:
    frame = np.full((H, W, 3), i % 256, dtype=np.uint8)
    ram = np.zeros(65536, dtype=np.uint8)
    ram[0x100] = i % 256
    return p.Observation(W, H, p.PixelFormat.RGB24, frame.tobytes(), ram.tobytes())


def client(rec: Recorder) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{rec.port}", max_size=p.MAX_MESSAGE_BYTES, compression=None)


def handshake(ws: ClientConnection, **overrides) -> p.Welcome:  # type: ignore[no-untyped-def]
    ws.send(p.encode(hello(**overrides)))
    msg = p.decode(ws.recv(timeout=10))
    assert isinstance(msg, p.Welcome), msg
    return msg


@pytest.fixture
def out(tmp_path):  # type: ignore[no-untyped-def]
    d = tmp_path / "data"
    d.mkdir()
    return d
