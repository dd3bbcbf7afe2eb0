"""The embedded client's blocking websocket transport against a real websockets server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import websockets

from dataset.errors import Disconnected
from recorder.transport import WebSocket


@contextmanager
def server(handler) -> Iterator[int]:  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    port: list[int] = []

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", 0, max_size=2**24) as srv:
            port.append(next(iter(srv.sockets)).getsockname()[1])
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def test_messages_fragments_pings_and_a_normal_close() -> None:
    async def handler(ws):  # type: ignore[no-untyped-def]
        data = await ws.recv()
        await ws.ping()  # answered by the client's protocol without the caller noticing
        await ws.send(data[::-1])
        await ws.send([b"frag", b"mented"])  # an iterable is sent as a fragmented message
        await ws.send(bytes(range(251)) * 12_000)  # ~3 MB over many reads into the one receive buffer
        await ws.close(1000, "done")

    with server(handler) as port, WebSocket(f"ws://127.0.0.1:{port}", max_size=2**24) as ws:
        ws.send(b"\x01\x02\x03")
        assert ws.recv() == b"\x03\x02\x01"
        assert ws.recv() == b"fragmented"
        assert ws.recv() == bytes(range(251)) * 12_000
        with pytest.raises(Disconnected) as closed:
            ws.recv()
        assert (closed.value.code, closed.value.reason) == (1000, "done")


def test_an_error_close_code_reaches_the_caller() -> None:
    async def handler(ws):  # type: ignore[no-untyped-def]
        await ws.recv()
        await ws.close(4004, "wrong or missing token")

    with server(handler) as port, WebSocket(f"ws://127.0.0.1:{port}", max_size=2**20) as ws:
        ws.send(b"hello")
        with pytest.raises(Disconnected) as closed:
            ws.recv()
        assert closed.value.code == 4004 and "token" in str(closed.value)


def test_send_after_the_peer_closed_is_a_disconnect_not_a_crash() -> None:
    # A streaming client can read the recorder's close frame in poll() and then send its next
    # step: that must end as a clean Disconnected (it printed a websockets InvalidState traceback).
    async def handler(ws):  # type: ignore[no-untyped-def]
        await ws.recv()
        await ws.close(1001, "recorder shutting down")

    with server(handler) as port, WebSocket(f"ws://127.0.0.1:{port}", max_size=2**20) as ws:
        ws.send(b"step")
        with contextlib.suppress(Disconnected):
            for _ in range(200):  # until the close frame has been read
                ws.poll()
                if not ws.open:
                    break
                time.sleep(0.01)
        with pytest.raises(Disconnected) as closed:
            ws.send(b"next step")
        assert closed.value.code == 1001


def test_oversized_incoming_message_fails_the_connection() -> None:
    async def handler(ws):  # type: ignore[no-untyped-def]
        await ws.send(b"x" * 5000)
        await ws.wait_closed()

    with server(handler) as port, WebSocket(f"ws://127.0.0.1:{port}", max_size=1000) as ws, pytest.raises(Disconnected):
        ws.recv()


def test_nothing_listening() -> None:
    with pytest.raises(OSError):
        WebSocket("ws://127.0.0.1:1", max_size=1000, open_timeout=2)
