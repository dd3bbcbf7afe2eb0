"""Recording speed and storage size on the embedded emulator (issue 2's and issue 13's targets).

    python benchmarks/record.py [--rounds 5] [--policy scripted] [--emulator ale --game breakout]
    python benchmarks/record.py --modes lockstep --rounds 9     # the lockstep figure alone

Prints, in one run, on Airstriker (or the game given, on stable-retro or ale-py) at frame skip 4
with full frames and RAM recorded:
1. bare emulator frames/s: the same stepping, screen and RAM reads and policy, in one process,
   with no recorder;
2. recording frames/s through the real websocket server and the embedded client process, in
   two modes, each with its ratio to the bare loop run in the same round:
   - client policy (target >= 85%): ``sonic-rec record --emulator retro`` runs the recording
     policy inside the emulator process and streams;
   - lockstep (target >= 90%, issue 13): the recorder's policy answers every step (policy
     mode), as for a trained network (``sonic-train eval``, ``online``) or BizHawk's policy mode;
3. bytes per step on disk and the ratio to raw (target >= 100x);
4. the same observations written with h5py's gzip level 4 over the same chunks: bytes per step
   and write frames/s (targets: ours >= 1.8x smaller and >= 10x faster to write);
5. with lockstep: the per-step overhead over the bare loop, and the transport floor beneath it:
   round trips of a STEP-sized message and an ACTION-sized reply between the embedded client's
   transport (a separate process) and a websockets server configured as the recorder's, with no
   work on either side. No recorder on this stack can answer faster, so
   ``bare step time / (bare step time + floor)`` is the ceiling of the lockstep ratio here.

Recording speed is timed from each episode's first to last stored observation (the recorder's
receive timestamps), so the emulator process's start-up is not counted; the bare loop is timed
over the same number of steps, with the same resets. Each round runs every mode and then the
bare loop, so a shared machine's load changes hit the modes and the bare loop alike; medians
over rounds are reported, with each round's figure, the load average and the CPU's flags.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage import compare_codecs

from dataset.catalog import find_episode_files
from dataset.episode import EpisodeReader
from recorder.policy import PolicyInput, make_policy
from recorder.profile import load_profile
from recorder.recording import RecordConfig, record

GAME = "Airstriker-Genesis-v0"
FRAME_SKIP = 4


def bare(steps_per_episode: list[int], policy_name: str, seed: int, kind: str, game: str) -> tuple[float, int]:
    """Frames/s of the emulator doing what the client does, minus the recorder."""
    from recorder.emulator import emulator_class

    profile = load_profile(game)
    policy = make_policy(policy_name, profile, seed)
    emu = emulator_class(kind)(profile.embedded_game(kind))  # type: ignore[call-arg]
    masks = profile.action_set(emu.buttons).masks
    frames = 0
    elapsed = 0.0
    try:
        for n in steps_per_episode:
            emu.reset()
            policy.reset()
            screen, ram = emu.screen(), emu.ram()
            t0 = time.perf_counter()
            for i in range(n):
                action = policy.act(PolicyInput(screen, ram, profile.read_variables(ram), i))
                emu.step(masks[action], FRAME_SKIP)
                screen = np.ascontiguousarray(emu.screen())
                ram = emu.ram().copy()  # the client serialises RAM once per step too
                frames += FRAME_SKIP
            elapsed += time.perf_counter() - t0
    finally:
        emu.close()
    return frames / elapsed, frames


#: Bytes of a lockstep STEP on Airstriker (zstd pixels and RAM, headers) and of an ACTION reply.
_STEP_BYTES, _ACTION_BYTES = 2_500, 16


def _floor_client(port: int, rounds: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from recorder.transport import WebSocket

    with WebSocket(f"ws://127.0.0.1:{port}", max_size=1 << 20) as ws:
        msg = bytes(_STEP_BYTES)
        for _ in range(50):  # warm up: connection, caches, the CPU's clock
            ws.send(msg)
            ws.recv()
        t0 = time.perf_counter()
        for _ in range(rounds):
            ws.send(msg)
            ws.recv()
        out.put((time.perf_counter() - t0) / rounds)


def transport_floor(rounds: int = 3000) -> float:
    """Seconds per round trip of an idle lockstep exchange over the recorder's websocket stack."""
    import websockets

    from recorder import protocol as p

    async def serve() -> float:
        async def echo(ws: websockets.ServerConnection) -> None:
            reply = bytes(_ACTION_BYTES)
            async for _ in ws:
                await ws.send(reply)

        # The recorder's own settings (recorder/server.py, Recorder.run).
        async with websockets.serve(echo, "127.0.0.1", 0, max_size=p.MAX_MESSAGE_BYTES, max_queue=4,
                                    compression=None) as server:  # fmt: skip
            port = next(iter(server.sockets)).getsockname()[1]
            out: multiprocessing.Queue[float] = multiprocessing.Queue()
            proc = multiprocessing.Process(target=_floor_client, args=(port, rounds, out))
            proc.start()
            while proc.is_alive() and out.empty():
                await asyncio.sleep(0.02)
            proc.join()
            return float(out.get(timeout=5))

    return asyncio.run(serve())


def _record_round(out: Path, args: argparse.Namespace, game: str, lockstep: bool) -> tuple[list[int], float]:
    """Record one round in one mode; returns the steps of each episode and the recording frames/s."""
    config = RecordConfig(
        out=out, game=game, emulator=args.emulator, policy=args.policy, episodes=args.episodes,
        max_steps=args.max_steps, frame_skip=FRAME_SKIP, port=0, seed=args.seed, progress=False,
    )  # fmt: skip
    # With a policy object the recorder plays it (policy mode, lockstep); without, the client plays.
    factory = (lambda prof, seed: make_policy(args.policy, prof, seed)) if lockstep else None
    record(config, policy_factory=factory)
    steps, frames, seconds = [], 0, 0.0
    for f in find_episode_files([out]):
        with EpisodeReader(f) as ep:
            ts = ep.timestamps()
            steps.append(ep.n_steps)
            frames += ep.n_steps * FRAME_SKIP
            seconds += float(ts[-1] - ts[0])
    return steps, frames / seconds


def _cpu_flags() -> str:
    """The flags docs quote with every CPU figure (avx2, avx512f, avx512_bf16, amx*)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    found = set(re.findall(r"\b(avx2|avx512f|avx512_bf16|amx\w*)\b", text))
    return " ".join(sorted(found)) or "none of avx2/avx512f/avx512_bf16/amx"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=1500)
    ap.add_argument("--policy", default="random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--emulator", choices=["retro", "ale"], default="retro")
    ap.add_argument("--game", default=None, help=f"profile id (default {GAME}, or breakout with --emulator ale)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds of (recording modes, bare) and codec runs; medians are reported (runs of a "
                         "few seconds on a shared 2-core machine vary by 20%%)")  # fmt: skip
    ap.add_argument("--modes", default="client,lockstep",
                    help="recording modes to time, comma-separated: client (client policy, streaming), "
                         "lockstep (the recorder's policy); storage figures need client")  # fmt: skip
    args = ap.parse_args()
    game = args.game or (GAME if args.emulator == "retro" else "breakout")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"client", "lockstep"}:
        ap.error(f"--modes takes client and/or lockstep, got {args.modes!r}")

    fps: dict[str, list[float]] = {m: [] for m in modes}
    bare_fps: dict[str, list[float]] = {m: [] for m in modes}
    ratios: dict[str, list[float]] = {m: [] for m in modes}
    floors: list[float] = []
    steps: dict[str, list[int]] = {}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # Alternate the order of the modes: a load change then favours neither. Each mode's bare
            # loop plays its episodes right after it (a streaming client's policy draws for the steps
            # it sent past an episode's end, so the two modes' later episodes differ).
            for mode in modes if r % 2 == 0 else modes[::-1]:
                steps[mode], mode_fps = _record_round(Path(tmp) / f"{mode}{r}", args, game, mode == "lockstep")
                mode_bare, _ = bare(steps[mode], args.policy, args.seed, args.emulator, game)
                fps[mode].append(mode_fps)
                bare_fps[mode].append(mode_bare)
                ratios[mode].append(mode_fps / mode_bare)
            if "lockstep" in modes:
                floors.append(transport_floor())
        storage = _storage_rows(Path(tmp) / "client0", args.rounds) if "client" in modes else []
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None

    def runs_text(values: list[float], fmt: str) -> str:
        return "  (runs: " + ", ".join(format(v, fmt) for v in values) + ")"

    labels = {"client": ("client policy", 0.85), "lockstep": ("lockstep (recorder's policy)", 0.90)}
    rows = []
    for mode in modes:
        label, target = labels[mode]
        n = sum(steps[mode])
        rows += [
            (f"{label}: episodes / steps / frames per round", f"{len(steps[mode])} / {n} / {n * FRAME_SKIP}"),
            (f"{label}: bare emulator frames/s (median)", f"{np.median(bare_fps[mode]):,.0f}"
             + runs_text(bare_fps[mode], ",.0f")),
            (f"{label}: recording frames/s (median)", f"{np.median(fps[mode]):,.0f}" + runs_text(fps[mode], ",.0f")),
            (f"{label} / bare (median of rounds)", f"{np.median(ratios[mode]):.1%}  (target >= {target:.0%})"
             + runs_text(ratios[mode], ".1%")),
        ]  # fmt: skip
    if floors:
        bare_step = FRAME_SKIP / float(np.median(bare_fps["lockstep"]))
        rec_step = FRAME_SKIP / float(np.median(fps["lockstep"]))
        floor = float(np.median(floors))
        rows += [
            ("lockstep: seconds per step, bare / recording", f"{bare_step * 1e6:,.0f} us / {rec_step * 1e6:,.0f} us"
             f"  (overhead {(rec_step - bare_step) * 1e6:,.0f} us per step)"),
            ("lockstep: transport floor (idle round trip, same stack)", f"{floor * 1e6:,.0f} us"
             + "  (runs: " + ", ".join(f"{f * 1e6:,.0f}" for f in floors) + ")"),
            ("lockstep: ceiling set by that floor", f"{bare_step / (bare_step + floor):.1%} of bare"),
        ]  # fmt: skip
    rows += storage
    if load_before is not None and load_after is not None:
        rows.append(("load average (1 min) before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}"
                     f"  ({os.cpu_count()} CPUs)"))  # fmt: skip
    rows.append(("CPU flags", _cpu_flags()))
    width = max(len(k) for k, _ in rows)
    print(f"sonic-rl recording benchmark: {game} ({args.emulator}), frame skip {FRAME_SKIP}, policy {args.policy}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def _storage_rows(first: Path, rounds: int) -> list[tuple[str, str]]:
    """Bytes per step of the first round's files, and the codec comparison over their observations."""
    files = find_episode_files([first])
    frames, ram, disk, steps = [], [], 0, 0
    for f in files:
        disk += f.stat().st_size
        with EpisodeReader(f) as ep:
            steps += ep.n_steps
            frames.append(ep.frames())
            ram.append(ep.ram())
    all_frames, all_ram = np.concatenate(frames), np.concatenate(ram)
    runs = [compare_codecs(all_frames, all_ram, chunk_frames=32) for _ in range(rounds)]
    raw_per_step = int(np.prod(all_frames.shape[1:])) + all_ram.shape[1]
    ours_per_step = disk / steps
    zstd = {k: float(np.median([r["zstd-3"][k] for r in runs])) for k in runs[0]["zstd-3"]}
    gzip = {k: float(np.median([r["gzip-4"][k] for r in runs])) for k in runs[0]["gzip-4"]}
    speedups = [r["zstd-3"]["write_fps"] / r["gzip-4"]["write_fps"] for r in runs]
    return [
        ("raw bytes/step (RGB frame + RAM)", f"{raw_per_step:,}"),
        ("our files: bytes/step", f"{ours_per_step:,.0f}"),
        ("our files: ratio to raw", f"{raw_per_step / ours_per_step:,.0f}x  (target >= 100x)"),
        (f"same {len(all_frames)} observations, zstd-3 writer: bytes/step", f"{zstd['bytes_per_step']:,.0f}"),
        ("same data, h5py gzip-4, same chunks: bytes/step", f"{gzip['bytes_per_step']:,.0f}"),
        ("gzip-4 size / ours", f"{gzip['bytes_per_step'] / zstd['bytes_per_step']:.2f}x  (target >= 1.8x)"),
        ("write frames/s: ours / gzip-4 (medians)", f"{zstd['write_fps']:,.0f} / {gzip['write_fps']:,.0f}"),
        ("write speed ours / gzip-4 (median)", f"{np.median(speedups):.1f}x  (target >= 10x)"
         + "  (runs: " + ", ".join(f"{v:.1f}" for v in speedups) + ")"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
