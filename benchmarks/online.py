"""Online throughput: do the actor's forward passes and the learner starve each other? (issue 13 item 4)

    python benchmarks/online.py [--clients 1,2,4] [--seconds 20] [--device cpu] [--threads N] [--learner-nice 10]

Prints, in one run, for each number N of embedded stable-retro clients (Airstriker, frame skip 4):
* bare: N emulator processes stepping alone (random actions, screen and RAM read every step,
  as the client does), their summed env steps/s;
* online: ``sonic-train online`` (``trainer.online.run_online``) with N clients and no
  update-to-step cap (``--updates-per-step 0``: actor and learner both run flat out), its env
  steps/s (all clients' episode files, first to last stored observation, so the clients'
  start-up is not counted) and its learner's updates/s (the median of the run's metrics.csv
  intervals, every 10 updates, the first two (warm-up) left out);
* play alone: the same ``run_online`` with the learner held back (an update-to-step cap of 1e-9:
  it only reads the finished episode files), the env steps/s of lockstep play with the actor's
  forward passes and nothing else, which separates what the learner costs the actors from what
  lockstep and inference cost on their own;
* the ratios: online env steps/s / bare and / play alone, and online updates/s / the learner alone
  (the same learner, the same mixed batches' offline half, no clients: ``train_offline`` on the run).

The run it fine-tunes is made first: a few random-policy episodes recorded and 20 offline
updates. Each N gets a fresh copy of it. Figures are one window each; on a shared machine
run it twice and say the load (printed).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GAME = "Airstriker-Genesis-v0"
FRAME_SKIP = 4
#: The update-to-step cap that holds the learner back for "play alone": floor(1e-9 * steps) is 0.
HELD = 1e-9


def bare_worker(seconds: float, seed: int) -> None:
    """One emulator doing what an embedded client does per step, minus the recorder; prints steps and seconds."""
    from recorder.profile import load_profile
    from recorder.retro_client import RetroEmulator

    profile = load_profile(GAME)
    emu = RetroEmulator(GAME)
    masks = profile.action_set(emu.buttons).masks
    rng = np.random.default_rng(seed)
    steps, t0 = 0, time.perf_counter()
    try:
        emu.reset()
        while time.perf_counter() - t0 < seconds:
            emu.step(masks[int(rng.integers(len(masks)))], FRAME_SKIP)
            np.ascontiguousarray(emu.screen())
            emu.ram().copy()
            steps += 1
    finally:
        emu.close()
    print(steps, time.perf_counter() - t0, flush=True)


def bare(n: int, seconds: float) -> float:
    """Summed env steps/s of ``n`` bare emulator processes running at once."""
    procs = [
        subprocess.Popen([sys.executable, __file__, "--bare-worker", str(seconds), str(i)], stdout=subprocess.PIPE,
                         text=True, cwd=ROOT)
        for i in range(n)
    ]
    total = 0.0
    for p in procs:
        out, _ = p.communicate()
        steps, elapsed = out.split()
        total += int(steps) / float(elapsed)
    return total


def make_run(tmp: Path, device: str) -> Path:
    from recorder.recording import RecordConfig, record
    from trainer.config import TrainConfig
    from trainer.offline import train_offline

    data = tmp / "data"
    record(RecordConfig(out=data, game=GAME, emulator="retro", policy="random", episodes=3, max_steps=200,
                        frame_skip=FRAME_SKIP, port=0, seed=0, progress=False))  # fmt: skip
    run = tmp / "run"
    cfg = TrainConfig(files=tuple(str(f) for f in sorted(data.glob("*.h5"))), updates=20, log_every=10,
                      checkpoint_every=20, device=device, cache_dir=str(tmp / "cache"))  # fmt: skip
    train_offline(cfg, run, progress=False, tensorboard=False)
    return run


def logged_rate(run: Path, after: int) -> float:
    """Median updates/s of the run's metrics.csv rows past update ``after`` (steady state: not the first row)."""
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    rates = [float(r["updates_per_s"]) for r in rows if int(r["update"]) > after][2:]
    return statistics.median(rates) if rates else 0.0


def learner_alone(run: Path, seconds: float) -> float:
    """Updates/s of the run's learner with no clients (offline training on the run's data)."""
    from trainer.config import TrainConfig
    from trainer.offline import train_offline

    cfg = TrainConfig.load(run / "config.json")
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        result = train_offline(dataclasses.replace(cfg, updates=10**9, checkpoint_every=10**9), run, resume=True,
                               explicit=["updates", "checkpoint_every"], progress=False, tensorboard=False,
                               stop=stop)  # fmt: skip
    finally:
        timer.cancel()
    # A slow window logs too few rows for a steady-state median: the whole window's rate then.
    return logged_rate(run, result.start_update) or result.updates_per_s


def online(
    run: Path, clients: int, seconds: float, device: str, nice: int, cap: float = 0.0
) -> tuple[float, float, float]:
    """(env steps/s, updates/s, mean actor batch) of ``sonic-train online`` with ``clients`` clients for ``seconds``.

    ``cap`` is ``--updates-per-step`` (0: the learner runs flat out), ``nice`` ``--learner-nice``.
    """
    from dataset.catalog import find_episode_files
    from dataset.episode import EpisodeReader
    from trainer.checkpoint import latest_checkpoint, load_checkpoint
    from trainer.config import OnlineConfig
    from trainer.online import run_online

    out = run.parent / f"online-{clients}"
    start = int(load_checkpoint(latest_checkpoint(run))["updates"])  # type: ignore[arg-type]
    config = OnlineConfig(run_dir=str(run), emulator="retro", clients=clients, out=str(out), steps=10**9,
                          updates_per_step=cap, learner_nice=nice, port=0, device=device, tensorboard=False,
                          progress_every_s=10**6)  # fmt: skip
    # Ctrl-C after the window: the session saves its open episodes (truncated) and a checkpoint.
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        result = run_online(config)
    finally:
        timer.cancel()
    steps, first, last = 0, float("inf"), 0.0
    for f in find_episode_files([out]):
        with EpisodeReader(f) as ep:
            ts = ep.timestamps()
            steps += ep.n_steps
            first, last = min(first, float(ts[0])), max(last, float(ts[-1]))
    return steps / max(last - first, 1e-9), logged_rate(run, start), result.mean_batch


def main() -> None:
    from trainer.config import OnlineConfig

    default_nice = next(f.default for f in dataclasses.fields(OnlineConfig) if f.name == "learner_nice")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,2,4", help="Numbers of clients, comma-separated.")
    ap.add_argument("--seconds", type=float, default=20.0, help="Window per measurement.")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--learner-nice", type=int, default=default_nice,
                    help="The learner thread's nice increment (0: the actors' priority, as before issue 13 item 4).")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    ap.add_argument("--bare-worker", nargs=2, metavar=("SECONDS", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_worker:
        bare_worker(float(args.bare_worker[0]), int(args.bare_worker[1]))
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads, device {args.device}, "
          f"learner nice +{args.learner_nice}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = make_run(tmp, args.device)
        alone_run = tmp / "alone" / "run"
        shutil.copytree(base, alone_run)
        alone = learner_alone(alone_run, args.seconds)
        print(f"learner alone: {alone:.1f} updates/s", flush=True)
        for n in (int(c) for c in args.clients.split(",")):
            run, play_run = tmp / f"n{n}" / "run", tmp / f"n{n}-play" / "run"
            shutil.copytree(base, run)
            shutil.copytree(base, play_run)
            bare_rate = bare(n, args.seconds / 2)
            play, _, _ = online(play_run, n, args.seconds, args.device, args.learner_nice, cap=HELD)
            steps, updates, batch = online(run, n, args.seconds, args.device, args.learner_nice)
            rows.append((n, bare_rate, play, steps, updates, batch))
            print(f"{n} client(s): bare {bare_rate:.0f} steps/s; play alone {play:.0f} steps/s "
                  f"({play / bare_rate:.0%} of bare); online {steps:.0f} steps/s ({steps / bare_rate:.0%} of bare, "
                  f"{steps / play:.0%} of play alone), {updates:.1f} updates/s ({updates / alone:.0%} of alone), "
                  f"actor batch {batch:.2f}; load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    print("\n| clients | bare env steps/s | play alone | of bare | online env steps/s | of bare | of play alone "
          "| online updates/s | of learner alone | mean actor batch |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for n, bare_rate, play, steps, updates, batch in rows:
        print(f"| {n} | {bare_rate:.0f} | {play:.0f} | {play / bare_rate:.0%} | {steps:.0f} | "
              f"{steps / bare_rate:.0%} | {steps / play:.0%} | {updates:.1f} | {updates / alone:.0%} | {batch:.2f} |")
    print(f"\nlearner alone: {alone:.1f} updates/s")


if __name__ == "__main__":
    main()
