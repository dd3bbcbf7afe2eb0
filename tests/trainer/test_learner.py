"""The learner's options end to end on hand-built episodes: each trains, is saved in config.json, and plays."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.checkpoint import latest_checkpoint
from trainer.config import Algo, Encoder, PreprocessConfig, TrainConfig, ValueLoss
from trainer.evaluation import load_policy
from trainer.learner import Learner, random_shift
from trainer.offline import train_offline

OPTIONS: dict[str, dict[str, object]] = {
    "impala": {"encoder": Encoder.IMPALA, "impala_width": 2},
    "layer-norm": {"layer_norm": True},
    "hl-gauss+cql": {"value_loss": ValueLoss.HL_GAUSS, "value_bins": 21, "value_min": -5.0, "value_max": 5.0},
    "prev-action": {"prev_action": True},
    "random-shift": {"random_shift": 4},
    "cal-ql": {"cal_ql": True},
    "all": {"encoder": Encoder.IMPALA, "layer_norm": True, "value_loss": ValueLoss.HL_GAUSS, "prev_action": True,
            "random_shift": 2, "cal_ql": True, "dueling": True},
}  # fmt: skip


def test_random_shift_moves_whole_images_by_at_most_pad_pixels() -> None:
    torch.manual_seed(0)
    frames = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 8, 8)
    assert torch.equal(random_shift(frames, 0), frames)
    shifted = random_shift(frames, 2)
    assert shifted.dtype == torch.uint8 and shifted.shape == frames.shape
    # Each sample equals the replicate-padded image cropped at one offset, the same for every channel.
    padded = torch.nn.functional.pad(frames.float(), (2, 2, 2, 2), mode="replicate")
    for b in range(2):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(padded[b, :, dy:dy + 8, dx:dx + 8].to(torch.uint8), shifted[b])]  # fmt: skip
        assert found, f"sample {b} is not a shifted copy"
    seen = {tuple(random_shift(frames, 2)[0, 0, 4, :2].tolist()) for _ in range(30)}
    assert len(seen) > 3  # offsets vary from call to call


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_trains_is_recorded_and_plays(name: str, two_episode_files: list[Path], tmp_path: Path) -> None:
    cfg = TrainConfig(
        files=tuple(map(str, two_episode_files)), algo=Algo.CQL, updates=4, batch_size=4, n_step=2,
        target_update=2, device="cpu", log_every=2, checkpoint_every=4,
        preprocess=PreprocessConfig(height=36, width=36), cache_dir=str(tmp_path / "cache"), **OPTIONS[name],
    )  # type: ignore[arg-type]  # fmt: skip
    result = train_offline(cfg, tmp_path / "run", progress=False, tensorboard=False)
    assert result.updates == 4 and np.isfinite(result.last_metrics["loss"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    for key, value in OPTIONS[name].items():
        assert saved[key] == (value.value if hasattr(value, "value") else value)
    assert TrainConfig.load(tmp_path / "run" / "config.json") == cfg
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt is not None
    policy, _ = load_policy(ckpt, device=torch.device("cpu"))
    from recorder.policy import PolicyInput

    rgb = np.zeros((24, 32, 3), dtype=np.uint8)
    obs = PolicyInput(screen=rgb, ram=np.zeros(16, dtype=np.uint8), variables={}, step=0)
    actions = [policy.act(obs) for _ in range(3)]
    assert all(0 <= a < 6 for a in actions)
    assert policy.last_action == actions[-1]
    policy.reset()
    assert policy.last_action == -1


def test_prev_action_and_cal_ql_refuse_a_batch_without_them() -> None:
    pre = PreprocessConfig(height=36, width=36)
    states = torch.zeros((2, 2, 4, 36, 36), dtype=torch.uint8)
    args = (states, torch.zeros(2, dtype=torch.int64), torch.zeros(2), torch.ones(2))
    for kw in ({"prev_action": True}, {"prev_action": False, "cal_ql": True}):
        learner = Learner(TrainConfig(preprocess=pre, **kw), (4, 36, 36), 3, torch.device("cpu"))  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            learner.update(*args)
    Learner(TrainConfig(preprocess=pre, prev_action=False), (4, 36, 36), 3, torch.device("cpu")).update(*args)


def test_cal_ql_changes_what_is_learned(two_episode_files: list[Path], tmp_path: Path) -> None:
    cfg = TrainConfig(files=tuple(map(str, two_episode_files)), updates=3, batch_size=4, device="cpu",
                      preprocess=PreprocessConfig(height=36, width=36), cache_dir=str(tmp_path / "cache"),
                      cql_alpha=5.0, clip_rewards=False)  # fmt: skip
    a = train_offline(cfg, tmp_path / "a", progress=False, tensorboard=False)
    b = train_offline(dataclasses.replace(cfg, cal_ql=True), tmp_path / "b", progress=False, tensorboard=False)
    assert a.last_metrics["cql"] != b.last_metrics["cql"]


def test_the_options_are_flags_of_offline_and_online() -> None:
    for command in ("offline", "online"):
        out = subprocess.run([sys.executable, "-c", "from trainer.cli import main; main()", command, "-h"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        for flag in ("--encoder [nature|impala]", "--impala-width", "--layer-norm", "--prev-action",
                     "--random-shift", "--value-loss [huber|hl-gauss]", "--value-bins", "--cal-ql"):
            assert flag in out, (command, flag)
