"""Typed configuration of the offline trainer: one frozen dataclass per concern.

``TrainConfig`` is built once from the CLI flags, written in full to ``config.json``
in the run folder, stored in every checkpoint, and compared on ``--resume``
(the cleanrl habit: one dataclass of arguments is both the CLI and the logged
hyperparameters).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import Any

from dataset.atomic import atomic_write_text
from dataset.errors import ConfigError

__all__ = [
    "Algo",
    "DeviceChoice",
    "PreprocessConfig",
    "TrainConfig",
]


class Algo(enum.StrEnum):
    """Which TD target and regulariser the learner uses."""

    #: Nature DQN target: max_a Q_target(s', a) (Mnih et al. 2015).
    DQN = "dqn"
    #: Double DQN target: Q_target(s', argmax_a Q_online(s', a)) (van Hasselt et al. 2016).
    DOUBLE = "double"
    #: Double DQN target plus the discrete CQL(H) regulariser (Kumar et al. 2020, eq. 4).
    CQL = "cql"


class DeviceChoice(enum.StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """How recorded RGB frames become network inputs (Mnih et al. 2015: 84x84 gray).

    ``crop`` is (top, bottom, left, right) pixels removed *before* resizing, e.g. to
    drop a HUD. The replay cache is keyed by this config, so changing it rebuilds
    the cache instead of silently reusing frames made another way.
    """

    height: int = 84
    width: int = 84
    grayscale: bool = True
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"frame size {self.height}x{self.width} must be positive (default 84x84)")
        if any(c < 0 for c in self.crop) or len(self.crop) != 4:
            raise ConfigError(
                f"crop {self.crop} must be four non-negative pixel counts: top,bottom,left,right"
            )

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["crop"] = list(self.crop)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            grayscale=bool(d["grayscale"]),
            crop=tuple(int(c) for c in d["crop"]),  # type: ignore[arg-type]
        )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every hyperparameter of an offline run. Defaults follow Nature DQN / CleanRL."""

    #: Episode files, sorted, as given (after glob expansion).
    files: tuple[str, ...] = ()
    algo: Algo = Algo.CQL
    #: Total gradient updates of the run (a resumed run continues up to this count).
    updates: int = 100_000
    batch_size: int = 32
    #: Adam learning rate (Nature DQN / CleanRL use 1e-4 with Adam).
    lr: float = 1e-4
    #: Adam epsilon; 1.5e-4 as in Dopamine's Rainbow/Adam settings.
    adam_eps: float = 1.5e-4
    gamma: float = 0.99
    n_step: int = 1
    #: Target network sync period, in updates.
    target_update: int = 2000
    seed: int = 0
    device: DeviceChoice = DeviceChoice.AUTO
    frame_stack: int = 4
    dueling: bool = False
    #: Weight of the CQL(H) term; d3rlpy's DiscreteCQL default alpha is 1.0.
    cql_alpha: float = 1.0
    #: Global gradient-norm clip (CleanRL/Dopamine use 10).
    grad_clip: float = 10.0
    #: Huber threshold (Mnih et al. 2015 clip the TD error at 1).
    huber_delta: float = 1.0
    #: Rewards are clipped to [-1, 1] (Nature DQN) unless this is False.
    clip_rewards: bool = True
    log_every: int = 100
    checkpoint_every: int = 5000
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    #: Where preprocessed frames are cached ("" = the default user cache folder).
    cache_dir: str = ""
    #: bf16 autocast where the hardware has it: every CUDA GPU, and CPUs with AVX512-BF16
    #: or AMX (oneDNN then runs the convolutions about 2x faster; master weights, the
    #: loss and Adam stay float32).
    amp: bool = True
    #: torch.compile / CUDA graphs on CUDA (ignored on CPU, where it does not pay off).
    compile: bool = True

    def __post_init__(self) -> None:
        # Accept the enums' string values too (from JSON or callers); store the enums.
        try:
            object.__setattr__(self, "algo", Algo(self.algo))
            object.__setattr__(self, "device", DeviceChoice(self.device))
        except ValueError as exc:
            raise ConfigError(f"{exc}; see sonic-train offline --help") from None
        object.__setattr__(self, "files", tuple(self.files))
        checks = [
            (self.updates >= 1, f"--updates {self.updates} must be at least 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1"),
            (self.lr > 0, f"--lr {self.lr} must be positive"),
            (0.0 <= self.gamma <= 1.0, f"--gamma {self.gamma} must lie in [0, 1]"),
            (self.n_step >= 1, f"--n-step {self.n_step} must be at least 1"),
            (self.target_update >= 1, f"--target-update {self.target_update} must be at least 1"),
            (self.frame_stack >= 1, f"--frame-stack {self.frame_stack} must be at least 1"),
            (self.cql_alpha >= 0, f"--cql-alpha {self.cql_alpha} must be non-negative"),
            (self.log_every >= 1, f"--log-every {self.log_every} must be at least 1"),
            (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    # The run folder's config.json and the checkpoint carry this plain dict (no pickled
    # objects, so checkpoints load with weights_only=True).
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["files"] = list(self.files)
        d["algo"] = self.algo.value
        d["device"] = self.device.value
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(
                f"config has unknown fields {sorted(unknown)}; it was written by another version"
            )
        kwargs = dict(d)
        kwargs["files"] = tuple(d.get("files", ()))
        if "algo" in d:
            kwargs["algo"] = Algo(d["algo"])
        if "device" in d:
            kwargs["device"] = DeviceChoice(d["device"])
        if "preprocess" in d:
            kwargs["preprocess"] = PreprocessConfig.from_dict(d["preprocess"])
        return cls(**kwargs)

    def learning_dict(self) -> dict[str, Any]:
        """The fields that define what is learned: a run folder must match them to be reused.

        ``updates``, ``device``, logging periods and the cache folder may change on
        ``--resume`` without changing the experiment.
        """
        d = self.to_dict()
        for key in ("updates", "device", "log_every", "checkpoint_every", "cache_dir", "compile"):
            d.pop(key)
        return d

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: cannot read the run config ({exc}); is this a run folder?") from exc
