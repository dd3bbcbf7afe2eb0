"""sonic-rl recorder: the websocket server, wire protocol and embedded emulator client."""

__version__ = "0.1.0"
