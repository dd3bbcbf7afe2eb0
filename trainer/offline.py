"""``sonic-train offline``: the training loop over a fixed dataset, and its run folder.

Run folder layout::

    RUN/config.json              the full TrainConfig (also inside every checkpoint)
    RUN/dataset.json             dataset fingerprint, game, action set, mapped share
    RUN/metrics.csv              one row per --log-every updates
    RUN/tb/                      TensorBoard event files
    RUN/checkpoints/ckpt-NNNNNNNNN.pt

A run folder belongs to one configuration: starting again in it needs
``--resume``, which continues from the latest checkpoint with the update
counter, the target-sync schedule, the sampler's RNG and torch's RNG where they
stopped, so a resumed run matches an uninterrupted one update for update on CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataset.errors import ConfigError, DatasetError
from trainer.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from trainer.config import TrainConfig
from trainer.flags import flag_name
from trainer.frame_cache import DatasetInfo, FrameCache, dataset_fingerprint
from trainer.learner import METRIC_NAMES, DeviceFeeder, Learner, resolve_device, seed_everything
from trainer.metrics import MetricsLog
from trainer.replay import ReplayStore

__all__ = ["TrainResult", "open_store", "prepare_run", "train_offline"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    updates: int
    checkpoint: Path
    updates_per_s: float
    last_metrics: dict[str, float]


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
    if not saved_path.exists():
        raise ConfigError(f"nothing to resume in {run_dir} (no config.json); drop --resume to start a run")
    saved = TrainConfig.load(saved_path)
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
    cache = FrameCache.open(
        files,
        config.preprocess,
        Path(config.cache_dir) if config.cache_dir else None,
        fingerprint=fingerprint,
        progress=(lambda m: print(m, flush=True)) if progress else None,
    )
    return ReplayStore.from_cache(
        cache,
        gamma=config.gamma,
        n_step=config.n_step,
        frame_stack=config.frame_stack,
        clip_rewards=config.clip_rewards,
    )


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    # PCG64's state holds 128-bit ints; kept as decimal strings so the checkpoint is
    # plain data for weights_only loading on any torch version.
    st = rng.bit_generator.state
    return {
        "bit_generator": st["bit_generator"],
        "state": str(st["state"]["state"]),
        "inc": str(st["state"]["inc"]),
        "has_uint32": int(st["has_uint32"]),
        "uinteger": int(st["uinteger"]),
        "torch": torch.get_rng_state(),
    }


def _restore_rng(rng: np.random.Generator, saved: dict[str, Any]) -> None:
    rng.bit_generator.state = {
        "bit_generator": saved["bit_generator"],
        "state": {"state": int(saved["state"]), "inc": int(saved["inc"])},
        "has_uint32": int(saved["has_uint32"]),
        "uinteger": int(saved["uinteger"]),
    }
    torch.set_rng_state(saved["torch"])


def _checkpoint_state(
    learner: Learner, config: TrainConfig, info: DatasetInfo, rng: np.random.Generator
) -> dict[str, Any]:
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        **learner.state_dict(),
        "config": config.to_dict(),
        "dataset_fingerprint": info.fingerprint,
        "rng": _rng_state(rng),
        # What evaluation needs to play: the game and its action set.
        "dataset": {
            "game": info.game,
            "action_names": list(info.action_names),
            "frame_skip": info.frame_skip,
            "n_transitions": info.n_transitions,
        },
    }


def train_offline(
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    explicit: Sequence[str] = (),
    progress: bool = True,
    tensorboard: bool = True,
) -> TrainResult:
    """Train (or continue training) a run; returns where it ended."""
    run_dir = Path(run_dir)
    config = prepare_run(config, run_dir, resume=resume, explicit=explicit)
    device = resolve_device(config.device)
    files = [Path(f) for f in config.files]
    if not files:
        raise DatasetError("no episode files matched; pass .h5 files or folders recorded by sonic-rec")
    fingerprint = dataset_fingerprint(files)
    state = None
    if resume and (ckpt := latest_checkpoint(run_dir)) is not None:
        state = load_checkpoint(ckpt, map_location=device)
        if state["dataset_fingerprint"] != fingerprint:
            raise DatasetError(
                f"the episode files differ from the ones run {run_dir} was trained on; "
                "pass the same files to --resume or start a new --run folder"
            )
    store = open_store(config, fingerprint=fingerprint, progress=progress)
    info = store.info
    assert info is not None
    n_actions = len(info.action_names)

    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    (run_dir / "dataset.json").write_text(
        json.dumps(
            {**info.to_dict(), "mapped_share": info.mapped_share, "files": [str(f) for f in files]},
            indent=2,
        )
        + "\n"
    )
    if info.human_steps:
        print(
            f"{info.mapped_steps} of {info.n_transitions} steps ({100 * info.mapped_share:.1f}%) held "
            "buttons outside the action set and were mapped to the nearest action",
            flush=True,
        )

    if device.type == "cpu":
        # Bit-for-bit repeatable runs on CPU for a given --seed.
        torch.use_deterministic_algorithms(True)
    rng = seed_everything(config.seed)
    learner = Learner(config, store.state_shape, n_actions, device)
    if state is not None:
        learner.load_state_dict(state)
        _restore_rng(rng, state["rng"])
    start = learner.updates
    feeder = DeviceFeeder(store, rng, config.batch_size, device)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.updates, initial=start, unit="upd", dynamic_ncols=True, desc="train")
    last: dict[str, float] = {}
    t0 = time.perf_counter()
    t_log, n_log = t0, start
    ckpt_path = checkpoint_path(run_dir, learner.updates)
    with MetricsLog(run_dir, resume_from=start if resume else None, tensorboard=tensorboard) as log:
        while learner.updates < config.updates:
            batch = feeder.next()
            metrics = learner.update(*batch)
            feeder.release()
            u = learner.updates
            if u % config.log_every == 0 or u == config.updates:
                now = time.perf_counter()
                values = dict(zip(METRIC_NAMES, metrics.float().cpu().tolist(), strict=True))
                values["updates_per_s"] = (u - n_log) / max(now - t_log, 1e-9)
                values["elapsed_s"] = now - t0
                t_log, n_log = now, u
                log.write(u, values)
                last = values
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{values['loss']:.4f}", q=f"{values['q_mean']:.3f}",
                        ups=f"{values['updates_per_s']:.1f}",
                    )
            if bar is not None:
                bar.update(1)
            if u % config.checkpoint_every == 0 or u == config.updates:
                ckpt_path = save_checkpoint(
                    checkpoint_path(run_dir, u), _checkpoint_state(learner, config, info, rng)
                )
    if bar is not None:
        bar.close()
    if learner.updates == start:  # nothing to do: --updates already reached
        existing = latest_checkpoint(run_dir)
        ckpt_path = existing if existing is not None else save_checkpoint(
            checkpoint_path(run_dir, start), _checkpoint_state(learner, config, info, rng)
        )
    elapsed = time.perf_counter() - t0
    return TrainResult(
        run_dir=run_dir,
        updates=learner.updates,
        checkpoint=ckpt_path,
        updates_per_s=(learner.updates - start) / max(elapsed, 1e-9),
        last_metrics=last,
    )
