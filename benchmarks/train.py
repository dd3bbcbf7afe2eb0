"""Offline trainer benchmark: replay sampling, our updates, and d3rlpy 2.8.1's, on the same data.

    python benchmarks/train.py [--data DIR] [--steps 3000] [--seconds 4] [--rounds 3] [--device cpu]
                               [--no-amp] [--threads N] [--batches 32,256] [--algos dqn,double,cql]

Prints, in one run on this machine:
* the CPU (model, the SIMD flags that matter, cores, clock), the load average before and after;
* sampled transitions/s of the replay store (batch 32 and 256);
* updates/s and trained transitions/s of our DQN, Double DQN and CQL (batch 32, 256);
* the same for d3rlpy 2.8.1's DoubleDQN and DiscreteCQL over the same preprocessed
  frames (84x84 gray), the same Nature CNN (d3rlpy's default pixel encoder), the same
  batch, with its frames stacked by ``FrameStackTransitionPicker(n_frames=4)``.
* each contender's FLOPs per update (forward and backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` over one real update: convolutions, their
  backward with only the gradients it computes, matrix products) and its achieved
  GFLOP/s as a share of the float32 FMA peak of the cores torch uses;
* the targets of issue 13: our Double DQN / d3rlpy DoubleDQN >= 1.5x at each batch.

Updates/s include sampling the batch, as a training loop does. Contenders are measured
in turn, in short windows repeated ``--rounds`` times, and the best window is reported
with the median beside it: on a shared machine the load changes from minute to minute.
Each window also measures the process's CPU time: "per CPU-s" is updates per second of
CPU time, which other processes on the machine disturb much less than wall-clock time
(with one torch thread; with more, OpenMP's spin-waiting counts as CPU time too).

The peak is ``cores x GHz x FMA units per core x float32 lanes x 2`` (an FMA is two
FLOPs): lanes 16 with AVX-512 (``avx512f``), 8 with AVX2+FMA, else 4; GHz the clock
/proc/cpuinfo reports (a VM shows its nominal clock; turbo may run higher, so the share
may be overstated by that ratio); FMA units per core 2 (``--fma-units``: e.g. Zen 5 and
most Xeon Gold/Platinum cores have two 512-bit FMA pipes; Zen 4 runs AVX-512 on two
256-bit pipes, use ``--fma-units 1`` there). ``--no-amp`` trains in float32 even on a
CPU with AVX512-BF16, to measure what a float32-only CPU gets.

d3rlpy is not a dependency of sonic-rl: the benchmark installs d3rlpy==2.8.1 into
the running environment with pip if it is missing, and stops if that would change
the installed torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.config import Algo, TrainConfig  # noqa: E402
from trainer.frame_cache import FrameCache  # noqa: E402
from trainer.learner import (  # noqa: E402
    DeviceFeeder,
    Learner,
    cpu_supports_bf16,
    resolve_device,
    seed_everything,
)
from trainer.offline import open_store  # noqa: E402
from trainer.replay import ReplayStore  # noqa: E402

D3RLPY = "d3rlpy==2.8.1"
#: The CPU flags that decide the float32/bf16 kernels oneDNN picks (the report quotes them).
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@dataclasses.dataclass(frozen=True)
class Cpu:
    """What /proc/cpuinfo says about this machine, and the float32 FMA peak it implies."""

    model: str
    flags: tuple[str, ...]
    cores: int
    ghz: float

    @classmethod
    def here(cls) -> Cpu:
        model, flags, mhz = "unknown", (), 0.0
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name" and model == "unknown":
                    model = value
                elif key == "flags" and not flags:
                    flags = tuple(f for f in SIMD_FLAGS if f in value.split())
                elif key == "cpu MHz" and not mhz:
                    mhz = float(value)
        except OSError:  # not Linux: no peak, the rest of the benchmark runs
            pass
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return cls(model, flags, cores, mhz / 1000)

    @property
    def lanes(self) -> int:
        """float32 lanes of one FMA instruction."""
        if "avx512f" in self.flags:
            return 16
        return 8 if {"avx2", "fma"} <= set(self.flags) else 4

    def peak_gflops(self, cores: int, fma_units: int) -> float:
        """cores x GHz x FMA units x lanes x 2 FLOPs per FMA (0 when the clock is unknown)."""
        return cores * self.ghz * fma_units * self.lanes * 2


def ensure_d3rlpy() -> object:
    try:
        return importlib.import_module("d3rlpy")
    except ImportError:
        pass
    before = torch.__version__
    print(f"installing {D3RLPY} for the comparison (pip, into {sys.prefix})", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", D3RLPY], check=True)
    after = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True,
        check=True,
    ).stdout.strip()
    if after != before:
        sys.exit(f"installing {D3RLPY} replaced torch {before} with {after}; reinstall torch {before}")
    return importlib.import_module("d3rlpy")


def record_data(out: Path, steps: int) -> None:
    episodes = max(1, steps // 300)
    subprocess.run(
        [sys.executable, "-m", "recorder.cli", "record", "--emulator", "retro", "--game", "Airstriker-Genesis-v0",
         "--policy", "random", "--episodes", str(episodes), "--max-steps", "300", "--out", str(out),
         "--port", "0", "--no-progress"],
        check=True, cwd=ROOT, stderr=subprocess.DEVNULL,
    )


def rate(fn: Callable[[], object], seconds: float, min_calls: int = 5) -> tuple[float, float]:
    """Calls per wall-clock second and per CPU second of ``fn`` over about ``seconds`` (after 2 warm-up calls)."""
    for _ in range(2):
        fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while n < min_calls or time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0), n / max(time.process_time() - c0, 1e-9)


def _onednn_linear_flops(x_shape: Sequence[int], w_shape: Sequence[int], *_args: object, **_kw: object) -> int:
    """x @ w.T: 2 FLOPs per multiply-add (trainer/onednn_linear.py's op, unknown to torch's counter)."""
    return 2 * math.prod(x_shape) * w_shape[0]


def flops_of(fn: Callable[[], object]) -> float:
    """FLOPs of one call of ``fn`` (forward and backward), as torch's FLOP counter sees them."""
    custom = {}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        custom[torch.ops.mkldnn._linear_pointwise] = _onednn_linear_flops
    with FlopCounterMode(display=False, custom_mapping=custom) as counter:
        fn()
    return float(counter.get_total_flops())


def ours(store: ReplayStore, algo: Algo, batch: int, device: torch.device, amp: bool) -> Callable[[], None]:
    """One training-loop iteration of our learner: sample a batch, update."""
    # d3rlpy's network: the Nature CNN without LayerNorm or the previous action (our defaults add them).
    cfg = TrainConfig(algo=algo, batch_size=batch, device=device.type, amp=amp, layer_norm=False, prev_action=False)
    rng = seed_everything(0)
    learner = Learner(cfg, store.state_shape, len(store.info.action_names), device)  # type: ignore[union-attr]
    feeder = DeviceFeeder(store, rng, batch, device)

    def step() -> None:
        learner.update(*feeder.next())
        feeder.release()
        if device.type == "cuda" and learner.updates % 50 == 0:
            torch.cuda.synchronize()  # keep the queue short so a window's count is real work

    return step


def d3rlpy_dataset(cache: FrameCache, d3: object) -> object:
    """The cached frames as a d3rlpy MDPDataset with 4-frame stacking at sample time."""
    import d3rlpy  # noqa: F401  (ensured above)
    from d3rlpy.dataset import FrameStackTransitionPicker, MDPDataset

    steps = cache.steps.episode_steps
    # d3rlpy stores one observation per step (it has no final observation per episode).
    starts = np.concatenate([[0], np.cumsum(steps + 1)[:-1]])
    obs_rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, steps, strict=True)])
    ends = np.cumsum(steps) - 1
    timeouts = cache.steps.truncated.copy()
    timeouts[ends] |= ~cache.steps.terminated[ends]
    return MDPDataset(
        observations=np.asarray(cache.frames[obs_rows]),
        actions=cache.steps.actions.astype(np.int64),
        rewards=np.clip(cache.steps.rewards, -1, 1).astype(np.float32),
        terminals=cache.steps.terminated.astype(np.float32),
        timeouts=timeouts.astype(np.float32),
        transition_picker=FrameStackTransitionPicker(n_frames=4),
    )


def theirs(dataset: object, name: str, batch: int, device: torch.device) -> Callable[[], None]:
    """One iteration of d3rlpy's own fit loop: sample a transition batch, update."""
    import d3rlpy

    kwargs = dict(
        batch_size=batch, learning_rate=1e-4, target_update_interval=2000,
        observation_scaler=d3rlpy.preprocessing.PixelObservationScaler(),
        reward_scaler=None,
    )
    cfg = (d3rlpy.algos.DoubleDQNConfig if name == "DoubleDQN" else d3rlpy.algos.DiscreteCQLConfig)(**kwargs)
    algo = cfg.create(device="cuda:0" if device.type == "cuda" else "cpu:0")
    algo.build_with_dataset(dataset)
    return lambda: algo.update(dataset.sample_transition_batch(batch))  # type: ignore[attr-defined]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Episode folder (default: record a fresh one).")
    parser.add_argument("--steps", type=int, default=3000, help="Steps to record without --data.")
    parser.add_argument("--seconds", type=float, default=4.0, help="Time per measurement window.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved measurement rounds.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default).")
    parser.add_argument("--no-amp", action="store_true", help="float32 only: no bf16 autocast for ours.")
    parser.add_argument("--batches", default="32,256", help="Batch sizes, comma-separated.")
    parser.add_argument("--algos", default="dqn,double,cql", help="Our algorithms, comma-separated.")
    parser.add_argument("--fma-units", type=int, default=2, help="FMA pipes per core, for the peak (see above).")
    parser.add_argument("--skip-d3rlpy", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batches = [int(b) for b in args.batches.split(",")]
    algos = [Algo(a) for a in args.algos.split(",")]
    amp = not args.no_amp
    d3 = None if args.skip_d3rlpy else ensure_d3rlpy()
    cpu = Cpu.here()
    threads = torch.get_num_threads()
    peak = cpu.peak_gflops(min(threads, cpu.cores), args.fma_units) if device.type == "cpu" else 0.0
    print(f"cpu: {cpu.model}, {cpu.cores} cores at {cpu.ghz:.2f} GHz, flags {' '.join(cpu.flags) or '-'}; "
          f"float32 peak of {min(threads, cpu.cores)} core(s) = {min(threads, cpu.cores)} x {cpu.ghz:.2f} GHz x "
          f"{args.fma_units} FMA x {cpu.lanes} lanes x 2 = {peak:.0f} GFLOP/s", flush=True)
    print(f"load average at start: {load_average()}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            print(f"recording {args.steps} Airstriker steps (random policy) ...", flush=True)
            record_data(data, args.steps)
        files = sorted(data.glob("*.h5"))
        cfg = TrainConfig(files=tuple(map(str, files)), cache_dir=str(Path(tmp) / "cache"))
        store = open_store(cfg)
        cache = FrameCache.open(files, cfg.preprocess, Path(cfg.cache_dir))
        bf16 = amp and (cpu_supports_bf16() or device.type == "cuda")
        print(f"data: {len(files)} episodes, {len(store)} transitions, {device}, "
              f"{threads} torch threads, torch {torch.__version__}, "
              f"bf16 autocast {'on' if bf16 else 'off'}", flush=True)

        # Every contender is built once, then measured in short windows taken in turn,
        # ``--rounds`` times: on a shared machine the load drifts, and interleaving gives
        # each contender the same conditions. The best window is reported (as timeit
        # does: slower windows measure the other processes, not the code).
        contenders: dict[tuple[str, int], Callable[[], object]] = {}
        rng = np.random.default_rng(0)
        dataset = d3rlpy_dataset(cache, d3) if d3 is not None else None
        for b in batches:
            contenders[("sonic-rl replay sampling", b)] = lambda b=b: store.sample(b, rng)
            if dataset is not None:
                contenders[("d3rlpy 2.8.1 sampling", b)] = (
                    lambda b=b: dataset.sample_transition_batch(b)  # type: ignore[attr-defined]
                )
            for algo in algos:
                contenders[(f"sonic-rl {algo.value}", b)] = ours(store, algo, b, device, amp)
            if dataset is not None:
                for name in ("DoubleDQN", "DiscreteCQL"):
                    contenders[(f"d3rlpy 2.8.1 {name}", b)] = theirs(dataset, name, b, device)
        flops = {k: flops_of(fn) for k, fn in contenders.items() if "sampling" not in k[0]}
        walls: dict[tuple[str, int], list[float]] = {k: [] for k in contenders}
        cpus: dict[tuple[str, int], list[float]] = {k: [] for k in contenders}
        for r in range(args.rounds):
            for (what, b), fn in contenders.items():
                seconds = args.seconds / 2 if "sampling" in what else args.seconds
                wall, per_cpu = rate(fn, seconds)
                walls[(what, b)].append(wall)
                cpus[(what, b)].append(per_cpu)
            print(f"round {r + 1}/{args.rounds} (load {load_average()}): "
                  + ", ".join(f"{w.removeprefix('sonic-rl ')}@{b} {v[-1]:.1f}"
                              for (w, b), v in walls.items() if "sampling" not in w), flush=True)

    print(f"load average at the end: {load_average()}")
    print("\n| what | batch | updates/s (best) | median | per CPU-s (best) | transitions/s | GFLOP/update "
          "| GFLOP/s | share of peak |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = {k: max(v) for k, v in walls.items()}
    for (what, b), v in sorted(walls.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if "sampling" in what:
            print(f"| {what} | {b} |  |  |  | {best[(what, b)] * b:,.0f} |  |  |  |")
            continue
        gflop = flops[(what, b)] / 1e9
        achieved = gflop * best[(what, b)]
        share = f"{100 * achieved / peak:.0f}%" if peak else "-"
        print(f"| {what} | {b} | {best[(what, b)]:.1f} | {statistics.median(v):.1f} | {max(cpus[(what, b)]):.1f} "
              f"| {best[(what, b)] * b:,.0f} | {gflop:.2f} | {achieved:.0f} | {share} |")
    print()
    for b in batches:
        if ("sonic-rl cql", b) in best:
            ratio = best[("sonic-rl replay sampling", b)] / best[("sonic-rl cql", b)]
            print(f"batch {b}: replay sampling / CQL training, transitions/s = {ratio:.0f}x (target >= 20x)")
        for ours_name, their in (("sonic-rl double", "d3rlpy 2.8.1 DoubleDQN"),
                                 ("sonic-rl cql", "d3rlpy 2.8.1 DiscreteCQL")):
            if (their, b) in best and (ours_name, b) in best:
                print(f"batch {b}: {ours_name} / {their} updates/s = "
                      f"{best[(ours_name, b)] / best[(their, b)]:.2f}x wall-clock, "
                      f"{max(cpus[(ours_name, b)]) / max(cpus[(their, b)]):.2f}x per CPU-s (target >= 1.5x)")
    gpu_target(best, device)


def gpu_target(best: dict[tuple[str, int], float], device: torch.device) -> None:
    """Issue 13's GPU target: >= 5,000 updates/s at batch 32 with the Nature CNN on one modern GPU."""
    if device.type != "cuda":
        return
    name = torch.cuda.get_device_name()
    for (what, b), rate_ in sorted(best.items()):
        if b == 32 and what.startswith("sonic-rl") and "sampling" not in what:
            print(f"{name}: {what} at batch 32 = {rate_:,.0f} updates/s (target >= 5,000)")


if __name__ == "__main__":
    main()
