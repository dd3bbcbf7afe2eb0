"""Data-parallel offline training (trainer/distributed.py): 2 gloo processes train like 1 with the same global batch."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.episode import EndReason
from dataset.errors import ConfigError
from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.config import Algo, PreprocessConfig, TrainConfig
from trainer.distributed import Ranks, ShardSampler, rank_rng, strip_ddp_flag
from trainer.learner import METRIC_NAMES, Learner, seed_everything
from trainer.offline import open_store
from trainer.replay import Batch, ReplayStore

from .conftest import write_episode

SONIC_TRAIN = [sys.executable, "-c", "from trainer.cli import main; main()"]
UPDATES = 8
BATCH = 8


@pytest.fixture
def episode_files(tmp_path: Path) -> list[Path]:
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    return [
        write_episode(data, rewards=rng.integers(-1, 3, size=7).tolist(), end=EndReason.LIFE_LOST,
                      first_value=40 * i, index=i)
        for i in range(4)
    ]


def _config(files: list[Path], cache: Path) -> TrainConfig:
    return TrainConfig(
        files=tuple(str(f) for f in files), algo=Algo.CQL, updates=UPDATES, batch_size=BATCH, target_update=3,
        seed=5, device="cpu", log_every=1, checkpoint_every=UPDATES, preprocess=PreprocessConfig(height=36, width=36),
        cache_dir=str(cache), lr=1e-3,
    )  # fmt: skip


class _UnionOfShards:
    """One process sampling what the two ranks sample together: rank 0's half, then rank 1's."""

    def __init__(self, store: ReplayStore, seed: int) -> None:
        self.shards = [ShardSampler(store, r, 2) for r in range(2)]
        self.rngs = [rank_rng(seed, r) for r in range(2)]
        self.state_shape = store.state_shape

    def sample(self, batch_size: int) -> Batch:
        halves = [s.sample(batch_size // 2, g) for s, g in zip(self.shards, self.rngs, strict=True)]
        return Batch(*(np.concatenate(parts) for parts in zip(*(dataclasses.astuple(h) for h in halves),
                                                              strict=True)))  # fmt: skip


def _one_process_losses(config: TrainConfig) -> tuple[list[float], dict[str, torch.Tensor]]:
    torch.use_deterministic_algorithms(True)
    store = open_store(config)
    seed_everything(config.seed)
    learner = Learner(config, store.state_shape, len(store.info.action_names), torch.device("cpu"))  # type: ignore[union-attr]
    sampler = _UnionOfShards(store, config.seed)
    losses = []
    for _ in range(config.updates):
        b = sampler.sample(config.batch_size)
        metrics = learner.update(torch.from_numpy(b.states), *(torch.from_numpy(getattr(b, f)) for f in Batch.FIELDS))
        losses.append(float(metrics[METRIC_NAMES.index("loss")]))
    return losses, learner.online.state_dict()


def test_two_gloo_processes_follow_one_process_with_the_same_global_batch(
    episode_files: list[Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    flags = ["--algo", "cql", "--updates", str(UPDATES), "--batch-size", str(BATCH), "--target-update", "3",
             "--seed", "5", "--device", "cpu", "--log-every", "1", "--checkpoint-every", str(UPDATES),
             "--frame-size", "36x36", "--cache-dir", str(tmp_path / "cache"), "--lr", "1e-3",
             # Without LayerNorm: some of its gradients are near zero, where the float32 rounding of
             # two half-batch backwards differs from one whole-batch backward in the last bits, and
             # Adam (m / sqrt(v)) makes full-size steps of that noise: 0.4% apart after 3 updates.
             "--no-layer-norm"]  # fmt: skip
    done = subprocess.run(
        [*SONIC_TRAIN, "offline", *map(str, episode_files), "--run", str(run), "--no-progress", "--ddp", "2", *flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 8 updates") == 1  # rank 0 reports, once

    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert [int(r["update"]) for r in rows] == list(range(1, UPDATES + 1))
    ddp_losses = [float(r["loss"]) for r in rows]
    ref_losses, ref_weights = _one_process_losses(TrainConfig.load(run / "config.json"))  # the files in its order
    # Same global batch, gradients averaged over the ranks: the same losses up to float32
    # summation order (one backward over 8 vs two over 4, then the all-reduce) and
    # metrics.csv's 6 significant digits; measured 2e-4 relative at most.
    assert ddp_losses == pytest.approx(ref_losses, rel=1e-3)
    assert len(set(ddp_losses)) > 1  # it learned something: the trajectory is not flat

    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == [f"ckpt-{UPDATES:09d}.pt"]  # rank 0 wrote it, and nothing else is there
    state = load_checkpoint(latest_checkpoint(run))  # type: ignore[arg-type]
    assert len(state["rank_rngs"]) == 2
    # Adam's steps are lr-sized (1e-3) whatever the gradient's size, so a weight whose gradient
    # is near zero may differ by a step; the typical weight agrees far closer than that.
    # Replicas trained on their own halves would differ by steps almost everywhere.
    diff = torch.cat([(state["model"][k] - ref).abs().flatten() for k, ref in ref_weights.items()])
    assert diff.median() < 1e-5  # measured 0 here; rank 0 trained alone: 8.5e-5


def test_each_rank_samples_its_own_contiguous_shard(episode_files: list[Path], tmp_path: Path) -> None:
    store = open_store(_config(episode_files, tmp_path / "cache"))
    shards = [ShardSampler(store, r, 3) for r in range(3)]
    assert shards[0].lo == 0 and shards[-1].hi == len(store)
    assert all(a.hi == b.lo for a, b in itertools.pairwise(shards))
    rng = rank_rng(0, 1)
    batch = shards[1].sample(64, rng)
    ref = store.gather(np.arange(shards[1].lo, shards[1].hi))
    drawn = {bytes(s) for s in batch.states}
    assert drawn <= {bytes(s) for s in ref.states}
    assert rank_rng(0, 0).integers(1 << 30) != rank_rng(0, 1).integers(1 << 30)


def test_torchrun_environment_and_the_ddp_flag() -> None:
    assert Ranks.from_env({}) is None
    assert Ranks.from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert Ranks.from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == Ranks(2, 4, 0)
    with pytest.raises(ConfigError, match="torchrun"):
        Ranks.from_env({"WORLD_SIZE": "2"})
    argv = ["offline", "a.h5", "--ddp", "2", "--run", "r", "--ddp=3"]
    assert strip_ddp_flag(argv) == ["offline", "a.h5", "--run", "r"]
    with pytest.raises(ConfigError, match="multiple of the 2 processes"):
        Ranks(0, 2, 0).local_batch(33)
