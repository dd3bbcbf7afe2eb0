"""Recorder memory (RSS) under the two loads of issue 11: screen-size churn and many maximum-size clients.

    python benchmarks/rss.py [--sizes 20] [--steps-per-size 8] [--clients 8] [--steps 40] [--rounds 2]

Starts a real ``sonic-rec record`` process (human mode, Airstriker's profile: 64 KiB of RAM) and
drives it over websockets from this process, reading the recorder's resident set size
(``VmRSS``) every 10 ms and its peak (``VmHWM``) from ``/proc/PID/status`` (Linux):

1. one client cycles through ``--sizes`` screen sizes up to the protocol's largest, 1,024 x 1,024
   (each change ends the episode, ``screen_changed``, and opens the next at the new size): the
   writer once kept a buffer per size and grew to 1.58 GiB after three sizes;
2. ``--clients`` clients at once, each streaming ``--steps`` maximum-size observations
   (1,024 x 1,024 BGRA32, 4 MiB a message, pixels random so nothing compresses): the writer
   once cost ~400 MiB per such connection.

Prints, for each phase, the RSS before, the peak during, and the RSS after the clients left,
with the peak above the idle recorder per connection; docs/protocol.md ("Limits", "Memory")
gives the bound that ``tests/recorder/test_rss.py`` checks with a shorter run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder import protocol as p

GAME = "Airstriker-Genesis-v0"
BUTTONS = ("B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z")
RAM = 65536
SIDE = p.MAX_SCREEN_SIDE
MIB = 1024 * 1024


def sizes(n: int) -> list[tuple[int, int]]:
    """``n`` distinct (width, height), the first 1,024 x 1,024, then shrinking towards Genesis-like sizes."""
    return [(SIDE - i * (SIDE - 256) // max(1, n - 1), SIDE - i * (SIDE - 224) // max(1, n - 1)) for i in range(n)]


def read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of process ``pid``, in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) * 1024  # type: ignore[union-attr]
            for key in ("VmRSS", "VmHWM")}  # fmt: skip


class Recorder:
    """A ``sonic-rec record`` process on a free loopback port."""

    def __init__(self, out: Path) -> None:
        cmd = [sys.executable, "-c", "from recorder.cli import main; main()", "--log-level", "WARNING", "record",
               "--out", str(out), "--port", "0", "--game", GAME, "--no-progress"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            found = re.search(r"listening on (ws://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        else:
            raise RuntimeError(f"the recorder did not start (exit {self.proc.wait()})")
        # Keep draining its stderr (warnings per client), so that it never blocks on a full pipe.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def status(self) -> dict[str, int]:
        return read_status(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


@dataclass
class Phase:
    name: str
    before: int
    peak: int
    after: int
    connections: int

    def line(self, idle: int) -> str:
        per = (self.peak - idle) / self.connections
        return (
            f"{self.name}: RSS {self.before / MIB:.0f} MiB before, peak {self.peak / MIB:.0f} MiB, "
            f"{self.after / MIB:.0f} MiB after; {per / MIB:.0f} MiB per connection above the idle recorder"
        )


class Sampler:
    """The highest VmRSS seen while the block runs (VmHWM cannot be reset without privileges)."""

    def __init__(self, rec: Recorder) -> None:
        self.rec, self.peak, self._stop = rec, 0, threading.Event()

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rec.status()["VmRSS"])
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rec.status()["VmRSS"])


def _observation(width: int, height: int, pixels: bytes, ram: bytes) -> p.Observation:
    return p.Observation(width, height, p.PixelFormat.BGRA32, pixels[: width * height * 4], ram)


def _client(url: str, plan: list[tuple[int, int]], seed: int) -> None:
    """Stream one episode per entry of ``plan`` ((width, height), steps), then close."""
    rng = np.random.default_rng(seed)
    pixels = [rng.integers(0, 256, SIDE * SIDE * 4, dtype=np.uint8).tobytes() for _ in range(2)]
    ram = bytes(RAM)
    (w, h), _ = plan[0]
    hello = p.Hello("rss benchmark", "0", "none", "none", "Genesis", "Airstriker", "", w, h, p.PixelFormat.BGRA32,
                    RAM, BUTTONS, game=GAME, mode=p.Mode.HUMAN)  # fmt: skip
    with connect(url, max_size=p.MAX_MESSAGE_BYTES, compression=None, close_timeout=30) as ws:
        ws.send(p.encode(hello))
        assert isinstance(p.decode(ws.recv(timeout=30)), p.Welcome)
        seq, frame = 1, 0
        ws.send(p.encode(p.EpisodeBegin(0, frame, 0, b"", _observation(w, h, pixels[0], ram))))
        for (w, h), steps in plan:
            # The first step at a new size ends the episode (screen_changed) and begins the next.
            for _ in range(steps):
                frame += 4
                obs = _observation(w, h, pixels[seq % 2], ram)
                ws.send(p.encode(p.Step(seq, frame, 0, (0,) * 4, obs)))
                seq += 1
        ws.close()


def size_churn(rec: Recorder, n_sizes: int, steps_per_size: int) -> Phase:
    before = rec.status()["VmRSS"]
    with Sampler(rec) as s:
        _client(rec.url, [(size, steps_per_size) for size in sizes(n_sizes)], seed=0)
        time.sleep(0.5)  # the last episode is closed (compressed, fsynced) after the client leaves
    return Phase(f"1 client, {n_sizes} screen sizes", before, s.peak, rec.status()["VmRSS"], 1)


def many_clients(rec: Recorder, n_clients: int, steps: int) -> Phase:
    before = rec.status()["VmRSS"]
    with Sampler(rec) as s, ThreadPoolExecutor(n_clients) as pool:
        done = [pool.submit(_client, rec.url, [((SIDE, SIDE), steps)], i) for i in range(n_clients)]
        for fut in done:
            fut.result()
        time.sleep(0.5)
    return Phase(f"{n_clients} clients at {SIDE}x{SIDE}", before, s.peak, rec.status()["VmRSS"], n_clients)


def measure(
    out: Path, n_sizes: int, steps_per_size: int, n_clients: int, steps: int, rounds: int = 1
) -> tuple[int, list[Phase]]:
    """Idle RSS of a fresh recorder, then ``rounds`` times the two phases; the recorder is stopped at the end.

    More than one round shows whether what stays resident after a phase (memory the allocator keeps
    for reuse) grows from round to round, which a leak would do.
    """
    rec = Recorder(out)
    try:
        time.sleep(0.3)
        idle = rec.status()["VmRSS"]
        phases = []
        for _ in range(rounds):
            phases += [size_churn(rec, n_sizes, steps_per_size), many_clients(rec, n_clients, steps)]
        return idle, phases
    finally:
        rec.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, default=20)
    ap.add_argument("--steps-per-size", type=int, default=8)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2, help="repeat both phases (a leak grows from round to round)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        idle, phases = measure(Path(tmp), args.sizes, args.steps_per_size, args.clients, args.steps, args.rounds)
    print(f"idle recorder: RSS {idle / MIB:.0f} MiB")
    for phase in phases:
        print(phase.line(idle))


if __name__ == "__main__":
    main()
