"""Run the recorder server, optionally with embedded emulator clients, until the job is done.

This is what ``sonic-rec record`` and ``sonic-train eval`` call: it owns the
event loop, the signal handlers (Ctrl-C and SIGTERM save open episodes as
truncated), which client command to start (``start_client``; the processes are
watched by ``recorder.supervisor``) and the progress bar.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dataset import portability
from dataset.atomic import check_writable_folder
from dataset.errors import ConfigError
from recorder import protocol as p
from recorder.emulator import EMULATOR_KINDS
from recorder.profile import GameProfile
from recorder.profile_library import ProfileLibrary, is_profile_path
from recorder.progress import Bar, echo
from recorder.server import EpisodeSummary, PolicyFactory, Recorder, ServerConfig
from recorder.server_config import DEFAULT_MAX_CONNECTIONS
from recorder.supervisor import ClientSupervisor, spawn_client

__all__ = ["RecordConfig", "RecordResult", "record", "start_client", "start_server"]

log = logging.getLogger("sonic_rl.recorder")


@dataclass(frozen=True)
class RecordConfig:
    """One ``sonic-rec record`` run."""

    out: Path | None
    game: str | None = None
    #: "none": wait for external clients (the BizHawk tool); "retro" (stable-retro) or "ale" (ale-py):
    #: start embedded clients of that kind (recorder.emulator.EMULATOR_KINDS).
    emulator: str = "none"
    policy: str = "random"
    mode: str | None = None  # "human" | "policy"; default: policy with --emulator retro, else human
    episodes: int | None = None
    max_steps: int | None = None
    frame_skip: int = 4
    clients: int = 1
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    step_timeout: float = 10.0
    progress: bool = True
    state: str | None = None  # stable-retro start state for embedded clients (ALE games have one)
    #: The progress bar's label: "record", or "eval" for ``sonic-train eval``.
    label: str = "record"
    #: Where --game is looked up (recorder.profile_library: --profiles, SONIC_RL_PROFILES, ...).
    profiles: ProfileLibrary = field(default_factory=ProfileLibrary.default)
    policy_only: bool = False  # refuse human-mode clients (sonic-train eval and online)

    def profile(self) -> GameProfile | None:
        """The profile --game names (an id or a .toml path), or None without --game."""
        return self.profiles.resolve(self.game) if self.game else None

    def server_config(self) -> ServerConfig:
        mode = self.mode or ("policy" if self.emulator != "none" else "human")
        profile = self.profile()
        return ServerConfig(
            out=self.out,
            host=self.host,
            port=self.port,
            token=self.token,
            # The server knows the game by id: a path's profile is pinned in its library.
            game=profile.id if profile else None,
            profiles=self.profiles.pin(profile) if profile else self.profiles,
            policy_only=self.policy_only,
            mode=p.Mode.POLICY if mode == "policy" else p.Mode.HUMAN,
            policy=self.policy,
            frame_skip=self.frame_skip,
            max_steps=self.max_steps,
            episodes=self.episodes,
            seed=self.seed,
            step_timeout=self.step_timeout,
            episodes_per_client=(
                -(-self.episodes // self.clients) if self.emulator != "none" and self.episodes else None
            ),
            max_connections=max(DEFAULT_MAX_CONNECTIONS, self.clients),
        )


@dataclass
class RecordResult:
    episodes: list[EpisodeSummary] = field(default_factory=list)
    steps: int = 0
    frames: int = 0
    #: Recording time: from the first episode's start to the last one's save (not the emulators'
    #: start-up, nor the wait for BizHawk to connect, nor the shutdown), so frames/s is the
    #: recording speed (issue 12).
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def record(
    config: RecordConfig,
    policy_factory: PolicyFactory | None = None,
    on_episode: Callable[[EpisodeSummary], None] | None = None,
) -> RecordResult:
    """Serve (and play, with an embedded ``emulator``) until the episode budget is spent or a signal arrives."""
    if config.out is not None:
        check_writable_folder(config.out)  # a read-only or full folder: one line now, not 1011s later
    kinds = " or ".join(repr(k) for k in EMULATOR_KINDS)
    if config.emulator != "none" and config.emulator not in EMULATOR_KINDS:
        raise ConfigError(
            f"--emulator must be {kinds} or left out (an external client such as BizHawk), got {config.emulator!r}"
        )
    if config.emulator != "none":
        example = {"retro": "Airstriker-Genesis-v0", "ale": "breakout"}.get(config.emulator, "ID")
        if not config.game:
            raise ConfigError(f"--emulator {config.emulator} needs --game (e.g. --game {example})")
        if config.episodes is None:
            raise ConfigError(f"--emulator {config.emulator} needs --episodes N (how many episodes to record)")
        if config.clients < 1:
            raise ConfigError(f"--clients must be at least 1, got {config.clients}")
        if config.state and config.emulator != "retro":
            raise ConfigError("--state names a stable-retro start state; ALE games have one start")
        config.profiles.resolve(config.game).embedded_game(config.emulator)  # ProfileError: which emulator runs it
    return asyncio.run(_record(config, policy_factory, on_episode))


async def _record(
    config: RecordConfig,
    policy_factory: PolicyFactory | None,
    on_episode: Callable[[EpisodeSummary], None] | None,
) -> RecordResult:
    recorder = Recorder(config.server_config(), policy_factory, on_episode)
    loop = asyncio.get_running_loop()
    result = RecordResult()

    def on_signal(signame: str) -> None:
        if not result.interrupted:
            log.warning("%s: saving open episodes as truncated and stopping", signame)
        result.interrupted = True
        recorder.shutdown()

    restore_signals = portability.on_signals(loop, on_signal)
    server_task, url = await start_server(recorder)
    # With no policy object from the caller, --policy (random/scripted) runs inside each
    # emulator process and streams (client-policy mode): no lockstep round trip per step.
    client_policy = config.policy if policy_factory is None else None
    embedded = config.emulator != "none"
    clients = ClientSupervisor(lambda i: start_client(config, url, i, client_policy), config.clients if embedded else 0)
    if not embedded:
        echo(f"waiting for an emulator client (the BizHawk tool) to connect to {url} (Ctrl-C to stop)")
    watch = asyncio.create_task(_watch(recorder, clients, config, result))
    try:
        await server_task
    finally:
        watch.cancel()
        await clients.reap_all()
        restore_signals()
    result.episodes = list(recorder.stats.episodes)
    result.steps = recorder.stats.steps
    result.frames = recorder.stats.frames
    result.seconds = recorder.stats.recording_seconds()
    failed = clients.failed()
    if failed and not result.interrupted and config.episodes is not None and len(result.episodes) < config.episodes:
        raise clients.failure(f"before {config.episodes} episodes were recorded")
    return result


async def start_server(recorder: Recorder) -> tuple[asyncio.Task[None], str]:
    """Start serving; returns the server task and its URL once it listens (ConfigError if it cannot)."""
    config = recorder.config
    server_task = asyncio.create_task(recorder.run())
    ready = asyncio.create_task(recorder.ready.wait())
    await asyncio.wait({server_task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if server_task.done():
        ready.cancel()
        exc = server_task.exception()
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}")
        server_task.result()
    url = f"ws://{config.host}:{recorder.port}"
    # Tools and tests wait for this exact line (docs/protocol.md, docs/bizhawk.md).
    echo(f"listening on {url}")
    return server_task, url


def start_client(
    config: RecordConfig, url: str, index: int, policy: str | None = None
) -> subprocess.Popen[bytes]:
    """Start embedded client ``index`` of the kind ``config.emulator`` names (``recorder.supervisor`` watches it).

    With ``policy`` it plays that policy itself (seed + index).
    """
    if config.emulator not in EMULATOR_KINDS:
        raise ConfigError(f"there is no embedded client for --emulator {config.emulator!r}")
    module, _ = EMULATOR_KINDS[config.emulator]
    profile = config.profile()
    assert profile is not None  # record() refuses an embedded emulator without --game
    # The emulator runs the profile's game for that emulator and names the profile by id in HELLO
    # (the recorder looks ids up in its own library, never a client's path). A client that plays
    # its own policy also reads the profile, from the file the recorder found it in; in lockstep
    # it needs only the id.
    source = profile.id
    if policy:
        game = str(config.game)
        source = game if is_profile_path(game) else config.profiles.where(profile.id)
    cmd = [sys.executable, "-m", module, "--url", url, "--game", profile.embedded_game(config.emulator),
           "--profile", source]  # fmt: skip
    if config.token:
        cmd += ["--token", config.token]
    if policy:
        cmd += ["--policy", policy]
    cmd += ["--seed", str(config.seed + index)]
    if config.state:
        cmd += ["--state", config.state]
    return spawn_client(cmd, index)


async def _watch(recorder: Recorder, clients: ClientSupervisor, config: RecordConfig, result: RecordResult) -> None:
    """Progress bar, and stop when every embedded client has exited."""
    stats = recorder.stats
    with Bar(config.episodes, config.label, "ep", enabled=config.progress) as bar:
        try:
            while True:
                await asyncio.sleep(0.25)
                bar.set_n(len(stats.episodes))
                fps = stats.frames / max(stats.recording_seconds(live=True), 1e-9)
                bar.set_postfix(f"steps={stats.steps}, fps={fps:,.0f}, clients={stats.connections}")
                if clients.all_exited():
                    recorder.shutdown()
                    return
        finally:  # cancelled when the budget is spent: the bar ends on the last episodes, not before them
            bar.set_n(len(stats.episodes))
