"""The acting side of ``sonic-train online``: one Q-network copy serving every client, batched.

Every connected emulator is a recorder connection with its own ``ActorHandle``
(the ``recorder.policy.Policy`` the server drives; it keeps that client's frame
stack and episode metadata). The handles submit observations to one
``BatchedActor``, which gathers the requests that arrive within a short window
(``window_s``, or until every connected client is waiting), then runs one
preprocessing call and one forward pass for all of them in a dedicated worker
thread, so the websocket loop never blocks on torch (the server awaits
``act_async``). While one batch is in the worker, the next one is collecting.

The network lives on the training device and is refreshed by the learner with
``publish(state_dict, version)``: the learner hands over a copy taken between two
of its own updates, and the worker loads it before its next batch. ``version`` is
the learner's update count; it is what the server stores per step
(``policy_versions``) and sends in ACTION.

Exploration is epsilon-greedy on a linear schedule over the run's online
environment steps (Mnih et al. 2015 anneal epsilon linearly). Epsilon is fixed for
the length of an episode, so the epsilon an episode file is marked with is exactly
the epsilon that produced every step in it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from recorder.policy import PolicyInput
from trainer.config import EpsilonSchedule, PreprocessConfig
from trainer.frame_stack import FrameStack
from trainer.network import QNetwork
from trainer.preprocessing import preprocess_frames

__all__ = ["ActorHandle", "BatchedActor"]


@dataclasses.dataclass(eq=False)
class _Request:
    handle: ActorHandle
    frame: np.ndarray
    future: asyncio.Future[tuple[int, int]]


class ActorHandle:
    """One client's view of the shared actor: a ``recorder.policy.Policy`` with ``act_async``."""

    def __init__(self, actor: BatchedActor, seed: int) -> None:
        self.actor = actor
        self.policy_id = actor.policy_id
        self.version = actor.version
        self.epsilon = actor.epsilon_now()
        self.metadata: dict[str, str] = {}
        self.rng = np.random.default_rng(seed)
        # Pushed to only by the actor's worker thread (one request at a time per handle: a client
        # waits for its action before it sends the next observation; reset() comes between episodes).
        self.stack = FrameStack(actor.frame_stack)
        #: The action this client played last in the episode (-1: none yet), for --prev-action networks.
        self.last_action = -1
        self.reset()

    def reset(self) -> None:
        """A new episode: empty frame stack and previous action, this episode's epsilon and file metadata."""
        self.stack.reset()
        self.last_action = -1
        self.epsilon = self.actor.epsilon_now()
        self.metadata = self.actor.episode_metadata(self.epsilon)

    async def act_async(self, obs: PolicyInput) -> int:
        action, version = await self.actor.submit(self, obs.frame)
        self.version = version
        return action

    def act(self, obs: PolicyInput) -> int:  # the Policy protocol; the server prefers act_async
        raise RuntimeError("ActorHandle acts through act_async on the recorder's event loop")


class BatchedActor:
    """Batched epsilon-greedy inference for every connected client (see the module docstring)."""

    def __init__(
        self,
        network: QNetwork,
        preprocess: PreprocessConfig,
        frame_stack: int,
        *,
        device: torch.device,
        version: int,
        schedule: EpsilonSchedule,
        env_steps: Callable[[], int],
        metadata: Callable[[], dict[str, str]],
        policy_id: str,
        window_s: float = 0.002,
        gate: Callable[[], None] | None = None,
    ) -> None:
        self.network = network.to(device).eval()
        self.network.requires_grad_(False)
        self.preprocess = preprocess
        self.frame_stack = frame_stack
        self.device = device
        self.version = version
        self.schedule = schedule
        self._env_steps = env_steps
        self._metadata = metadata
        self.policy_id = policy_id
        self.window_s = window_s
        #: Called by the worker before each batch; it may block (``--strict-ratio``: the learner is behind).
        self.gate = gate
        self._handles: weakref.WeakSet[ActorHandle] = weakref.WeakSet()
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task[None] | None = None
        # One worker: inference batches run one after another, off the event loop.
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="actor")
        self._pending: tuple[dict[str, torch.Tensor], int] | None = None
        self._pending_lock = threading.Lock()
        #: Counters for the progress line and the benchmark.
        self.batches = 0
        self.requests = 0

    # ------------------------------------------------------------------ policy side

    def epsilon_now(self) -> float:
        return float(self.schedule(self._env_steps()))

    def episode_metadata(self, epsilon: float) -> dict[str, str]:
        return {
            **self._metadata(),
            "policy_version": str(self.version),
            "epsilon": f"{epsilon:.6g}",
            "epsilon_schedule": self.schedule.describe(),
        }

    def handle(self, seed: int) -> ActorHandle:
        """A new client's policy (the recorder's policy factory calls this once per connection)."""
        h = ActorHandle(self, seed)
        self._handles.add(h)
        return h

    # ------------------------------------------------------------------ weights

    def publish(self, state_dict: dict[str, torch.Tensor], version: int) -> None:
        """Called from the learner thread with a private copy of its online network's weights."""
        with self._pending_lock:
            self._pending = (state_dict, version)

    def _refresh(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.network.load_state_dict(pending[0])
            self.version = pending[1]

    # ------------------------------------------------------------------ batching

    def start(self) -> None:
        """Start the batching task on the running loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=True)

    async def submit(self, handle: ActorHandle, frame: np.ndarray) -> tuple[int, int]:
        if self._queue is None:
            raise RuntimeError("BatchedActor.start() was not called")
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(handle, frame, future))
        return await future

    async def _serve(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.window_s
            # Wait for the other clients' observations, but never longer than the window:
            # a client between episodes (or gone) must not stall the ones that are playing.
            while len(batch) < len(self._handles):
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await loop.run_in_executor(self._pool, self._infer, batch)
            except Exception as exc:  # hand the failure to every waiting connection
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)
                continue
            for r, result in zip(batch, results, strict=True):
                if not r.future.done():
                    r.future.set_result(result)

    def _infer(self, batch: list[_Request]) -> list[tuple[int, int]]:
        """Worker thread: preprocess, stack, one forward pass, epsilon-greedy per client."""
        if self.gate is not None:
            self.gate()  # off the event loop: the recorder keeps serving while the actor waits
        self._refresh()
        frames = preprocess_frames(np.stack([r.frame for r in batch]), self.preprocess)  # (B, C, h, w)
        states = np.stack([r.handle.stack.push(frame) for r, frame in zip(batch, frames, strict=True)])
        prev = torch.tensor([r.handle.last_action for r in batch], device=self.device)
        with torch.inference_mode():
            q = self.network(torch.from_numpy(states).to(self.device, non_blocking=True), prev)
            greedy = q.argmax(dim=1).cpu().numpy()
        n_actions = int(q.shape[1])
        out = []
        for i, r in enumerate(batch):
            h = r.handle
            action = int(greedy[i])
            if h.epsilon > 0 and h.rng.random() < h.epsilon:
                action = int(h.rng.integers(n_actions))
            h.last_action = action
            out.append((action, self.version))
        self.batches += 1
        self.requests += len(batch)
        return out

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "requests": self.requests,
                "mean_batch": self.requests / self.batches if self.batches else 0.0}  # fmt: skip
