"""Typed configuration of the trainer: one frozen dataclass per command and concern.

Each dataclass is its command's flags (``trainer.flags``: a field declared with
``flag(default, help=...)`` is an option of that name, default and help), so a
default is written once. ``TrainConfig`` is written in full to ``config.json`` in
the run folder, stored in every checkpoint, and compared on ``--resume`` (the
cleanrl habit: one dataclass of arguments is both the CLI and the logged
hyperparameters). ``OnlineConfig`` is one ``sonic-train online`` session, logged
to ``RUN/online.json``; ``EvalConfig`` one ``sonic-train eval``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click

from dataset.atomic import atomic_write_text
from dataset.errors import ConfigError
from recorder.profile_library import PROFILES_HELP
from trainer.flags import flag, nested, require

if TYPE_CHECKING:
    import torch

__all__ = [
    "Algo",
    "DeviceChoice",
    "Encoder",
    "EpsilonSchedule",
    "EvalConfig",
    "OnlineConfig",
    "PreprocessConfig",
    "TrainConfig",
    "ValueLoss",
]


class Algo(enum.StrEnum):
    """Which TD target and regulariser the learner uses."""

    #: Nature DQN target: max_a Q_target(s', a) (Mnih et al. 2015).
    DQN = "dqn"
    #: Double DQN target: Q_target(s', argmax_a Q_online(s', a)) (van Hasselt et al. 2016).
    DOUBLE = "double"
    #: Double DQN target plus the discrete CQL(H) regulariser (Kumar et al. 2020, eq. 4).
    CQL = "cql"


class Encoder(enum.StrEnum):
    """The Q-network's convolutional encoder (``trainer.network``)."""

    #: Mnih et al. 2015: 3 convolutions, 512 hidden units.
    NATURE = "nature"
    #: Espeholt et al. 2018: 3 residual stages, 256 hidden units (BBF's and QDagger's choice).
    IMPALA = "impala"


class ValueLoss(enum.StrEnum):
    """How the TD target is fitted (``trainer.loss``)."""

    #: A scalar Q per action, Huber loss on the TD error (Mnih et al. 2015).
    HUBER = "huber"
    #: A histogram per action, cross-entropy to the target smoothed by a Gaussian (Farebrother et al. 2024).
    HL_GAUSS = "hl-gauss"


class DeviceChoice(enum.StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--frame-size {text!r} is not HEIGHTxWIDTH, e.g. 84x84") from None
    return h, w


def _parse_crop(text: str) -> tuple[int, int, int, int]:
    try:
        top, bottom, left, right = (int(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--crop {text!r} is not TOP,BOTTOM,LEFT,RIGHT pixels, e.g. 0,16,0,0") from None
    return top, bottom, left, right


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """How recorded RGB frames become network inputs (Mnih et al. 2015: 84x84 gray).

    ``crop`` is (top, bottom, left, right) pixels removed *before* resizing, e.g. to
    drop a HUD. The replay cache is keyed by this config, so changing it rebuilds
    the cache instead of silently reusing frames made another way.
    """

    height: int = flag(84, name="--frame-size", also=("width",), help="Frame size after resizing.",
                       metavar="HEIGHTxWIDTH", click_type=str, parse=_parse_size,
                       show=lambda h, w: f"{h}x{w}")  # fmt: skip
    width: int = 84
    grayscale: bool = flag(True, name="--color", help="Keep RGB instead of converting to gray.")
    crop: tuple[int, int, int, int] = flag((0, 0, 0, 0), help="Pixels cut before resizing (e.g. a HUD).",
                                           metavar="TOP,BOTTOM,LEFT,RIGHT", click_type=str, parse=_parse_crop,
                                           show=lambda c: ",".join(map(str, c)))  # fmt: skip

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
    """Every hyperparameter of a run (``sonic-train offline``'s flags). Defaults follow Nature DQN / CleanRL."""

    #: Episode files, sorted, as given (after glob expansion).
    files: tuple[str, ...] = ()
    algo: Algo = flag(Algo.CQL, help="cql suits fixed data best (d3rlpy's Atari benchmark).")
    updates: int = flag(100_000, help="Total gradient updates of the run (a resumed run continues up to this count).")
    batch_size: int = flag(32, help="Transitions per update.")
    #: (Nature DQN / CleanRL use 1e-4 with Adam.)
    lr: float = flag(1e-4, help="Adam learning rate.")
    #: Adam epsilon; 1.5e-4 as in Dopamine's Rainbow/Adam settings.
    adam_eps: float = 1.5e-4
    gamma: float = flag(0.99, help="Discount factor.")
    n_step: int = flag(1, help="Steps of reward in each target before it bootstraps.")
    target_update: int = flag(2000, help="Target network sync period in updates.")
    seed: int = flag(0, help="Seed of the network's initialisation and of the sampler.")
    device: DeviceChoice = flag(DeviceChoice.AUTO, help="auto: CUDA when there is one.")
    frame_stack: int = flag(4, help="Observations per state.")
    dueling: bool = flag(False, help="Dueling head (Wang et al. 2016).")
    encoder: Encoder = flag(Encoder.NATURE, help="Convolutional encoder: nature (Mnih et al. 2015) or impala "
                                                 "(Espeholt et al. 2018).")  # fmt: skip
    impala_width: int = flag(1, help="Channel multiplier of the impala encoder (16, 32, 32 channels times this).")
    #: On by default since issue 10's measurements (docs/training.md, "Defaults"); a config.json
    #: written before then has neither field and loads with both off (``LEGACY_DEFAULTS``).
    layer_norm: bool = flag(True, negatable=True,
                            help="LayerNorm on the encoder's features and the head's hidden layer.")
    prev_action: bool = flag(True, negatable=True,
                             help="Give the network the previous action (R2D2), e.g. whether fire is held.")
    random_shift: int = flag(0, help="Random-shift augmentation: pad by this many pixels and crop back "
                                     "(DrQ uses 4; 0: off).")  # fmt: skip
    value_loss: ValueLoss = flag(ValueLoss.HUBER, help="huber: scalar Q; hl-gauss: a histogram per action fitted "
                                                       "by cross-entropy (Farebrother et al. 2024).")  # fmt: skip
    #: Farebrother et al. 2024 use 51 bins over [-10, 10] for Atari with clipped rewards.
    value_bins: int = flag(51, help="Bins of the hl-gauss histogram.")
    value_min: float = flag(-10.0, help="Lowest value of the hl-gauss histogram.")
    value_max: float = flag(10.0, help="Highest value of the hl-gauss histogram.")
    #: d3rlpy's DiscreteCQL default alpha is 1.0.
    cql_alpha: float = flag(1.0, help="Weight of the CQL term.")
    cal_ql: bool = flag(False, help="Cal-QL (Nakamoto et al. 2023): the CQL term pushes Q down no lower than "
                                    "the data's Monte Carlo return-to-go.")  # fmt: skip
    #: Global gradient-norm clip (CleanRL/Dopamine use 10).
    grad_clip: float = 10.0
    #: Huber threshold (Mnih et al. 2015 clip the TD error at 1).
    huber_delta: float = 1.0
    clip_rewards: bool = flag(True, name="--no-reward-clip", help="Do not clip rewards to [-1, 1] (Nature DQN does).")
    life_loss_terminal: bool = flag(False, negatable=True,
                                    help="End TD targets where the game's lives variable falls (Nature DQN's and "
                                         "BBF's Atari setting); episodes and evaluation are unchanged.")  # fmt: skip
    log_every: int = flag(100, help="Write metrics every this many updates.")
    checkpoint_every: int = flag(5000, help="Save a checkpoint every this many updates (and at the end).")
    keep_checkpoints: int = flag(0, help="Keep only the newest N checkpoints (about 25 MiB each at 84x84; "
                                         "the latest is never deleted); 0 keeps all.")  # fmt: skip
    preprocess: PreprocessConfig = nested(PreprocessConfig)
    cache_dir: str = flag("", help="Replay cache folder (default: ~/.cache/sonic-rl/replay).")
    #: bf16 autocast where the hardware has it: every CUDA GPU, and CPUs with AVX512-BF16
    #: or AMX (oneDNN then runs the convolutions about 2x faster; master weights, the
    #: loss and Adam stay float32).
    amp: bool = flag(True, name="--no-amp", help="Train in float32 even where bf16 autocast is available.")
    #: torch.compile / CUDA graphs on CUDA (ignored on CPU, where it does not pay off).
    compile: bool = flag(True, name="--no-compile", help="No CUDA graph capture on CUDA.")

    #: Fields a resumed run may change (they do not change what is learned).
    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"updates", "device", "log_every", "checkpoint_every", "keep_checkpoints", "cache_dir", "compile"}
    )
    #: Fields whose default changed: a config.json written before the change lacks them and
    #: means the old value (its network has no LayerNorm and no previous-action input).
    LEGACY_DEFAULTS: ClassVar[dict[str, Any]] = {"layer_norm": False, "prev_action": False}

    def __post_init__(self) -> None:
        # Accept the enums' string values too (from JSON or callers); store the enums.
        try:
            object.__setattr__(self, "algo", Algo(self.algo))
            object.__setattr__(self, "device", DeviceChoice(self.device))
            object.__setattr__(self, "encoder", Encoder(self.encoder))
            object.__setattr__(self, "value_loss", ValueLoss(self.value_loss))
        except ValueError as exc:
            raise ConfigError(f"{exc}; see sonic-train offline --help") from None
        object.__setattr__(self, "files", tuple(self.files))
        require(
            self,
            ("updates", self.updates >= 1, "must be at least 1"),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
            ("lr", self.lr > 0, "must be positive"),
            ("gamma", 0.0 <= self.gamma <= 1.0, "must lie in [0, 1]"),
            ("n_step", self.n_step >= 1, "must be at least 1"),
            ("target_update", self.target_update >= 1, "must be at least 1"),
            ("frame_stack", self.frame_stack >= 1, "must be at least 1"),
            ("cql_alpha", self.cql_alpha >= 0, "must be non-negative"),
            ("impala_width", self.impala_width >= 1, "must be at least 1"),
            ("random_shift", self.random_shift >= 0, "must be non-negative (0: off)"),
            ("value_bins", self.value_bins >= 2, "must be at least 2"),
            ("value_max", self.value_max > self.value_min, "must be above --value-min"),
            ("log_every", self.log_every >= 1, "must be at least 1"),
            ("checkpoint_every", self.checkpoint_every >= 1, "must be at least 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 0, "must be non-negative (0 keeps all)"),
        )

    # The run folder's config.json and the checkpoint carry this plain dict (no pickled
    # objects, so checkpoints load with weights_only=True).
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["files"] = list(self.files)
        d["algo"] = self.algo.value
        d["device"] = self.device.value
        d["encoder"] = self.encoder.value
        d["value_loss"] = self.value_loss.value
        d["preprocess"] = self.preprocess.to_dict()
        return d

    def value_support(self) -> torch.Tensor | None:
        """The centres of the hl-gauss histogram's bins (None for a scalar head)."""
        if self.value_loss is not ValueLoss.HL_GAUSS:
            return None
        import torch  # not at the top: the commands' --help must not wait for torch

        edges = torch.linspace(self.value_min, self.value_max, self.value_bins + 1)
        return (edges[:-1] + edges[1:]) / 2

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(
                f"config has unknown fields {sorted(unknown)}; it was written by another version"
            )
        kwargs = {**cls.LEGACY_DEFAULTS, **d}
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

        The fields in ``RESUMABLE`` (the budget, the device, logging and checkpoint
        periods, the cache folder) may change on ``--resume`` without changing the experiment.
        """
        d = self.to_dict()
        for key in self.RESUMABLE:
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


@dataclasses.dataclass(frozen=True)
class EpsilonSchedule:
    """Linear decay from ``start`` to ``end`` over ``decay_steps`` online env steps, then ``end``."""

    start: float = 0.1
    end: float = 0.01
    decay_steps: int = 10_000

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"--epsilon {name} {value} must lie in [0, 1]")
        if self.decay_steps < 0:
            raise ConfigError(f"--epsilon decay steps {self.decay_steps} must be non-negative")

    def __call__(self, step: int) -> float:
        if self.decay_steps == 0 or step >= self.decay_steps:
            return self.end
        return self.start + (self.end - self.start) * (step / self.decay_steps)

    def describe(self) -> str:
        return f"{self.start:g}->{self.end:g} over {self.decay_steps} steps"


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Every option of one ``sonic-train online`` session (logged to RUN/online.json's history)."""

    #: The run folder: trained by ``sonic-train offline`` (``--resume RUN``), or a new one (``--run RUN``).
    run_dir: str
    game: str = flag("", help="Game profile of a new run (--run), e.g. Airstriker-Genesis-v0; a resumed run plays "
                              "its own.")  # fmt: skip
    emulator: str = flag("none", click_type=click.Choice(["none", "retro", "ale"]),
                         help="none: wait for an external emulator client (the BizHawk tool) in policy mode; "
                              "retro / ale: start embedded stable-retro (Genesis) / ale-py (Atari 2600) "
                              "clients.")  # fmt: skip
    clients: int = flag(1, help="Embedded clients (--emulator retro or ale).")
    out: str = flag("", help="Folder for the new episodes (default: RUN/online, or the one used before).")
    steps: int = flag(100_000, help="Stop when the run's online episodes hold this many environment steps in total.")
    updates: int = flag(0, help="Stop after this many online updates in total (0: no limit besides --steps).")
    #: None: 0.1 -> 0.01 over 10k steps when fine-tuning (the trained policy acts from the start);
    #: 1 -> 0.01 over the first 10% of --steps from scratch (CleanRL's dqn_atari exploration fraction).
    epsilon: EpsilonSchedule | None = flag(
        None, click_type=(float, float, int), metavar="START END DECAY_STEPS",
        parse=lambda t: EpsilonSchedule(*t),
        help="Linear epsilon schedule over online environment steps (default: 0.1 0.01 10000 when fine-tuning, "
             "1 0.01 STEPS/10 from scratch).",
    )  # fmt: skip
    learning_starts: int = flag(1000, help="A run without offline data waits for this many online steps before its "
                                           "first update.")  # fmt: skip
    online_fraction: float = flag(0.5, help="Share of every batch drawn from the online episodes (symmetric "
                                            "sampling).")  # fmt: skip
    #: 0 keeps the Double DQN target and drops the conservative term: on the policy's own data CQL(H)
    #: raises Q of the actions the policy already takes, a feedback loop measured in
    #: docs/experiments.md; the offline half of each batch keeps every action covered instead
    #: (RLPD, Ball et al. 2023).
    cql_alpha: float = flag(0.0, help="Weight of the CQL term while fine-tuning a CQL run (0: Double DQN on the "
                                      "mixed batches).")  # fmt: skip
    sync_every: int = flag(100, help="Refresh the acting network from the learner every this many updates.")
    checkpoint_every: int = flag(1000, help="Save a checkpoint every this many updates (and at the end).")
    keep_checkpoints: int = flag(0, help="Keep only the newest N checkpoints of the run (the latest is never "
                                         "deleted); 0 keeps all.")  # fmt: skip
    #: The Nature DQN ratio (one update of 32 every 4 steps) keeps a fast learner from overfitting
    #: the first few online episodes.
    updates_per_step: float = flag(0.25, help="At most this many updates per online environment step (0: no cap).")
    #: Without it the ratio is only a cap: on 2 cores ale-py plays ~350 steps/s and the learner
    #: manages ~0.25 updates/step, so a 100k-step run trains far less than DER, DrQ(eps) and BBF, which
    #: interleave a fixed number of updates with every step (van Hasselt et al. 2019; Schwarzer et al. 2023).
    strict_ratio: bool = flag(False, help="Hold the actors back while the learner is more than --sync-every updates "
                                          "behind --updates-per-step x the online steps, so the ratio is kept, not "
                                          "just capped (Atari 100k protocols).")  # fmt: skip
    #: Lockstep play is a chain of wake-ups (emulator -> event loop -> actor -> event loop -> emulator);
    #: a learner running flat out at the same priority delays each one, halving play on 2 cores
    #: (docs/online.md, "Throughput"). Niced, it takes the CPU the chain leaves (issue 13 item 4).
    learner_nice: int = flag(10, help="Lower the learner thread's CPU priority by this much (Linux; 0: same as "
                                      "the actors).")  # fmt: skip
    max_steps: int | None = flag(None, help="Step limit per episode (default: the profile's).")
    device: DeviceChoice = flag(DeviceChoice.AUTO, help="auto: CUDA when there is one.")
    host: str = flag("127.0.0.1", help="Address to bind. Anything but loopback requires --token.")
    port: int = flag(8765, help="0 picks a free port.")
    token: str | None = flag(None, help="Shared secret clients must send (required off loopback).")
    seed: int = flag(0, help="Seed of the exploration and the emulators.")
    batch_window_ms: float = flag(2.0, help="How long the actor waits to batch observations from several clients.")
    progress_every_s: float = flag(5.0, name="--progress-every",
                                   help="Seconds between status lines when the output is not a terminal "
                                        "(at a terminal: a progress bar).")  # fmt: skip
    progress: bool = flag(True, name="--no-progress", help="No progress bar or status lines.")
    #: The run plays the profile it stored (trainer/run_profile.py); the lookup serves clients that name
    #: another game (refused with its name) and runs saved before profiles were stored.
    profiles: str = flag("", metavar="DIR", help=PROFILES_HELP)
    tensorboard: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", DeviceChoice(self.device))
        require(
            self,
            ("emulator", self.emulator in ("none", "retro", "ale"), "must be retro, ale or none (an external client)"),
            ("clients", self.clients >= 1, "must be at least 1"),
            ("steps", self.steps >= 1, "must be at least 1"),
            ("updates", self.updates >= 0, "must be non-negative (0: no limit)"),
            ("online_fraction", 0.0 <= self.online_fraction <= 1.0, "must lie in [0, 1]"),
            ("cql_alpha", self.cql_alpha >= 0, "must be non-negative"),
            ("sync_every", self.sync_every >= 1, "must be at least 1"),
            ("checkpoint_every", self.checkpoint_every >= 1, "must be at least 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 0, "must be non-negative (0 keeps all)"),
            ("updates_per_step", self.updates_per_step >= 0, "must be non-negative"),
            ("updates_per_step", self.updates_per_step > 0 or not self.strict_ratio, "must be > 0 with --strict-ratio"),
            ("learner_nice", 0 <= self.learner_nice <= 19, "must lie in [0, 19]"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be at least 1"),
            ("batch_window_ms", self.batch_window_ms >= 0, "must be non-negative"),
            ("learning_starts", self.learning_starts >= 0, "must be non-negative"),
        )

    def schedule(self, *, from_scratch: bool) -> EpsilonSchedule:
        """``--epsilon``, or the default for a fine-tuned run or one learning from scratch."""
        if self.epsilon is not None:
            return self.epsilon
        if from_scratch:
            return EpsilonSchedule(1.0, 0.01, max(1, self.steps // 10))
        return EpsilonSchedule()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["device"] = self.device.value
        d["epsilon"] = None if self.epsilon is None else dataclasses.asdict(self.epsilon)
        return d


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """One ``sonic-train eval``: play a run's checkpoint on an embedded or an external emulator client."""

    run_dir: Path
    emulator: str | None = flag(None, click_type=click.Choice(["retro", "ale", "none"]),
                                help="retro / ale: start an embedded stable-retro / ale-py client (default: the "
                                     "one the run's profile names); none: wait for an external emulator client "
                                     "(the BizHawk tool) to connect in policy mode.")  # fmt: skip
    episodes: int = flag(5, help="Episodes to play (in all, over every client that connects).")
    checkpoint: Path | None = flag(None, help="Checkpoint file (default: the run's latest).")
    record_dir: Path | None = flag(None, name="--record", help="Also save the evaluation episodes as HDF5 files here.")
    max_steps: int | None = flag(None, help="Step limit per episode (default: the profile's).")
    epsilon: float = flag(0.0, help="Probability of a random action (0 = greedy).")
    #: The emulator is a second process on the same machine; a small network plays fast enough on a core.
    device: DeviceChoice = flag(DeviceChoice.CPU, help="auto: CUDA when there is one.")
    seed: int = flag(0, help="Seed of the epsilon-greedy draws.")
    host: str = flag("127.0.0.1", help="Address to bind (--emulator none). Anything but loopback requires --token.")
    #: The embedded client is told the port, so it gets a free one; an external client is set up with one.
    port: int = flag(8765, help="Port external clients connect to (--emulator none; 0 picks a free port).")
    token: str | None = flag(None, help="Shared secret clients must send (required off loopback).")
    profiles: str = flag("", metavar="DIR", help=PROFILES_HELP)
    progress: bool = flag(True, name="--no-progress", help="No progress bar.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", DeviceChoice(self.device))
        require(
            self,
            ("emulator", self.emulator in (None, "none", "retro", "ale"), "must be retro, ale or none"),
            ("episodes", self.episodes >= 1, "must be at least 1"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be at least 1"),
            ("epsilon", 0.0 <= self.epsilon <= 1.0, "must lie in [0, 1]"),
        )
