"""Learning benchmark (issue 10): does the agent learn, how much better than its data, than d3rlpy, and online?

    python benchmarks/learn.py --out bench/learn [--seeds 0 1 2] [--updates 3000] [--online-steps 6000]
    python benchmarks/learn.py --smoke --out /tmp/learn-smoke        # CI: tiny budgets, every phase
    python benchmarks/learn.py --out x --speed 6                     # each arm's updates/s only

One command runs a fixed protocol, every phase with a progress bar and an ETA:

1. **Behaviour data**: ``--random-episodes`` random-policy and ``--scripted-episodes``
   scripted-explorer episodes recorded on the embedded emulator with fixed seeds (1000, 2000);
   its mean return is the behaviour's. ``--data DIR`` reuses a folder recorded earlier.
2. **Offline**: every arm of ``--arms`` (``ARMS``: a named set of learner flags on top of
   ``BASE``) trains ``--updates`` updates per seed on those files, then plays
   ``--eval-episodes`` episodes with ``sonic-train eval``'s protocol (``trainer.evaluation.play``,
   epsilon ``--eval-epsilon``, step limit ``--eval-max-steps`` (default: the profile's),
   evaluation seed 10000 + seed).
3. **d3rlpy 2.8.1 DiscreteCQL** (unless ``--skip-d3rlpy``) trains on the identical preprocessed
   frames (our frame cache, 84x84 gray, 4-frame stacks by its ``FrameStackTransitionPicker``),
   rewards clipped the same way (``benchmarks/train.py``'s conversion), the same batch, learning
   rate, gamma, target period, CQL alpha and update budget, per seed, and plays through the same
   emulator and protocol (its greedy action from ``predict``, the same epsilon and seeds).
4. **Online**: the ``--online-arm`` run of each seed is copied and fine-tuned with
   ``sonic-train online``'s defaults (``--online-cql-alpha`` keeps a CQL term, as Cal-QL's
   fine-tuning does; ``--online-fraction`` sets the batches' online share) for ``--online-steps``
   env steps, in ``--online-evals``
   equal chunks, each followed by an evaluation (the "no eval below the offline policy at any
   checkpoint" check).

It prints a table (mean over seeds, 95% bootstrap CI of the mean over seeds, each seed's mean),
writes ``results.json``, ``results.md``, ``learning_curve.png`` (matplotlib) and ``settings.json``
(this command's arguments, the arms' full configs, versions, CPU) into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.train import D3RLPY, d3rlpy_dataset, ensure_d3rlpy  # noqa: E402
from dataset.atomic import atomic_write_text  # noqa: E402
from trainer.config import Algo, Encoder, EvalConfig, OnlineConfig, PreprocessConfig, TrainConfig, ValueLoss  # noqa: E402
from trainer.evaluation import evaluate, play  # noqa: E402
from trainer.frame_cache import FrameCache  # noqa: E402
from trainer.preprocessing import preprocess_frames  # noqa: E402

#: What every arm shares: the settings of docs/experiments.md's learning check (CQL alpha 0.2,
#: lr 2.5e-4, 3-step returns), with the target period scaled to the budget (``--target-update``).
BASE: dict[str, Any] = {"algo": Algo.CQL, "cql_alpha": 0.2, "lr": 2.5e-4, "n_step": 3, "batch_size": 32}

#: The arms: learner flags on top of BASE (docs/training.md says which were measured and why).
ARMS: dict[str, dict[str, Any]] = {
    "cql": {"layer_norm": False, "prev_action": False},  # the 2015 network (the defaults before issue 10)
    "cql+prev": {"layer_norm": False, "prev_action": True},
    "cql+ln+prev": {"layer_norm": True, "prev_action": True},
    "cql+ln+prev+shift": {"layer_norm": True, "prev_action": True, "random_shift": 4},
    "cql+ln+prev+hl": {"layer_norm": True, "prev_action": True, "value_loss": ValueLoss.HL_GAUSS},
    "cql+ln+prev+calql": {"layer_norm": True, "prev_action": True, "cal_ql": True},
    # Atari: a lost life ends the TD target (Nature DQN, DrQ(eps), BBF); nothing else changes.
    "cql+ln+prev+life": {"layer_norm": True, "prev_action": True, "life_loss_terminal": True},
    # Without the conservative term: uniform-random data covers every action evenly, the case
    # where CQL's pull towards the data's actions buys least (Kumar et al. 2020, sec. 3).
    "double+ln+prev+life": {"algo": Algo.DOUBLE, "layer_norm": True, "prev_action": True,
                            "life_loss_terminal": True},
    "impala+ln+prev": {"encoder": Encoder.IMPALA, "layer_norm": True, "prev_action": True},
}


def bootstrap_ci(values: list[float], n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values``."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    arr = np.asarray(values, dtype=np.float64)
    means = arr[rng.integers(0, len(arr), size=(n, len(arr)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    words = set(text.split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
    return " ".join(w for w in wanted if w in words)


# ----------------------------------------------------------------------------- phases


def emulator(game: str) -> str:
    """The embedded emulator that plays ``game`` (stable-retro for Genesis games, ale-py for the Atari 2600)."""
    from recorder.profile import load_profile

    return load_profile(game).embedded_emulators[0]


def record_behaviour(args: argparse.Namespace, data: Path) -> list[float]:
    """Record (or reuse) the behaviour data; returns every episode's return."""
    from dataset.catalog import find_episode_files
    from dataset.episode import EpisodeReader
    from recorder.recording import RecordConfig, record

    if args.data is None:
        for policy, n, seed in (("random", args.random_episodes, 1000), ("scripted", args.scripted_episodes, 2000)):
            if n and not (data / policy).is_dir():
                print(f"recording {n} {policy} episodes (seed {seed})", flush=True)
                part = data.with_name(data.name + f".{policy}.partial")
                shutil.rmtree(part, ignore_errors=True)
                record(RecordConfig(out=part, game=args.game, emulator=emulator(args.game), policy=policy, episodes=n,
                                    max_steps=args.max_steps, seed=seed, port=0, progress=True))  # fmt: skip
                data.mkdir(parents=True, exist_ok=True)
                part.rename(data / policy)
    returns = []
    for path in sorted(find_episode_files([args.data or data])):
        with EpisodeReader(path) as ep:
            returns.append(float(ep.episode_return))
    return returns


def train_config(args: argparse.Namespace, arm: str, seed: int, files: list[Path], cache: Path) -> TrainConfig:
    return TrainConfig(
        files=tuple(map(str, files)), updates=args.updates, seed=seed, device="cpu", cache_dir=str(cache),
        target_update=args.target_update, log_every=max(1, min(500, args.updates // 10)),
        checkpoint_every=args.updates, preprocess=PreprocessConfig(height=args.frame_size, width=args.frame_size),
        **{**BASE, **ARMS[arm]},
    )  # fmt: skip


def eval_config(args: argparse.Namespace, run: Path, seed: int) -> EvalConfig:
    return EvalConfig(run_dir=run, episodes=args.eval_episodes, epsilon=args.eval_epsilon, seed=10_000 + seed,
                      max_steps=args.eval_max_steps, progress=True)  # fmt: skip


class D3rlpyPolicy:
    """d3rlpy's greedy action (``predict``) as a recorder policy, epsilon-greedy like ``QPolicy``.

    The screen is preprocessed by the same function the frame cache used; the stack is the one
    d3rlpy trained on: ``FrameStackTransitionPicker`` pads an episode's first states with zeros.
    """

    def __init__(self, algo: Any, preprocess: PreprocessConfig, frame_stack: int, n_actions: int, *,
                 epsilon: float, seed: int) -> None:  # fmt: skip
        self.algo = algo
        self.preprocess = preprocess
        self.frame_stack = frame_stack
        self.n_actions = n_actions
        self.epsilon = epsilon
        self.policy_id = "d3rlpy-DiscreteCQL"
        self.metadata: dict[str, str] = {"policy": self.policy_id, "epsilon": str(epsilon)}
        self._rng = np.random.default_rng(seed)
        self._frames: list[np.ndarray] = []

    def reset(self) -> None:
        self._frames = []

    def act(self, obs: Any) -> int:
        frame = preprocess_frames(obs.frame[None], self.preprocess)[0]
        self._frames = ([np.zeros_like(frame)] * self.frame_stack + self._frames + [frame])[-self.frame_stack :]
        state = np.concatenate(self._frames, axis=0)[None]
        action = int(self.algo.predict(state)[0])
        if self.epsilon > 0 and self._rng.random() < self.epsilon:
            action = int(self._rng.integers(self.n_actions))
        return action


def train_d3rlpy(cfg: TrainConfig, dataset: Any, seed: int, desc: str) -> Any:
    import d3rlpy

    d3rlpy.seed(seed)
    algo = d3rlpy.algos.DiscreteCQLConfig(
        batch_size=cfg.batch_size, learning_rate=cfg.lr, gamma=cfg.gamma, target_update_interval=cfg.target_update,
        alpha=cfg.cql_alpha, observation_scaler=d3rlpy.preprocessing.PixelObservationScaler(), reward_scaler=None,
    ).create(device="cpu:0")  # fmt: skip
    algo.build_with_dataset(dataset)
    for _ in tqdm(range(cfg.updates), desc=desc, unit="upd", dynamic_ncols=True):
        algo.update(dataset.sample_transition_batch(cfg.batch_size))
    return algo


# ----------------------------------------------------------------------------- the protocol


@dataclasses.dataclass
class Results:
    behaviour: list[float] = dataclasses.field(default_factory=list)
    #: arm -> seed -> evaluation returns (offline).
    offline: dict[str, dict[int, list[float]]] = dataclasses.field(default_factory=dict)
    #: seed -> [(online env steps, evaluation returns)], the online arm's checkpoints after each chunk.
    online: dict[int, list[tuple[int, list[float]]]] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(dataclasses.asdict(self), indent=2) + "\n")


@contextmanager
def timed(results: Results, phase: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    results.seconds[phase] = results.seconds.get(phase, 0.0) + time.perf_counter() - t0


#: The run-copy name tag of each fine-tuning option (``--online-cql-alpha 0.2`` -> ``RUN-online-cql0.2``).
_VARIANT_TAGS = {"cql_alpha": "cql", "online_fraction": "frac"}


def run_protocol(args: argparse.Namespace) -> Results:
    from trainer.offline import train_offline
    from trainer.online import run_online

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    data, cache, runs = out / "data", out / "cache", out / "runs"
    results = Results()
    arms = list(args.arms) + (["d3rlpy"] if not args.skip_d3rlpy else [])
    plan = 1 + len(args.seeds) * (2 * len(arms) + (2 * args.online_evals if args.online_steps else 0))
    overall = tqdm(total=plan, desc="protocol", unit="phase", dynamic_ncols=True, position=0)

    def step(what: str) -> None:
        overall.set_postfix_str(what)
        overall.update(1)

    with timed(results, "record"):
        results.behaviour = record_behaviour(args, data)
    step("behaviour data")
    from dataset.catalog import find_episode_files

    files = sorted(find_episode_files([args.data or data]))
    d3_data = None
    for seed in args.seeds:
        for arm in args.arms:
            cfg = train_config(args, arm, seed, files, cache)
            run = runs / f"{arm}-s{seed}"
            with timed(results, f"offline {arm}"):
                if not (run / "config.json").exists() or _updates(run) < cfg.updates:
                    done = train_offline(cfg, run, resume=(run / "config.json").exists(), progress=True,
                                         tensorboard=False)  # fmt: skip
                    stop_if(done.interrupted)
            step(f"offline {arm} seed {seed}")
            with timed(results, f"eval {arm}"):
                report = evaluate(eval_config(args, run, seed))
                stop_if(len(report.returns) < args.eval_episodes)
            results.offline.setdefault(arm, {})[seed] = list(report.returns)
            step(f"eval {arm} seed {seed}: {report.mean_return:.1f}")
            results.save(out / "results.json")
        if not args.skip_d3rlpy:
            ensure_d3rlpy()  # installs d3rlpy==2.8.1 if missing (benchmarks/train.py's rule)
            cfg = train_config(args, "cql", seed, files, cache)  # the shared settings, no options
            if d3_data is None:
                fc = FrameCache.open(files, cfg.preprocess, cache)
                d3_data = d3rlpy_dataset(fc, None)  # 4-frame stacks, as benchmarks/train.py measures it
                n_actions = len(fc.info.action_names)
                frame_skip = fc.info.frame_skip
            torch.set_num_threads(1)
            with timed(results, "offline d3rlpy"):
                algo = train_d3rlpy(cfg, d3_data, seed, f"d3rlpy DiscreteCQL seed {seed}")
            step(f"offline d3rlpy seed {seed}")
            with timed(results, "eval d3rlpy"):
                policy = D3rlpyPolicy(algo, cfg.preprocess, cfg.frame_stack, n_actions, epsilon=args.eval_epsilon,
                                      seed=10_000 + seed)  # fmt: skip
                report = play(policy, game=args.game, frame_skip=frame_skip, config=eval_config(args, runs, seed))
                stop_if(len(report.returns) < args.eval_episodes)
            results.offline.setdefault("d3rlpy", {})[seed] = list(report.returns)
            step(f"eval d3rlpy seed {seed}: {report.mean_return:.1f}")
            results.save(out / "results.json")
        if args.online_steps:
            # OnlineConfig fields set by the fine-tuning options, and the name of the run copy they get
            # (none set: the defaults' copy keeps its old name).
            online_options = {field: value for field, value in (("cql_alpha", args.online_cql_alpha),
                                                                ("online_fraction", args.online_fraction))
                              if value is not None}  # fmt: skip
            variant = "".join(f"-{_VARIANT_TAGS[k]}{v:g}" for k, v in online_options.items())
            src, run = runs / f"{args.online_arm}-s{seed}", runs / f"{args.online_arm}-s{seed}-online{variant}"
            if not run.exists():
                shutil.copytree(src, run)
            chunk = args.online_steps // args.online_evals
            curve = results.online.setdefault(seed, [])
            curve.clear()
            for i in range(1, args.online_evals + 1):
                with timed(results, "online"):
                    online = run_online(OnlineConfig(
                        run_dir=str(run), emulator=emulator(args.game), steps=chunk * i, port=0, seed=seed,
                        device="cpu", max_steps=args.max_steps, progress_every_s=30.0, checkpoint_every=10**9,
                        tensorboard=False, **online_options,
                    ))  # fmt: skip
                    stop_if(online.interrupted)
                step(f"online seed {seed} {chunk * i} steps")
                with timed(results, "eval online"):
                    report = evaluate(eval_config(args, run, seed))
                    stop_if(len(report.returns) < args.eval_episodes)
                curve.append((chunk * i, list(report.returns)))
                step(f"eval online seed {seed} {chunk * i}: {report.mean_return:.1f}")
                results.save(out / "results.json")
    overall.close()
    return results


def stop_if(interrupted: bool) -> None:
    """Ctrl-C or SIGTERM reached a phase (it saved what it had): stop the protocol; the same command resumes."""
    if interrupted:
        print("\ninterrupted; run the same command to carry on (finished runs are reused)", file=sys.stderr)
        sys.exit(130)


def _updates(run: Path) -> int:
    from trainer.checkpoint import latest_checkpoint, load_checkpoint

    ckpt = latest_checkpoint(run)
    return int(load_checkpoint(ckpt)["updates"]) if ckpt is not None else 0


# ----------------------------------------------------------------------------- report


def summary_rows(results: Results) -> list[tuple[str, list[float], list[float]]]:
    """(what, per-seed means, all episode returns) for the table."""
    rows = [("behaviour (the data)", [statistics.fmean(results.behaviour)], results.behaviour)]
    for arm, by_seed in results.offline.items():
        rows.append((f"offline {arm}", [statistics.fmean(v) for v in by_seed.values()],
                     [x for v in by_seed.values() for x in v]))  # fmt: skip
    if results.online:
        n = min(len(c) for c in results.online.values())
        for i in range(n):
            steps = next(iter(results.online.values()))[i][0]
            per = [statistics.fmean(c[i][1]) for c in results.online.values()]
            rows.append((f"online +{steps} steps", per, [x for c in results.online.values() for x in c[i][1]]))
    return rows


def table(results: Results) -> str:
    behaviour = statistics.fmean(results.behaviour)
    lines = ["| policy | mean | 95% CI (bootstrap over seeds) | x behaviour | per seed | episodes |",
             "|---|---:|---|---:|---|---:|"]  # fmt: skip
    for what, per_seed, episodes in summary_rows(results):
        mean = statistics.fmean(per_seed)
        lo, hi = bootstrap_ci(per_seed)
        per = ", ".join(f"{v:.1f}" for v in per_seed) if "behaviour" not in what else "-"
        ratio = f"{mean / behaviour:.2f}" if behaviour > 0 else "-"
        lines.append(f"| {what} | {mean:.1f} | [{lo:.1f}, {hi:.1f}] | {ratio} | {per} | {len(episodes)} |")
    return "\n".join(lines)


def plot(results: Results, path: Path, updates: int) -> None:
    """Mean evaluation return (band: bootstrap CI over seeds) against training: offline updates, then online steps."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    behaviour = statistics.fmean(results.behaviour)
    ax.axhline(behaviour, color="gray", ls="--", label=f"behaviour data ({behaviour:.0f})")
    for arm, by_seed in results.offline.items():
        per = [statistics.fmean(v) for v in by_seed.values()]
        lo, hi = bootstrap_ci(per)
        mean = statistics.fmean(per)
        ax.errorbar([0], [mean], yerr=[[mean - lo], [hi - mean]], fmt="o", capsize=4, label=f"offline {arm}")
    if results.online:
        n = min(len(c) for c in results.online.values())
        xs = [0] + [next(iter(results.online.values()))[i][0] for i in range(n)]
        start = [statistics.fmean(results.offline[ARM_ONLINE[0]][s]) for s in results.online] if ARM_ONLINE else []
        series = [start] + [[statistics.fmean(c[i][1]) for c in results.online.values()] for i in range(n)]
        means = [statistics.fmean(p) for p in series]
        cis = [bootstrap_ci(p) for p in series]
        ax.plot(xs, means, marker="o", color="C3", label=f"online fine-tuning of {ARM_ONLINE[0]}")
        ax.fill_between(xs, [c[0] for c in cis], [c[1] for c in cis], color="C3", alpha=0.2)
    ax.set_xlabel(f"online environment steps (0 = after {updates} offline updates)")
    ax.set_ylabel("evaluation return (mean over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


#: The arm fine-tuned online (set in main, read by plot).
ARM_ONLINE: list[str] = []


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="Folder for data, runs and results (reused if there).")
    ap.add_argument("--game", default="Airstriker-Genesis-v0")
    ap.add_argument("--data", type=Path, help="Use these recorded episodes instead of recording.")
    ap.add_argument("--random-episodes", type=int, default=20)
    ap.add_argument("--scripted-episodes", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=1000, help="Step limit of recorded and online episodes.")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=["cql+ln+prev"], choices=list(ARMS))
    ap.add_argument("--updates", type=int, default=3000, help="Offline updates per arm and seed (d3rlpy too).")
    ap.add_argument("--target-update", type=int, default=500)
    ap.add_argument("--frame-size", type=int, default=84)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--eval-epsilon", type=float, default=0.05)
    ap.add_argument("--eval-max-steps", type=int, default=None, help="Default: the profile's step limit.")
    ap.add_argument("--online-arm", default=None, help="Arm fine-tuned online (default: the first of --arms).")
    ap.add_argument("--online-steps", type=int, default=6000, help="0: no online phase.")
    ap.add_argument("--online-evals", type=int, default=3, help="Evaluations during the online phase.")
    ap.add_argument("--online-cql-alpha", type=float, default=None,
                    help="Keep a CQL term of this weight while fine-tuning (default: sonic-train online's, 0); "
                         "the fine-tuned copies go to RUN-online-cqlALPHA.")  # fmt: skip
    ap.add_argument("--online-fraction", type=float, default=None,
                    help="Share of each fine-tuning batch from the online episodes (default: sonic-train online's, "
                         "0.5); the copies go to RUN-online[-cqlALPHA]-fracF.")  # fmt: skip
    ap.add_argument("--skip-d3rlpy", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="Tiny budgets for CI: every phase, seconds each.")
    ap.add_argument("--speed", type=float, default=0.0, metavar="SECONDS",
                    help="Only measure every arm's updates/s on a random batch for SECONDS each.")
    args = ap.parse_args(argv)
    if args.smoke:
        args.random_episodes, args.scripted_episodes, args.max_steps = 1, 1, 40
        args.seeds, args.updates, args.target_update, args.frame_size = [0, 1], 4, 2, 36
        args.eval_episodes, args.eval_max_steps, args.online_steps, args.online_evals = 1, 30, 40, 1
    args.online_arm = args.online_arm or args.arms[0]
    if args.online_arm not in args.arms:
        ap.error(f"--online-arm {args.online_arm} is not one of --arms")
    return args


def speed(seconds: float) -> None:
    """Updates/s of every arm on a fixed random batch (84x84, batch 32, one thread): the options' cost alone."""
    from trainer.learner import Learner

    g = torch.Generator().manual_seed(0)
    batch = (torch.randint(0, 256, (32, 2, 4, 84, 84), dtype=torch.uint8, generator=g),
             torch.randint(0, 6, (32,), generator=g), torch.rand(32, generator=g), torch.full((32,), 0.97),
             torch.randint(-1, 6, (32, 2), generator=g), torch.rand(32, generator=g))  # fmt: skip
    for arm, kw in ARMS.items():
        learner = Learner(TrainConfig(device="cpu", **{**BASE, **kw}), (4, 84, 84), 6, torch.device("cpu"))
        learner.update(*batch)
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds or n < 2:
            learner.update(*batch)
            n += 1
        print(f"{arm}: {n / (time.perf_counter() - t0):.1f} updates/s", flush=True)


def main(argv: list[str] | None = None) -> Results | None:
    args = parse_args(argv)
    if args.speed:
        torch.set_num_threads(1)
        speed(args.speed)
        return None
    ARM_ONLINE[:] = [args.online_arm]
    torch.set_num_threads(1)  # a shared machine: one thread beside the emulator (docs/training.md)
    settings = {
        "argv": sys.argv[1:] if argv is None else argv,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "arms": {a: train_config(args, a, 0, [], args.out / "cache").learning_dict() for a in args.arms},
        "d3rlpy": None if args.skip_d3rlpy else {"version": D3RLPY, "algo": "DiscreteCQL", "n_frames": 4},
        "online": OnlineConfig(run_dir="RUN", steps=args.online_steps).to_dict() if args.online_steps else None,
        "python": platform.python_version(), "torch": torch.__version__, "cpu_flags": cpu_flags(),
        "machine": platform.machine(), "commit": _git_rev(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "settings.json").write_text(json.dumps(settings, indent=2, default=str) + "\n")
    results = run_protocol(args)
    results.save(args.out / "results.json")
    text = table(results)
    seconds = ", ".join(f"{k} {v / 60:.1f} min" for k, v in results.seconds.items())
    (args.out / "results.md").write_text(text + f"\n\nwall time: {seconds}\n")
    plot(results, args.out / "learning_curve.png", args.updates)
    print("\n" + text + f"\n\nwall time: {seconds}\nwritten: {args.out / 'results.md'}, "
          f"{args.out / 'learning_curve.png'}, {args.out / 'settings.json'}")  # fmt: skip
    return results


def _git_rev() -> str:
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return git.stdout.strip()


if __name__ == "__main__":
    main()
