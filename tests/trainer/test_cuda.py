"""The CUDA path of the learner: the whole update as one CUDA graph, bf16 autocast, resume.

Marked ``cuda``: without a GPU they skip with the reason printed (tests/conftest.py);
``benchmarks/gpu_check.sh`` runs them on a machine with one.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
import torch

from trainer.config import Algo, PreprocessConfig, TrainConfig
from trainer.learner import DeviceFeeder, Learner, seed_everything
from trainer.offline import open_store

from .conftest import straight_and_resumed

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")


def _config(files: list[Path], cache: Path, **kw: object) -> TrainConfig:
    base = TrainConfig(
        files=tuple(str(f) for f in files), algo=Algo.CQL, updates=6, batch_size=8, n_step=2, target_update=2,
        seed=3, device="cuda", log_every=2, checkpoint_every=3, preprocess=PreprocessConfig(height=36, width=36),
        cache_dir=str(cache), amp=False,
    )  # fmt: skip
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def _updates(config: TrainConfig, n: int) -> tuple[Learner, list[torch.Tensor]]:
    store = open_store(config)
    rng = seed_everything(config.seed)
    learner = Learner(config, store.state_shape, len(store.info.action_names), CUDA)  # type: ignore[union-attr]
    feeder = DeviceFeeder(store, rng, config.batch_size, CUDA)
    metrics = []
    for _ in range(n):
        metrics.append(learner.update(*feeder.next()).clone())
        feeder.release()
    torch.cuda.synchronize()
    return learner, metrics


def _median_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(torch.cat([(a[k].float() - b[k].float()).abs().flatten().cpu() for k in a]).median())


def test_the_update_is_captured_as_one_cuda_graph_and_matches_eager_updates(
    two_episode_files: list[Path], tmp_path: Path
) -> None:
    cfg = _config(two_episode_files, tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture warns and falls back: that is a failure here
        graphed, graphed_metrics = _updates(cfg, 5)
    assert graphed._graph is not None
    eager, eager_metrics = _updates(dataclasses.replace(cfg, compile=False), 5)
    assert eager._graph is None
    # Same batches, same start: the graph replays the same arithmetic (TF32 and cuDNN's choices
    # alike in both), so the losses agree closely and the typical weight agrees to float noise.
    for g, e in zip(graphed_metrics, eager_metrics, strict=True):
        assert torch.allclose(g, e, rtol=1e-3, atol=1e-4)
    assert _median_diff(graphed.online.state_dict(), eager.online.state_dict()) < 1e-5
    assert graphed.updates == 5


def test_bf16_autocast_trains_float32_weights(two_episode_files: list[Path], tmp_path: Path) -> None:
    cfg = _config(two_episode_files, tmp_path / "cache", amp=True)
    learner, metrics = _updates(cfg, 4)
    assert learner.amp_dtype is torch.bfloat16
    assert all(p.dtype == torch.float32 for p in learner.online.parameters())
    assert all(bool(torch.isfinite(m).all()) for m in metrics)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        q = learner.online(torch.zeros((2, 4, 36, 36), dtype=torch.uint8, device=CUDA))
    assert q.dtype == torch.bfloat16  # the convolutions and matmuls ran in bf16


def test_a_resumed_cuda_run_draws_the_same_batches_as_an_uninterrupted_one(
    two_episode_files: list[Path], tmp_path: Path
) -> None:
    cfg = _config(two_episode_files, tmp_path / "cache", target_update=4)
    straight, split = straight_and_resumed(cfg, tmp_path)
    # The checkpoint holds the sampler before the batch the CUDA feeder drew ahead, so the
    # resumed run samples exactly what the uninterrupted one did after update 3 ...
    assert straight["rng"]["state"] == split["rng"]["state"]
    # ... and trains to the same weights, up to cuDNN's nondeterministic reductions.
    assert _median_diff(straight["model"], split["model"]) < 1e-5
