"""A blocking websocket client over python-websockets' sans-I/O protocol.

The embedded emulator client runs in lockstep: each step it sends one
observation and waits for the recorder's buttons, thousands of times a
second. websockets' own clients add a hop per message (the asyncio loop, or
the threaded sync client's reader thread); measured here, that hop cost more
than half a millisecond a step, a third of the emulator's own time. This
client drives ``websockets.client.ClientProtocol`` (the same RFC 6455 core the
library's clients wrap, as its docs on sans-I/O integration describe) straight
from a blocking socket in the calling thread: send is one ``sendall``, receive
is ``recv`` until a whole message is there.
"""

from __future__ import annotations

import select
import socket

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from dataset.errors import Disconnected

__all__ = ["WebSocket"]


class WebSocket:
    """One client connection. Not thread-safe: one thread sends and receives."""

    def __init__(self, url: str, *, max_size: int, open_timeout: float = 30.0) -> None:
        uri = parse_uri(url)
        if uri.secure:
            raise ValueError("wss:// is not supported by the embedded client; the recorder serves ws:// on loopback")
        self._proto = ClientProtocol(uri, max_size=max_size)
        self._sock = socket.create_connection((uri.host, uri.port), timeout=open_timeout)
        # Lockstep messages are small and latency-bound: no Nagle delay.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._fragments: list[bytes] = []
        # One receive buffer for the connection: recv(1 MiB) would allocate (mmap) and shrink a
        # fresh 1 MiB object for every 16-byte ACTION, ~15 us of each lockstep round trip (issue 13).
        self._buffer = bytearray(1 << 20)
        self._view = memoryview(self._buffer)
        self._messages: list[bytes] = []
        self._proto.send_request(self._proto.connect())
        self._flush()
        while self._proto.state == State.CONNECTING:
            self._pump()
        if self._proto.handshake_exc is not None:
            raise ConnectionError(f"websocket handshake failed: {self._proto.handshake_exc}")
        self._sock.settimeout(None)

    @property
    def open(self) -> bool:
        """False once a close frame was sent or received, or the connection is gone."""
        return self._proto.state == State.OPEN

    def send(self, data: bytes) -> None:
        """Send one binary message. Raises Disconnected once the connection is closing or gone.

        A client that streams (client-policy mode) may have read the recorder's close frame in a
        poll() just before this send: the protocol is then CLOSING and refuses to send
        (websockets' InvalidState), which is the end of the connection, not a bug to print.
        """
        if self._proto.state != State.OPEN:
            raise self._closed()
        self._proto.send_binary(data)
        try:
            self._flush()
        except OSError:  # the peer went away mid-write (EPIPE, ECONNRESET)
            raise self._closed() from None

    def recv(self) -> bytes:
        """The next whole binary message. Raises Disconnected when the connection ends."""
        while not self._messages:
            self._pump()
        return self._messages.pop(0)

    def poll(self) -> bytes | None:
        """A whole message if one has arrived, else None at once (never blocks)."""
        if not self._messages and select.select([self._sock], [], [], 0)[0]:
            self._pump()  # data is waiting: this recv() returns at once
        return self._messages.pop(0) if self._messages else None

    def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            if self._proto.state == State.OPEN:
                self._proto.send_close(code, reason)
                self._flush()
        except OSError:
            pass
        finally:
            self._sock.close()

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self) -> None:
        for chunk in self._proto.data_to_send():
            if chunk:
                self._sock.sendall(chunk)
            else:  # the protocol asks to half-close after a close handshake
                self._sock.shutdown(socket.SHUT_WR)

    def _pump(self) -> None:
        """Read once from the socket and turn what arrived into messages."""
        if self._proto.state == State.CLOSED:
            raise self._closed()
        try:
            n = self._sock.recv_into(self._buffer)
        except OSError:
            n = 0
        data = bytes(self._view[:n])
        if data:
            self._proto.receive_data(data)
        else:
            self._proto.receive_eof()
        for event in self._proto.events_received():
            if isinstance(event, Response):
                continue
            if event.opcode in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
                self._fragments.append(bytes(event.data))
                if event.fin:
                    self._messages.append(b"".join(self._fragments))
                    self._fragments.clear()
        self._flush()  # pongs, and the reply to a close frame
        if not data and not self._messages:
            raise self._closed()
        if self._proto.state == State.CLOSED and not self._messages:
            raise self._closed()

    def _closed(self) -> Disconnected:
        rcvd = self._proto.close_rcvd
        if rcvd is not None:
            return Disconnected(int(rcvd.code), rcvd.reason)
        return Disconnected(1006, "connection lost")
