"""``sonic-train eval``: play a checkpoint through the recorder, on an embedded or an external emulator client.

The Q-network plays as a recorder policy (``recorder.policy.Policy``), so
evaluation runs the same server, client and episode rules as recording, and
``--record DIR`` saves the evaluation episodes as ordinary episode files. The
policy preprocesses each screen with the replay store's own function and keeps
its own frame stack (``trainer.frame_stack``, the rule the replay store gathers by).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import numpy as np
import torch

from dataset.errors import ConfigError, ErrorCode, ProtocolError
from recorder.policy import Policy, PolicyInput
from recorder.profile import GameProfile, load_profile
from recorder.profile_library import ProfileLibrary
from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.config import EvalConfig, PreprocessConfig, TrainConfig
from trainer.frame_stack import FrameStack
from trainer.game_spec import GameSpec
from trainer.learner import resolve_device
from trainer.network import QNetwork
from trainer.preprocessing import preprocess_frames
from trainer.run_profile import load_run_profile

__all__ = ["EvalReport", "QPolicy", "evaluate", "load_policy", "play"]


class QPolicy:
    """Greedy (or epsilon-greedy) action from a Q-network over the last ``frame_stack`` screens."""

    def __init__(
        self,
        network: QNetwork,
        preprocess: PreprocessConfig,
        frame_stack: int,
        *,
        device: torch.device | str = "cpu",
        epsilon: float = 0.0,
        seed: int = 0,
        policy_id: str = "dqn",
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"--epsilon {epsilon} must lie in [0, 1]")
        self.network = network.eval()
        self.preprocess = preprocess
        self.frame_stack = frame_stack
        self.device = torch.device(device)
        self.epsilon = epsilon
        self.policy_id = policy_id
        self.metadata: dict[str, str] = {"policy": policy_id, "epsilon": str(epsilon)}
        self._rng = np.random.default_rng(seed)
        self._stack = FrameStack(frame_stack)
        self.last_q: np.ndarray | None = None
        #: The action this policy played last in the episode (-1: none yet), for --prev-action networks.
        self.last_action = -1

    def reset(self) -> None:
        self._stack.reset()
        self.last_action = -1

    def observe(self, frame: np.ndarray) -> np.ndarray:
        """Push one RGB screen; return the (stack*C, h, w) uint8 state."""
        return self._stack.push(preprocess_frames(frame[None], self.preprocess)[0])

    def act(self, obs: PolicyInput) -> int:
        state = self.observe(obs.frame)
        prev = torch.tensor([self.last_action], device=self.device)
        with torch.inference_mode():
            q = self.network(torch.from_numpy(state[None]).to(self.device), prev)[0].float().cpu().numpy()
        self.last_q = q
        action = int(q.argmax())
        if self.epsilon > 0 and self._rng.random() < self.epsilon:
            action = int(self._rng.integers(q.shape[0]))
        self.last_action = action
        return action


@dataclasses.dataclass(frozen=True)
class EvalReport:
    returns: tuple[float, ...]
    lengths: tuple[int, ...]
    checkpoint: Path | None
    paths: tuple[Path, ...] = ()

    @property
    def mean_return(self) -> float:
        return statistics.fmean(self.returns)

    @property
    def std_return(self) -> float:
        return statistics.pstdev(self.returns)

    @property
    def median_return(self) -> float:
        return statistics.median(self.returns)

    @property
    def mean_length(self) -> float:
        return statistics.fmean(self.lengths)

    @property
    def median_length(self) -> float:
        return statistics.median(self.lengths)


def load_policy(
    checkpoint: Path, *, device: torch.device, epsilon: float = 0.0, seed: int = 0
) -> tuple[QPolicy, dict[str, object]]:
    """The policy stored in a checkpoint, and the checkpoint's dataset description."""
    state = load_checkpoint(checkpoint, map_location=device)
    config = TrainConfig.from_dict(state["config"])
    dataset = dict(state["dataset"])
    net = QNetwork.of_config(config, len(dataset["action_names"])).to(device)
    net.load_state_dict(state["model"])
    policy = QPolicy(
        net, config.preprocess, config.frame_stack, device=device, epsilon=epsilon, seed=seed,
        policy_id=f"{config.algo.value}@{checkpoint}",
    )
    return policy, dataset


def evaluate(config: EvalConfig) -> EvalReport:
    """Play ``config.episodes`` episodes with the run's latest checkpoint (or ``config.checkpoint``).

    ``--emulator retro`` or ``ale`` (default: the profile's) starts one embedded client; ``none`` waits for external
    clients (the BizHawk tool) and plays each one in policy (lockstep) mode with a policy of its own.
    """
    from recorder.recording import RecordConfig, record

    run_dir = Path(config.run_dir)
    checkpoint = config.checkpoint or latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(f"{config.run_dir} has no checkpoints; train it with sonic-train offline first")
    dev = resolve_device(config.device)
    if dev.type == "cpu":
        # The emulator client is a second process; leave it a core.
        torch.set_num_threads(1)
    policy, dataset = load_policy(checkpoint, device=dev, epsilon=config.epsilon, seed=config.seed)
    spec = GameSpec.of_checkpoint(dataset)
    profile, profiles = load_run_profile(run_dir, dataset, ProfileLibrary.default(config.profiles or None))
    emulator = config.emulator
    if emulator is None:
        if not profile.embedded_emulators:
            raise ConfigError(
                f"{spec.game} runs in no embedded emulator (its profile has no [retro] or [ale] game); "
                "play it on an external emulator client with --emulator none"
            )
        emulator = profile.embedded_emulators[0]
    embedded = emulator != "none"
    record_config = RecordConfig(
        out=config.record_dir,
        game=profile.id,
        profiles=profiles,
        emulator=emulator,
        policy=policy.policy_id,
        mode="policy",
        policy_only=True,
        episodes=config.episodes,
        max_steps=config.max_steps,
        frame_skip=int(dataset["frame_skip"]),  # type: ignore[call-overload]
        clients=1,
        seed=config.seed,
        host=config.host,
        # The embedded client is told the port; a free one avoids clashing with a recorder already running.
        port=0 if embedded else config.port,
        token=config.token,
        progress=config.progress,
        label="eval",
    )
    connections = 0

    def factory(client_profile: GameProfile, seed: int) -> Policy:
        nonlocal connections
        # A ProtocolError reaches the client as ERROR 4006 and a close (recorder.server).
        spec.require_match(
            GameSpec.of_profile(client_profile), mine="this run plays", theirs="the emulator sent",
            error=lambda message: ProtocolError(message, ErrorCode.BAD_CONFIG), fix=f"load {spec.game} in the emulator",
        )  # fmt: skip
        connections += 1
        if connections == 1:
            policy.reset()
            return policy
        # Each further client gets its own frame stack and draws on the same network.
        return QPolicy(
            policy.network, policy.preprocess, policy.frame_stack, device=policy.device, epsilon=config.epsilon,
            seed=seed, policy_id=policy.policy_id,
        )  # fmt: skip

    result = record(record_config, policy_factory=factory)
    done = sorted(result.episodes, key=lambda e: (e.session_id, e.episode))[: config.episodes]
    if not done:
        raise ConfigError("the emulator finished no episode; see the messages above")
    return EvalReport(
        returns=tuple(float(e.episode_return) for e in done),
        lengths=tuple(int(e.steps) for e in done),
        checkpoint=checkpoint,
        paths=tuple(e.path for e in done if e.path is not None),
    )


def play(policy: Policy, *, game: str, frame_skip: int, config: EvalConfig) -> EvalReport:
    """Play ``config.episodes`` episodes of ``game`` with any policy on its profile's embedded emulator.

    ``policy.reset()`` is called at every episode start. benchmarks/learn.py plays d3rlpy's
    policy through this, with the episodes, epsilon, step limit and seed of ``evaluate``.
    """
    from recorder.recording import RecordConfig, record

    profile = load_profile(game)
    if not profile.embedded_emulators:
        raise ConfigError(f"{game} runs in no embedded emulator (its profile has no [retro] or [ale] game)")
    record_config = RecordConfig(
        out=config.record_dir, game=game, emulator=profile.embedded_emulators[0], policy=policy.policy_id,
        mode="policy", policy_only=True, episodes=config.episodes, max_steps=config.max_steps,
        frame_skip=frame_skip, clients=1, seed=config.seed, port=0, progress=config.progress, label="eval",
    )  # fmt: skip

    def factory(_profile: GameProfile, _seed: int) -> Policy:
        policy.reset()
        return policy

    result = record(record_config, policy_factory=factory)
    done = sorted(result.episodes, key=lambda e: e.episode)[: config.episodes]
    if not done:
        raise ConfigError("the emulator finished no episode; see the messages above")
    return EvalReport(returns=tuple(float(e.episode_return) for e in done), lengths=tuple(int(e.steps) for e in done),
                      checkpoint=None, paths=tuple(e.path for e in done if e.path is not None))  # fmt: skip
