"""A Gymnasium environment over the bridge: SB3, CleanRL or torchrl drive BizHawk (or the embedded emulator).

``BridgeEnv`` serves the recorder's protocol (the same ``recorder.server.Recorder``
as ``sonic-rec record``, in lockstep policy mode) and waits for an emulator client:
the BizHawk tool in policy mode, or, with ``emulator="retro"`` (or ``"ale"``), an
embedded client it starts itself. The agent's actions are the profile's action
set (``Discrete(len(profile.actions))``); observations are the screen (or the RAM,
``obs_type="ram"``); rewards and episode ends are the profile's
(``GameProfile.judge``, the one rule the recorder applies). Every episode it plays
is saved as an ordinary episode file in ``out``, so what an online agent played is
a dataset for offline training afterwards (docs/gymnasium.md).

How it runs: the recorder's event loop lives in a thread of its own. The env is its
policy: each time the recorder asks for an action, the request (with the
observation) is handed to the env's thread, where ``step()`` answers it. A
``reset()`` with the episode open answers ``EndEpisode`` instead (the recorder
saves the episode as truncated, ``agent_reset``, and starts the next one from the
start state). Rewards of ordinary steps come from a second judge run on the same
RAM the recorder judges; the last observation of an episode (which the recorder
does not hand a policy, having no action to ask for) is read back from the saved
file, together with its reward.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dataset.episode import EndReason, EpisodeReader
from dataset.errors import ConfigError, ErrorCode, ProtocolError, SonicRLError
from recorder import protocol as p
from recorder.emulator import EMULATOR_KINDS
from recorder.policy import EndEpisode, PolicyInput
from recorder.profile import EpisodeJudge, GameProfile, load_profile
from recorder.recording import RecordConfig, start_client, start_server
from recorder.server import EpisodeSummary, Recorder, ServerConfig
from recorder.supervisor import ClientSupervisor

__all__ = ["BridgeEnv"]

#: How often the bridge thread checks on the embedded client (restart) and on close().
POLL_S = 0.1


@dataclass(frozen=True)
class _Request:
    """The recorder asks for an action after ``obs``; ``answer`` is resolved on the loop."""

    handle: _Agent
    obs: PolicyInput
    answer: asyncio.Future[int | EndEpisode]


class _Agent:
    """The recorder's policy for one connection: every request goes to the env's thread."""

    def __init__(self, bridge: _Bridge, policy_id: str) -> None:
        self.bridge = bridge
        self.policy_id = policy_id

    def reset(self) -> None:
        pass

    def act(self, obs: PolicyInput) -> int:
        raise RuntimeError("the Gymnasium env answers through act_async")

    async def act_async(self, obs: PolicyInput) -> int | EndEpisode:
        if self.bridge.closing:
            return EndEpisode(EndReason.SERVER_STOP)
        answer: asyncio.Future[int | EndEpisode] = asyncio.get_running_loop().create_future()
        self.bridge.events.put(_Request(self, obs, answer))
        return await answer


class _Bridge(threading.Thread):
    """The recorder (and the embedded client) on an event loop of their own."""

    def __init__(self, server_config: ServerConfig, record_config: RecordConfig, profile: GameProfile,
                 policy_id: str) -> None:  # fmt: skip
        super().__init__(name="gym-bridge", daemon=True)
        self.server_config = server_config
        self.record_config = record_config
        self.profile = profile
        self.policy_id = policy_id
        self.events: queue.Queue[_Request | EpisodeSummary | BaseException] = queue.Queue()
        self.listening = threading.Event()
        self.url = ""
        self.closing = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.recorder: Recorder | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the env's thread, which raises it
            self.error = exc
            self.events.put(exc)
        finally:
            self.listening.set()

    def _policy(self, profile: GameProfile, _seed: int) -> _Agent:
        if profile.id != self.profile.id:
            raise ProtocolError(f"this environment plays {self.profile.id}, the emulator sent {profile.id}",
                                ErrorCode.BAD_CONFIG)  # fmt: skip
        assert self.recorder is not None
        if self.recorder.stats.connections > 1:
            raise ProtocolError("this environment drives one emulator, and one is connected", ErrorCode.BAD_CONFIG)
        return _Agent(self, self.policy_id)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        recorder = Recorder(self.server_config, self._policy, self.events.put)
        self.recorder = recorder
        server_task, self.url = await start_server(recorder)
        self.listening.set()
        embedded = self.record_config.emulator != "none"
        clients = ClientSupervisor(lambda i: start_client(self.record_config, self.url, i), 1 if embedded else 0,
                                   restart=True)  # fmt: skip
        try:
            while not server_task.done():
                await asyncio.sleep(POLL_S)
                if self.closing:
                    recorder.shutdown(EndReason.SERVER_STOP)
                elif not recorder.done.is_set():
                    clients.poll()  # a client that exits is started again (its episode is saved as truncated)
            await server_task
        finally:
            if not server_task.done():
                recorder.shutdown(EndReason.SERVER_STOP)
                await asyncio.gather(server_task, return_exceptions=True)
            await clients.reap_all()

    def stop(self) -> None:
        """Shut the recorder down (open episodes end as ``server_stop``); the loop then ends."""
        if self.loop is not None and self.recorder is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self.loop.call_soon_threadsafe(self.recorder.shutdown, EndReason.SERVER_STOP)

    def answer(self, request: _Request, value: int | EndEpisode) -> None:
        assert self.loop is not None

        def resolve() -> None:
            if not request.answer.done():
                request.answer.set_result(value)

        with contextlib.suppress(RuntimeError):  # the loop has ended (its error reaches the env as an event)
            self.loop.call_soon_threadsafe(resolve)


class BridgeEnv(gym.Env[np.ndarray, np.int64]):
    """A ``gymnasium.Env`` whose emulator is a recorder client; every episode is saved to ``out``.

    The constructor returns once a client has connected and sent its first screen (the
    observation space is that screen's size), or raises after ``connect_timeout`` seconds.
    Call :meth:`close` (or use ``with``) to save the open episode and stop the emulator.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}  # noqa: RUF012 (gymnasium's own attribute)

    def __init__(
        self,
        game: str,
        out: str | Path = "data",
        *,
        emulator: str = "retro",
        state: str | None = None,
        frame_skip: int = 4,
        max_steps: int | None = None,
        obs_type: str = "rgb",
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        step_timeout: float = 60.0,
        connect_timeout: float = 120.0,
        agent_id: str = "gymnasium",
        render_mode: str | None = None,
    ) -> None:
        if obs_type not in ("rgb", "ram"):
            raise ConfigError(f"obs_type must be 'rgb' or 'ram', got {obs_type!r}")
        if emulator != "none" and emulator not in EMULATOR_KINDS:
            kinds = ", ".join(repr(k) for k in EMULATOR_KINDS)
            raise ConfigError(f"emulator must be {kinds} (embedded) or 'none' (BizHawk), got {emulator!r}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.profile = load_profile(game)
        if emulator != "none":
            self.profile.embedded_game(emulator)  # ProfileError: which emulator can run it
        self.obs_type = obs_type
        self.render_mode = render_mode
        self.step_timeout = step_timeout
        self.frame_skip = frame_skip
        self.action_space: spaces.Discrete = spaces.Discrete(len(self.profile.action_names))
        self.action_names = tuple(self.profile.action_names)
        self.metadata = {**self.metadata, "render_fps": max(1, round(60 / frame_skip))}
        server_config = ServerConfig(
            out=Path(out), host=host, port=port, token=token, game=game, mode=p.Mode.POLICY, policy=agent_id,
            frame_skip=frame_skip, max_steps=max_steps, step_timeout=step_timeout, policy_only=True,
        )  # fmt: skip
        record_config = RecordConfig(out=None, game=game, emulator=emulator, token=token, state=state)
        self._bridge = _Bridge(server_config, record_config, self.profile, agent_id)
        self._request: _Request | None = None  # the recorder's open question: which action next
        self._judge: EpisodeJudge | None = None
        self._steps = 0
        self._return = 0.0
        self._frame: np.ndarray | None = None
        self._closed = False
        self._bridge.start()
        self._bridge.listening.wait()
        if self._bridge.error is not None:
            raise self._bridge.error
        #: Where clients connect (``ws://host:port``); BizHawk's tool takes it in its window.
        self.url = self._bridge.url
        try:
            first = self._next_request(connect_timeout, "no emulator client connected")
        except BaseException:
            self.close()  # stop serving: nobody will use this env
            raise
        frame = first.obs.frame
        if obs_type == "rgb":
            self.observation_space: spaces.Box = spaces.Box(0, 255, frame.shape, np.uint8)
        else:
            self.observation_space = spaces.Box(0, 255, first.obs.ram.shape, np.uint8)
        self._begin(first)

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode from the emulator's start state (the episode open, if any, is saved as truncated).

        The emulator is deterministic from its start state, so ``seed`` only seeds ``np_random``.
        """
        super().reset(seed=seed)
        self._check_open()
        if self._request is not None and self._steps == 0:
            request = self._request  # nothing played since the start state: this is the start
        else:
            if self._request is not None:
                self._bridge.answer(self._request, EndEpisode(EndReason.AGENT_RESET))
                self._request = None
                self._until_episode_end()
            request = self._next_request(self.step_timeout, "the emulator did not start the next episode")
            if request.obs.step != 0:
                raise SonicRLError(f"the recorder asked for step {request.obs.step} of an episode, expected its start")
            self._begin(request)
        return self._observe(request.obs.frame, request.obs.ram), self._info(request.obs.ram)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._check_open()
        if self._request is None:
            raise gym.error.ResetNeeded("the episode has ended: call reset()")
        if not self.action_space.contains(action):
            raise gym.error.InvalidAction(f"action {action!r} is not in {self.action_space}")
        self._bridge.answer(self._request, int(action))
        self._request = None
        event = self._next_event(self.step_timeout, "the emulator sent no step")
        assert self._judge is not None
        self._steps += 1
        if isinstance(event, _Request):
            self._request = event
            reward, _ = self._judge.step(event.obs.ram)
            self._return += reward
            self._frame = None
            return self._observe(event.obs.frame, event.obs.ram), float(reward), False, False, self._info(event.obs.ram)
        # The episode ended on this step: its last observation is in the file just saved.
        frame, ram = self._last_observation(event)
        reward, _ = self._judge.step(ram)
        self._return += reward
        self._frame = frame
        info = {**self._info(ram), "end_reason": event.end_reason.label, "episode_return": event.episode_return,
                "path": str(event.path)}  # fmt: skip
        terminated = event.end_reason.terminal
        return self._observe(frame, ram), float(reward), terminated, not terminated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._frame is not None:
            return self._frame
        return None if self._request is None else self._request.obs.frame

    def close(self) -> None:
        """Save the open episode (truncated, ``server_stop``), stop the emulator client and the server."""
        if self._closed:
            return
        self._closed = True
        self._bridge.closing = True
        self._bridge.stop()  # before the answer below, so that the recorder starts no next episode
        if self._request is not None:
            self._bridge.answer(self._request, EndEpisode(EndReason.SERVER_STOP))
            self._request = None
        self._bridge.join(30)
        super().close()

    # -- helpers ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise gym.error.ClosedEnvironmentError("the environment is closed")

    def _begin(self, request: _Request) -> None:
        self._request = request
        self._judge = self.profile.judge(self.frame_skip)
        self._judge.start(request.obs.ram)
        self._steps = 0
        self._return = 0.0
        self._frame = None

    def _observe(self, frame: np.ndarray, ram: np.ndarray) -> np.ndarray:
        # A copy: the agent may keep it (replay buffers), and reset() may hand out the same start twice.
        return np.array(frame if self.obs_type == "rgb" else ram, dtype=np.uint8)

    def _info(self, ram: np.ndarray) -> dict[str, Any]:
        return {"ram": ram, "step": self._steps, "variables": dict(self.profile.read_variables(ram))}

    def _next_event(self, timeout: float, what: str) -> _Request | EpisodeSummary:
        try:
            event = self._bridge.events.get(timeout=timeout)
        except queue.Empty:
            raise SonicRLError(f"{what} within {timeout:.0f} s") from None
        if isinstance(event, BaseException):
            raise event
        return event

    def _next_request(self, timeout: float, what: str) -> _Request:
        while True:
            event = self._next_event(timeout, what)
            if isinstance(event, _Request):
                return event
            # An episode that ended with no request open (a client gone between episodes): nothing to return.

    def _until_episode_end(self) -> None:
        while not isinstance(self._next_event(self.step_timeout, "the recorder did not end the episode"),
                             EpisodeSummary):  # fmt: skip
            pass

    def _last_observation(self, summary: EpisodeSummary) -> tuple[np.ndarray, np.ndarray]:
        if summary.path is None:
            raise SonicRLError(f"episode {summary.episode} ended ({summary.end_reason.label}) but was not saved")
        with EpisodeReader(summary.path) as ep:
            n = ep.n_steps
            return ep.frames(n, n + 1)[0], ep.ram(n, n + 1)[0]
