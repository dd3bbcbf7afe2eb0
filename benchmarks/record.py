"""Recording speed and storage size on the embedded emulator (issue 2's targets).

    python benchmarks/record.py [--steps 3000] [--policy scripted] [--emulator ale --game breakout]

Prints, in one run, on Airstriker (or the game given, on stable-retro or ale-py) at frame skip 4
with full frames and RAM recorded:
1. bare emulator frames/s: the same stepping, screen and RAM reads and policy, in one process,
   with no recorder;
2. recording frames/s through the real websocket server and the embedded client process,
   and the ratio to bare (target >= 85%). ``sonic-rec record --emulator retro`` runs the
   recording policy inside the emulator process and streams (client-policy mode); the
   lockstep figure (policy mode: the recorder's policy answers every step, as for a trained
   network or BizHawk's policy mode) is printed too, for comparison;
3. bytes per step on disk and the ratio to raw (target >= 100x);
4. the same observations written with h5py's gzip level 4 over the same chunks: bytes per step
   and write frames/s (targets: ours >= 1.8x smaller and >= 10x faster to write).

Recording speed is timed from each episode's first to last stored observation (the recorder's
receive timestamps), so the emulator process's start-up is not counted; the bare loop is timed
over the same number of steps, with the same resets.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=1500)
    ap.add_argument("--policy", default="random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--emulator", choices=["retro", "ale"], default="retro")
    ap.add_argument("--game", default=None, help=f"profile id (default {GAME}, or breakout with --emulator ale)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="recording/bare pairs and codec runs; medians are reported (runs of a few "
                         "seconds on a shared 2-core machine vary by 20%%)")  # fmt: skip
    args = ap.parse_args()
    game = args.game or (GAME if args.emulator == "retro" else "breakout")

    ratios, rec_runs, bare_runs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            out = Path(tmp) / f"round{r}"
            config = RecordConfig(
                out=out, game=game, emulator=args.emulator, policy=args.policy, episodes=args.episodes,
                max_steps=args.max_steps, frame_skip=FRAME_SKIP, port=0, seed=args.seed, progress=False,
            )  # fmt: skip
            record(config)
            files = find_episode_files([out])
            steps, rec_frames, rec_seconds, disk = [], 0, 0.0, 0
            for f in files:
                with EpisodeReader(f) as ep:
                    ts = ep.timestamps()
                    steps.append(ep.n_steps)
                    rec_frames += ep.n_steps * FRAME_SKIP
                    rec_seconds += float(ts[-1] - ts[0])
                    disk += f.stat().st_size
            bare_fps, _ = bare(steps, args.policy, args.seed, args.emulator, game)
            rec_runs.append(rec_frames / rec_seconds)
            bare_runs.append(bare_fps)
            ratios.append(rec_runs[-1] / bare_fps)
        # Lockstep for comparison: the same policy, played by the recorder (policy mode).
        lock = Path(tmp) / "lockstep"
        lock_config = RecordConfig(
            out=lock, game=game, emulator=args.emulator, policy=args.policy, episodes=args.episodes,
            max_steps=args.max_steps, frame_skip=FRAME_SKIP, port=0, seed=args.seed, progress=False,
        )  # fmt: skip
        record(lock_config, policy_factory=lambda prof, seed: make_policy(args.policy, prof, seed))
        lock_frames, lock_seconds = 0, 0.0
        for f in find_episode_files([lock]):
            with EpisodeReader(f) as ep:
                ts = ep.timestamps()
                lock_frames += ep.n_steps * FRAME_SKIP
                lock_seconds += float(ts[-1] - ts[0])
        lock_fps = lock_frames / lock_seconds
        # The codecs get every observation of the first round's episodes, in one file each.
        first = find_episode_files([Path(tmp) / "round0"])
        frames, ram = [], []
        for f in first:
            with EpisodeReader(f) as ep:
                frames.append(ep.frames())
                ram.append(ep.ram())
        all_frames, all_ram = np.concatenate(frames), np.concatenate(ram)
        runs = [compare_codecs(all_frames, all_ram, chunk_frames=32) for _ in range(args.rounds)]
    total_steps = sum(steps)
    raw_per_step = int(np.prod(all_frames.shape[1:])) + all_ram.shape[1]
    ours_per_step = disk / total_steps
    zstd = {k: float(np.median([r["zstd-3"][k] for r in runs])) for k in runs[0]["zstd-3"]}
    gzip = {k: float(np.median([r["gzip-4"][k] for r in runs])) for k in runs[0]["gzip-4"]}
    speedups = [r["zstd-3"]["write_fps"] / r["gzip-4"]["write_fps"] for r in runs]

    def runs_text(values: list[float], fmt: str) -> str:
        return "  (runs: " + ", ".join(format(v, fmt) for v in values) + ")"

    rows = [
        ("episodes / steps / frames per round", f"{len(files)} / {total_steps} / {total_steps * FRAME_SKIP}"),
        ("bare emulator frames/s (median)", f"{np.median(bare_runs):,.0f}" + runs_text(bare_runs, ",.0f")),
        ("recording frames/s, client policy (median)", f"{np.median(rec_runs):,.0f}" + runs_text(rec_runs, ",.0f")),
        ("recording / bare (median of rounds)", f"{np.median(ratios):.1%}  (target >= 85%)" + runs_text(ratios, ".1%")),
        ("lockstep (recorder's policy) frames/s, / bare", f"{lock_fps:,.0f}, {lock_fps / np.median(bare_runs):.1%}"),
        ("raw bytes/step (RGB frame + RAM)", f"{raw_per_step:,}"),
        ("our files: bytes/step", f"{ours_per_step:,.0f}"),
        ("our files: ratio to raw", f"{raw_per_step / ours_per_step:,.0f}x  (target >= 100x)"),
        (f"same {len(all_frames)} observations, zstd-3 writer: bytes/step", f"{zstd['bytes_per_step']:,.0f}"),
        ("same data, h5py gzip-4, same chunks: bytes/step", f"{gzip['bytes_per_step']:,.0f}"),
        ("gzip-4 size / ours", f"{gzip['bytes_per_step'] / zstd['bytes_per_step']:.2f}x  (target >= 1.8x)"),
        ("write frames/s: ours / gzip-4 (medians)", f"{zstd['write_fps']:,.0f} / {gzip['write_fps']:,.0f}"),
        ("write speed ours / gzip-4 (median)", f"{np.median(speedups):.1f}x  (target >= 10x)"
         + runs_text(speedups, ".1f")),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print(f"sonic-rl recording benchmark: {game} ({args.emulator}), frame skip {FRAME_SKIP}, policy {args.policy}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
