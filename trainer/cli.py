"""``sonic-train``: train a Q-network offline from recorded episodes, fine-tune it online, evaluate it.

Every command's flags are its config dataclass (``trainer.config``, through
``trainer.flags``): names, defaults and help are written once, on the fields.
Errors a user can fix reach them as one line (``error: ...``) with exit status 2.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import click

from dataset.errors import ConfigError, DatasetError
from recorder.console import run_cli
from recorder.progress import setup_logging
from trainer import flags
from trainer.config import Algo, EvalConfig, OnlineConfig, TrainConfig
from trainer.plot import plot

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sonic-rl")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))  # fmt: skip
def cli(log_level: str) -> None:
    """Offline training (DQN, Double DQN, CQL) over episodes recorded by sonic-rec, online fine-tuning, evaluation.

    \b
    Train:      sonic-train offline data/*.h5 --run runs/air
    Carry on:   sonic-train offline --run runs/air --resume
    Play:       sonic-train eval runs/air --episodes 5
    On BizHawk: sonic-train eval runs/air --emulator none   (then Connect the tool in policy mode)
    Fine-tune:  sonic-train online --resume runs/air --emulator retro
    Scratch:    sonic-train online --run runs/new --emulator retro --game Airstriker-Genesis-v0
    """
    setup_logging(log_level)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True,
              help="Run folder: checkpoints, metrics.csv, tb/ and config.json go here.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --run from its latest checkpoint (its config.json holds the files and flags).")
@flags.options(TrainConfig)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--ddp", type=click.IntRange(min=1), default=None, metavar="N",
              help="Data-parallel over N local processes (torch.distributed: gloo on CPU, NCCL with one GPU each); "
                   "--batch-size is the global batch. Under torchrun the ranks come from torchrun.")
@click.pass_context
def offline(ctx: click.Context, paths: tuple[Path, ...], run_dir: Path, resume: bool, no_progress: bool,
            ddp: int | None, **opts: Any) -> None:  # fmt: skip
    """Train from episode files, folders or globs PATHS (e.g. data/*.h5).

    Ctrl-C (or SIGTERM) saves a checkpoint at the current update; --resume carries on from it.
    """
    from dataset.catalog import find_episode_files
    from trainer.distributed import Ranks, launch_local, strip_ddp_flag
    from trainer.offline import train_offline

    ranks = Ranks.from_env()
    if ranks is None and ddp is not None and ddp > 1:
        sys.exit(launch_local(ddp, strip_ddp_flag(sys.argv[1:])))
    if ranks is not None and ddp is not None and ddp != ranks.world_size:
        raise ConfigError(f"--ddp {ddp} differs from torchrun's {ranks.world_size} processes; "
                          "drop --ddp under torchrun")  # fmt: skip

    files: list[Path] = []
    if paths:
        files = sorted(find_episode_files(paths))
        if not files:
            raise DatasetError(
                f"no episode files matched {' '.join(map(str, paths))}; pass .h5 files recorded by sonic-rec"
            )
    elif not resume:
        raise DatasetError("no episode files given; pass .h5 files, folders or globs (e.g. data/*.h5)")
    config = flags.build(TrainConfig, opts, files=tuple(str(f) for f in files))
    explicit = list(flags.given(ctx, TrainConfig))
    if paths:
        explicit.append("files")
    finished = False
    try:
        result = train_offline(config, run_dir, resume=resume, explicit=explicit, progress=not no_progress,
                               ranks=ranks)  # fmt: skip
        finished = True
    finally:
        if ranks is not None:
            ranks.close(finished)
    if ranks is not None and not ranks.is_main:  # rank 0 reports
        if result.interrupted:
            sys.exit(130)
        return
    total = TrainConfig.load(run_dir / "config.json").updates
    if result.updates == result.start_update:
        click.echo(f"nothing to do: {run_dir} already has {result.updates} updates (--updates {total}); "
                   f"raise --updates to go on; checkpoint {result.checkpoint}")  # fmt: skip
        return
    m = result.last_metrics
    loss = f"; loss {m['loss']:.4f}, mean Q {m['q_mean']:.3f}" if m else ""
    click.echo(f"trained {result.updates} updates ({result.updates_per_s:.1f} updates/s){loss}; "
               f"checkpoint {result.checkpoint}")  # fmt: skip
    if result.interrupted:
        click.echo(f"interrupted at update {result.updates} of {total}; carry on with: "
                   f"sonic-train offline --run {run_dir} --resume", err=True)  # fmt: skip
        sys.exit(130)


@cli.command("eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@flags.options(EvalConfig)
def eval_(run_dir: Path, **opts: Any) -> None:
    """Play the run's Q-network greedily on an embedded emulator, or on external emulator clients such as the
    BizHawk tool (--emulator none); print returns and lengths. The run plays the game profile it stored."""
    from trainer.evaluation import evaluate

    config = flags.build(EvalConfig, opts, run_dir=run_dir)
    report = evaluate(config)
    for i, (ret, length) in enumerate(zip(report.returns, report.lengths, strict=True)):
        click.echo(f"episode {i}: return {ret:.2f}, length {length}")
    click.echo(
        f"mean return {report.mean_return:.2f} (std {report.std_return:.2f}), median {report.median_return:.2f}; "
        f"mean length {report.mean_length:.1f}, median {report.median_length:.1f}"
    )
    if config.record_dir is not None:
        click.echo(f"episodes saved in {config.record_dir}")


#: TrainConfig fields that online sets from its own flags of the same name (or that a new online run has none of).
_ONLINE_OWN = ("files", "updates", "seed", "device", "cql_alpha", "checkpoint_every", "keep_checkpoints", "cache_dir")


@cli.command("online")
@click.option("--resume", "run_dir", type=click.Path(path_type=Path),
              help="Run folder to continue: trained by sonic-train offline, or started by online --run.")
@click.option("--run", "new_run", type=click.Path(path_type=Path),
              help="New run folder: learn --game from scratch, no offline data (the learner flags below apply).")
@flags.options(OnlineConfig)
@flags.options(TrainConfig, exclude=_ONLINE_OWN)
@click.pass_context
def online(ctx: click.Context, run_dir: Path | None, new_run: Path | None, **opts: Any) -> None:
    """Fine-tune a run by playing (--resume RUN), or learn a game from scratch (--run NEW --game GAME).

    Record new episodes with the current network and keep training on them.
    Ctrl-C (or SIGTERM) saves the open episodes (as truncated) and a checkpoint; the same command carries on
    (with --resume RUN).
    """
    from trainer.online import run_online

    if (run_dir is None) == (new_run is None):
        raise click.UsageError("pass --resume RUN (continue a run) or --run NEW (learn from scratch), not both")
    config = flags.build(OnlineConfig, opts, run_dir=str(run_dir or new_run))
    train = None
    typed = {k: v for k, v in flags.given(ctx, TrainConfig).items() if k.split(".")[0] not in _ONLINE_OWN}
    if new_run is not None:
        # From scratch the CQL term has nothing to be conservative about: Double DQN unless --algo says so.
        algo = {} if "algo" in typed else {"algo": Algo.DOUBLE}
        train = flags.build(TrainConfig, opts, seed=config.seed, device=config.device,
                            checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
                            **algo)  # fmt: skip
    elif typed:
        raise ConfigError(f"{', '.join(sorted(set(typed.values())))}: a resumed run keeps its config.json; "
                          "these apply to a new run (--run)")  # fmt: skip
    result = run_online(config, train)
    ret = f"{statistics.fmean(result.returns):.2f}" if result.returns else "-"
    click.echo(
        f"online: {result.env_steps} steps ({result.env_steps_per_s:.1f}/s), {result.updates} updates "
        f"({result.updates_per_s:.1f}/s), {result.episodes} episodes, mean return {ret}; run totals "
        f"{result.total_env_steps} steps, {result.total_updates} updates; actor batch {result.mean_batch:.2f}; "
        f"checkpoint {result.checkpoint}"
    )
    if result.interrupted:
        click.echo("interrupted; run the same command to carry on", err=True)
        sys.exit(130)


cli.add_command(plot)


def main() -> None:
    """Console entry point (``sonic-train``): one line for a user's mistake (recorder.console)."""
    run_cli(cli, interrupted="interrupted; resume with --resume")




if __name__ == "__main__":  # python -m trainer.cli: how torchrun starts each rank (trainer/distributed.py)
    main()
