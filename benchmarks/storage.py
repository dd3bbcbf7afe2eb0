"""Storage benchmark: our zstd episode writer against h5py's gzip, and the chunk-size sweep.

Usage::

    python -m benchmarks.storage            # ~1000 Airstriker steps, frame skip 4
    python -m benchmarks.storage --steps 300 --json out.json

The figures recorded in docs/dataset-format.md come from this script. Airstriker
is mostly black space, so its ratios are an upper bound; Sonic's scrolling
backgrounds compress far less (see the note in the doc).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from dataset.episode import Actor, EndReason, EpisodeMeta, EpisodeReader, EpisodeWriter

__all__ = ["compare_codecs", "measure_step_cost", "record_airstriker", "write_zstd_episode"]

GAME = "Airstriker-Genesis-v0"
FRAME_SKIP = 4
CHUNK_SWEEP = (1, 8, 16, 32, 64)


def _meta(n_buttons: int = 12) -> EpisodeMeta:
    return EpisodeMeta(
        game=GAME,
        rom_name="Airstriker",
        rom_hash="benchmark",
        emulator="stable-retro",
        core="genesis_plus_gx",
        system="Genesis",
        client_name="benchmarks.storage",
        client_version="0",
        recorder_version="0",
        profile_toml="",
        frame_skip=FRAME_SKIP,
        mode="policy",
        policy_id="random",
        button_names=tuple(f"b{i}" for i in range(n_buttons)),
        action_names=(),
        episode_index=0,
        session_id="bench",
        created="2026-01-01T00:00:00+00:00",
    )


def write_zstd_episode(
    directory: Path,
    frames: np.ndarray,
    ram: np.ndarray,
    chunk_frames: int,
    level: int = 3,
    step_times: list[float] | None = None,
    rate: float | None = None,
) -> Path:
    """Write ``frames``/``ram`` (N+1 observations) as one episode; optionally time each step().

    ``rate`` paces the calls (steps/s) like a live client does, so that the
    background compressor runs concurrently as it would in the recorder.
    """
    n = len(frames) - 1
    # The recorder hands the writer read-only views of immutable websocket messages, which
    # it may keep without copying; read-only views here measure that same path.
    frames, ram = frames.view(), ram.view()
    frames.flags.writeable = False
    ram.flags.writeable = False
    writer = EpisodeWriter(
        directory,
        _meta(),
        frame_shape=tuple(frames.shape[1:]),  # type: ignore[arg-type]
        ram_size=ram.shape[1],
        buttons_per_step=FRAME_SKIP,
        start_state=None,
        chunk_frames=chunk_frames,
        level=level,
    )
    buttons = np.zeros(FRAME_SKIP, np.uint16)
    writer.begin(frames[0], ram[0], 0, time.time())
    period = 1.0 / rate if rate else 0.0
    next_at = time.perf_counter()
    for i in range(n):
        if period:
            next_at += period
            # Sleep, not busy-wait: an event loop blocks in epoll between messages,
            # leaving the GIL to the compressor thread, and so does this loop.
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        writer.step(
            frame=frames[i + 1],
            ram=ram[i + 1],
            frame_counter=(i + 1) * FRAME_SKIP,
            timestamp=time.time(),
            buttons=buttons,
            action=-1,
            actor=Actor.POLICY,
            policy_version=0,
            reward=0.0,
        )
        if step_times is not None:
            step_times.append(time.perf_counter() - t0)
    return writer.close(EndReason.STEP_LIMIT)


def _write_gzip(path: Path, frames: np.ndarray, ram: np.ndarray, chunk_frames: int) -> None:
    # The same two big arrays and chunk shapes, through h5py's built-in deflate.
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "frames",
            data=frames,
            chunks=(min(chunk_frames, len(frames)), *frames.shape[1:]),
            compression="gzip",
            compression_opts=4,
        )
        f.create_dataset(
            "ram",
            data=ram,
            chunks=(min(chunk_frames, len(ram)), ram.shape[1]),
            compression="gzip",
            compression_opts=4,
        )


def compare_codecs(
    frames: np.ndarray, ram: np.ndarray, chunk_frames: int, level: int = 3
) -> dict[str, dict[str, float]]:
    """Bytes/step, ratio to raw and write/read frames/s of our zstd writer and of h5py gzip-4.

    ``frames`` (N+1, H, W, 3) and ``ram`` (N+1, R) are the observations of one
    episode. Bytes are whole-file sizes (the zstd file also holds the per-step
    arrays, a few bytes per step).
    """
    steps = len(frames) - 1
    raw = frames.nbytes + ram.nbytes
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        path = write_zstd_episode(directory, frames, ram, chunk_frames, level)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with EpisodeReader(path) as r:
            for _ in r.iter_frame_chunks():
                pass
        read_s = time.perf_counter() - t0
        size = path.stat().st_size
        out[f"zstd-{level}"] = {
            "bytes_per_step": size / steps,
            "ratio": raw / size,
            "write_fps": len(frames) / write_s,
            "read_fps": len(frames) / read_s,
        }
        gz = directory / "gzip.h5"
        t0 = time.perf_counter()
        _write_gzip(gz, frames, ram, chunk_frames)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with h5py.File(gz, "r") as f:
            ds = f["frames"]
            for start in range(0, len(ds), ds.chunks[0]):
                ds[start : start + ds.chunks[0]]
        read_s = time.perf_counter() - t0
        size = gz.stat().st_size
        out["gzip-4"] = {
            "bytes_per_step": size / steps,
            "ratio": raw / size,
            "write_fps": len(frames) / write_s,
            "read_fps": len(frames) / read_s,
        }
    return out


def measure_step_cost(frames: np.ndarray, ram: np.ndarray, chunk_frames: int, rate: float) -> dict[str, float]:
    """Latency of EpisodeWriter.step() (µs) when called ``rate`` times per second."""
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_zstd_episode(Path(tmp), frames, ram, chunk_frames, step_times=times, rate=rate)
        close_s = time.perf_counter() - t0
    us = np.asarray(times) * 1e6
    return {
        "rate": rate,
        "median_us": float(np.median(us)),
        "p99_us": float(np.percentile(us, 99)),
        "max_us": float(us.max()),
        "total_s": close_s,
    }


def record_airstriker(steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Observations of ``steps`` random-button steps of Airstriker (frame skip 4), with RAM."""
    import stable_retro  # imported here: the rest of the module works on any arrays

    env = stable_retro.make(game=GAME, render_mode=None)
    try:
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        frames = [obs]
        rams = [env.get_ram().copy()]
        for _ in range(steps):
            buttons = rng.integers(0, 2, env.action_space.shape[0])
            done = False
            for _ in range(FRAME_SKIP):
                obs, _, terminated, truncated, _ = env.step(buttons)
                done = done or terminated or truncated
            frames.append(obs)
            rams.append(env.get_ram().copy())
            if done:
                obs, _ = env.reset()
        return np.stack(frames), np.stack(rams)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps to record")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--level", type=int, default=3, help="zstd level")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    t0 = time.perf_counter()
    frames, ram = record_airstriker(args.steps, args.seed)
    print(
        f"recorded {len(frames)} observations of {GAME} "
        f"(frames {frames.shape[1:]}, RAM {ram.shape[1]} B) in {time.perf_counter() - t0:.1f}s"
    )
    raw = (frames.nbytes + ram.nbytes) / (len(frames) - 1)
    print(f"raw: {raw:,.0f} bytes/step\n")
    header = f"{'chunk':>5} {'codec':<7} {'bytes/step':>10} {'ratio':>7} {'write f/s':>10} {'read f/s':>9}"
    print(header)
    print("-" * len(header))
    results: dict[str, object] = {"steps": args.steps, "raw_bytes_per_step": raw, "sweep": {}}
    for chunk in CHUNK_SWEEP:
        row = compare_codecs(frames, ram, chunk, args.level)
        results["sweep"][chunk] = row  # type: ignore[index]
        for codec, r in row.items():
            print(
                f"{chunk:>5} {codec:<7} {r['bytes_per_step']:>10,.0f} {r['ratio']:>6.0f}x "
                f"{r['write_fps']:>10,.0f} {r['read_fps']:>9,.0f}"
            )
    print()
    from dataset.episode import DEFAULT_CHUNK_FRAMES

    costs = []
    for rate in (500.0, 2000.0):
        cost = measure_step_cost(frames, ram, DEFAULT_CHUNK_FRAMES, rate)
        costs.append(cost)
        print(
            f"step() at {rate:,.0f} steps/s, chunk {DEFAULT_CHUNK_FRAMES}: median "
            f"{cost['median_us']:.0f} µs, p99 {cost['p99_us']:.0f} µs, max {cost['max_us']:.0f} µs"
        )
    results["step_cost"] = costs
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
