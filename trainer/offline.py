"""``sonic-train offline``: the training loop over a fixed dataset, and its run folder.

Run folder layout::

    RUN/config.json              the full TrainConfig (also inside every checkpoint)
    RUN/dataset.json             dataset fingerprint, game, action set, mapped share
    RUN/profile.toml             the game profile the episodes were recorded with (trainer/run_profile.py)
    RUN/metrics.csv              one row per --log-every updates
    RUN/tb/                      TensorBoard event files
    RUN/checkpoints/ckpt-NNNNNNNNN.pt

A run folder belongs to one configuration: starting again in it needs
``--resume``, which continues from the latest checkpoint with the update
counter, the target-sync schedule, the sampler's RNG and torch's RNG where they
stopped, so a resumed run matches an uninterrupted one update for update on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataset.errors import ConfigError, DatasetError
from recorder.progress import Bar, echo
from trainer.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    restore_training_state,
    rng_state,
    save_run_checkpoint,
    training_state,
)
from trainer.config import TrainConfig
from trainer.distributed import Ranks, ShardSampler, rank_rng
from trainer.flags import flag_name
from trainer.frame_cache import FrameCache, dataset_fingerprint
from trainer.learner import DeviceFeeder, Learner, resolve_device, seed_everything
from trainer.metrics import MetricsLog
from trainer.replay import BatchSampler, ReplayStore
from trainer.run_profile import save_run_profile
from trainer.training_loop import Pace, stop_on_signals, train_loop

__all__ = ["TrainResult", "open_store", "prepare_run", "train_offline"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    #: The learner's update count at the end, and where this call began.
    updates: int
    start_update: int
    checkpoint: Path
    updates_per_s: float
    last_metrics: dict[str, float]
    #: Ctrl-C / SIGTERM stopped it before --updates (a checkpoint of the last update was saved).
    interrupted: bool = False


def prepare_run(
    config: TrainConfig, run_dir: Path, *, resume: bool, explicit: Sequence[str] = ()
) -> TrainConfig:
    """Check the run folder against the config; return the config the run will use.

    Without ``resume`` the folder must not hold a run. With it the saved config
    wins; only fields in ``explicit`` (paths of the fields whose flags the user
    typed, ``trainer.flags.given``) may change it, and of those only the ones that
    do not change what is learned (``TrainConfig.RESUMABLE``).
    """
    saved_path = run_dir / "config.json"
    if not resume:
        if saved_path.exists() or latest_checkpoint(run_dir) is not None:
            saved = TrainConfig.load(saved_path) if saved_path.exists() else None
            if saved is not None and saved.learning_dict() != config.learning_dict():
                diff = sorted(k for k, v in config.learning_dict().items() if saved.learning_dict()[k] != v)
                raise ConfigError(
                    f"run folder {run_dir} holds a run with another config (differs in {', '.join(diff)}); "
                    "pass --resume to continue it or choose a new --run folder"
                )
            raise ConfigError(
                f"run folder {run_dir} already holds a run; pass --resume to continue it "
                "or choose a new --run folder"
            )
        return config
    if saved_path.exists():
        saved = TrainConfig.load(saved_path)
    elif (ckpt := latest_checkpoint(run_dir)) is not None:  # config.json deleted: every checkpoint holds it
        saved = TrainConfig.from_dict(load_checkpoint(ckpt)["config"])
    elif config.files:
        # Killed before it saved anything (config.json comes first): --resume starts the run, so
        # "resume with --resume" is always the right thing to do after an interruption.
        echo(f"nothing saved in {run_dir} yet; starting the run")
        return config
    else:
        raise ConfigError(
            f"nothing to resume in {run_dir} (no config.json); pass the episode files to start the run there"
        )
    changes: dict[str, Any] = {}
    for path in explicit:
        top = path.split(".")[0]
        new, old = _field(config, path), _field(saved, path)
        if top == "files" or new == old:
            continue
        if top not in TrainConfig.RESUMABLE:
            raise ConfigError(
                f"{flag_name(TrainConfig, path)} differs from the run being resumed ({path} {new!r} vs {old!r}); "
                "drop it or start a new --run folder"
            )
        changes[top] = getattr(config, top)
    if "files" in explicit and config.files and list(config.files) != list(saved.files):
        # Same content under other names is fine: the fingerprint decides (checked later).
        changes["files"] = config.files
    return dataclasses.replace(saved, **changes)


def _field(config: TrainConfig, path: str) -> Any:
    return functools.reduce(getattr, path.split("."), config)


def open_store(
    config: TrainConfig, *, fingerprint: str | None = None, progress: bool = False
) -> ReplayStore:
    files = [Path(f) for f in config.files]
    if not files:
        raise DatasetError("no episode files matched; pass .h5 files or folders recorded by sonic-rec")
    bar: Bar | None = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # only when the cache is built: opening a built one is instant
            echo(f"preprocessing {total} episode file(s) into the replay cache")
            bar = Bar(total, "preprocess", "file")
        bar.set_n(done)

    try:
        cache = FrameCache.open(
            files,
            config.preprocess,
            Path(config.cache_dir) if config.cache_dir else None,
            fingerprint=fingerprint,
            progress=report if progress else None,
        )
    finally:
        if bar is not None:
            bar.close()
    return ReplayStore.from_cache(
        cache,
        gamma=config.gamma,
        n_step=config.n_step,
        frame_stack=config.frame_stack,
        clip_rewards=config.clip_rewards,
        life_loss_terminal=config.life_loss_terminal,
    )


def train_offline(
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    explicit: Sequence[str] = (),
    progress: bool = True,
    tensorboard: bool = True,
    stop: threading.Event | None = None,
    ranks: Ranks | None = None,
) -> TrainResult:
    """Train (or continue training) a run; returns where it ended.

    Setting ``stop`` (SIGINT/SIGTERM do, on the main thread) ends it after the
    current update with a checkpoint of that update. With ``ranks`` (torchrun's job,
    ``trainer.distributed``) this process is one rank of a data-parallel run: it samples
    its shard, its share of the global batch, and only rank 0 writes the run folder.
    """
    run_dir = Path(run_dir)
    main = ranks is None or ranks.is_main
    progress = progress and main
    config = prepare_run(config, run_dir, resume=resume, explicit=explicit)
    device = resolve_device(config.device)
    if ranks is not None:
        ranks.init(device.type == "cuda")
    files = [Path(f) for f in config.files]
    if not files:
        raise DatasetError("no episode files matched; pass .h5 files or folders recorded by sonic-rec")
    fingerprint = dataset_fingerprint(files)
    ckpt = latest_checkpoint(run_dir) if resume else None
    state = load_checkpoint(ckpt, map_location=device) if ckpt is not None else None
    if state is not None and state["dataset_fingerprint"] != fingerprint:
        raise DatasetError(
            f"the episode files differ from the ones run {run_dir} was trained on; "
            "pass the same files to --resume or start a new --run folder"
        )
    # Rank 0 builds the replay cache (if it is missing) before the others open it.
    with ranks.main_first() if ranks is not None else contextlib.nullcontext():
        store = open_store(config, fingerprint=fingerprint, progress=progress)
    info = store.info
    assert info is not None

    started = (run_dir / "config.json").exists()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.json")
        save_run_profile(run_dir, info.profile_toml)
        (run_dir / "dataset.json").write_text(
            json.dumps({**info.to_dict(), "mapped_share": info.mapped_share, "files": [str(f) for f in files]},
                       indent=2) + "\n"
        )  # fmt: skip
    if info.human_steps and main:
        echo(f"{info.mapped_steps} of {info.n_transitions} steps ({100 * info.mapped_share:.1f}%) held "
             "buttons outside the action set and were mapped to the nearest action")  # fmt: skip

    if device.type == "cpu":
        # Bit-for-bit repeatable runs on CPU for a given --seed.
        torch.use_deterministic_algorithms(True)
    rng = seed_everything(config.seed)
    sampler: BatchSampler = store
    batch_size = config.batch_size
    learner_config = config
    if ranks is not None:
        rng = rank_rng(config.seed, ranks.rank)
        sampler = ShardSampler(store, ranks.rank, ranks.world_size)
        batch_size = ranks.local_batch(config.batch_size)
        # A CUDA graph would capture DDP's all-reduce; the ranks run eager updates.
        learner_config = dataclasses.replace(config, compile=False)
    learner = Learner(learner_config, store.state_shape, len(info.action_names), device)
    if state is not None:
        restore_training_state(learner, rng, state)
        if ranks is not None:
            _restore_rank_rng(rng, state, ranks, config.seed)
    if ranks is not None:
        learner.online_forward = ranks.wrap(learner.online, device.type == "cuda")
    start = learner.updates
    if ckpt is not None and main:
        echo(f"resuming {run_dir} from {ckpt.name} (update {start})")
    elif resume and started and main:  # stopped before its first checkpoint: nothing learned was kept
        echo(f"resuming {run_dir} from update 0 (it has no checkpoint yet)")

    feeder = DeviceFeeder(sampler, rng, batch_size, device)

    def save() -> Path:
        at = feeder.checkpoint_rng()  # on CUDA, before the batch sampled ahead
        if ranks is None:
            return save_run_checkpoint(run_dir, training_state(learner, config, info, at),
                                       keep=config.keep_checkpoints)  # fmt: skip
        rngs = ranks.gather(rng_state(at))  # every rank's sampler, so a resume carries on each one
        if not main:
            return checkpoint_path(run_dir, learner.updates)
        state = training_state(learner, config, info, at)
        state["rank_rngs"] = rngs
        return save_run_checkpoint(run_dir, state, keep=config.keep_checkpoints)

    if start >= config.updates:  # nothing to do: --updates already reached
        return TrainResult(run_dir, start, start, latest_checkpoint(run_dir) or save(), 0.0, {})
    # The signal handlers set ``requested``; the loop's ``stop`` is set once the ranks agree
    # (pace), so every rank stops after the same update (one process: at once).
    requested = stop or threading.Event()
    loop_stop = requested if ranks is None else threading.Event()

    def announce(signame: str) -> None:
        if main:
            echo(f"{signame}: saving a checkpoint of the current update")

    def agree() -> Pace:
        assert ranks is not None
        if ranks.any(requested.is_set(), device):
            loop_stop.set()
            return Pace.WAIT  # the loop sees the stop and ends (with its checkpoint)
        return Pace.GO

    metrics_log = (MetricsLog(run_dir, resume_from=start if resume else None, tensorboard=tensorboard)
                   if main else contextlib.nullcontext())  # fmt: skip
    with (
        stop_on_signals(requested, announce),
        metrics_log as metrics,
        Bar(config.updates, "train", "upd", enabled=progress, initial=start) as bar,
    ):
        def log(u: int, values: dict[str, float]) -> None:
            if ranks is not None:
                values = ranks.mean(values, device)  # the global batch's loss, as one process logs it
            if metrics is not None:
                metrics.write(u, values)
            bar.set_postfix(f"loss={values['loss']:.4f}, q={values['q_mean']:.3f}, "
                            f"ups={values['updates_per_s']:.1f}")  # fmt: skip

        done = train_loop(
            learner, feeder, target=config.updates,
            log_every=config.log_every, checkpoint_every=config.checkpoint_every, save=save, log=log, stop=loop_stop,
            pace=None if ranks is None else agree,
            after_update=lambda _u: bar.update(1),
        )  # fmt: skip
    # The DDP wrapper goes with the learner; Ranks.close collects its reducer before leaving the group.
    learner.online_forward = learner.online
    assert done.checkpoint is not None  # at least one update ran, so the loop saved
    return TrainResult(run_dir, done.updates, start, done.checkpoint, done.updates_per_s, done.last_metrics,
                       interrupted=done.stopped and done.updates < config.updates)  # fmt: skip


def _restore_rank_rng(rng: np.random.Generator, state: dict[str, Any], ranks: Ranks, seed: int) -> None:
    """This rank's sampler state from a data-parallel checkpoint of as many ranks; else a fresh stream."""
    saved = state.get("rank_rngs")
    if saved is not None and len(saved) == ranks.world_size:
        restore_rng(rng, saved[ranks.rank])
        return
    # Another number of ranks (or a one-process checkpoint): the shards differ anyway; each rank
    # draws a fresh stream of its own, offset by the update count so it is not the first run's.
    fresh = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(ranks.rank, int(
        state["updates"])))))  # fmt: skip
    rng.bit_generator.state = fresh.bit_generator.state
    if ranks.is_main:
        echo(f"the checkpoint was saved by {len(saved) if saved else 1} process(es), not {ranks.world_size}: "
             "each rank samples a fresh stream")
