"""The learner: online and target Q-networks, Adam, and one update per batch.

The update is the CleanRL shape: next-state values under ``no_grad``, the pure
loss from ``trainer.loss``, one optimizer step with gradient-norm clipping, and
a target sync every ``target_update`` updates.

bf16 autocast is used wherever the hardware runs it natively (CUDA, and CPUs with
AVX512-BF16 or AMX, where oneDNN halves the convolution time here).

On CUDA three things keep a small-batch update from being bound by the host:
bf16 autocast; batches sampled into pinned host memory and copied on a side
stream while the previous update runs (``DeviceFeeder``); and the whole update
(forward, backward, clip, Adam) captured once as a CUDA graph and replayed, so a
batch-32 update costs one graph launch instead of a few hundred kernel launches
(PyTorch docs, "CUDA Graphs": whole-network capture, with a capturable fused
Adam). If capture fails the learner says so and runs eagerly.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from dataset.errors import ConfigError
from trainer.allocator import keep_freed_memory
from trainer.config import Algo, DeviceChoice, TrainConfig
from trainer.loss import q_learning_loss
from trainer.network import QNetwork
from trainer.replay import Batch, BatchSampler

__all__ = [
    "DeviceFeeder", "Learner", "cpu_supports_bf16", "network_inputs", "random_shift", "resolve_device",
    "seed_everything",
]

#: Metrics returned by every update, in this order.
METRIC_NAMES = ("loss", "td", "cql", "q_mean", "target_mean")


def resolve_device(choice: DeviceChoice | str) -> torch.device:
    choice = DeviceChoice(choice)
    if choice is DeviceChoice.CUDA and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for but CUDA is not available here; use --device cpu or auto")
    if choice is DeviceChoice.CPU or (choice is DeviceChoice.AUTO and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def cpu_supports_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX512-BF16 or AMX), so autocast pays off."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (network init) and return the numpy generator that drives sampling."""
    torch.manual_seed(seed)
    return np.random.Generator(np.random.PCG64(seed))


def random_shift(frames: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ's augmentation (Kostrikov et al. 2020): pad each image by ``pad`` pixels, repeating the
    border, and crop it back at a random offset; one offset per sample, the same for its channels.

    Clamped indices are the same as replicate-padding and cropping, and work on uint8. On CUDA
    two gathers (no host sync, so it stays inside a CUDA graph); on CPU one slice per sample,
    which measured 1 ms against 3.7 ms for the gathers (batch 32, 4x84x84, one thread).
    """
    b, c, h, w = frames.shape
    shift = torch.randint(0, 2 * pad + 1, (b, 2), device=frames.device) - pad
    rows = (torch.arange(h, device=frames.device) + shift[:, :1]).clamp(0, h - 1)  # (B, h)
    cols = (torch.arange(w, device=frames.device) + shift[:, 1:]).clamp(0, w - 1)  # (B, w)
    if frames.device.type == "cpu":
        # Pad once (the border repeated), then take each sample's window as a view.
        pad_rows = torch.arange(-pad, h + pad).clamp(0, h - 1)
        pad_cols = torch.arange(-pad, w + pad).clamp(0, w - 1)
        padded = frames.index_select(2, pad_rows).index_select(3, pad_cols)
        starts = (shift + pad).tolist()
        return torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(starts)])
    out = frames.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def network_inputs(states: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """A batch's (B, 2, C, h, w) uint8 states as float32 (2, B, h, w, C): ``[i].permute(0, 3, 1, 2)``
    is state i (0: the state, 1: the bootstrap state) as a channels-last (B, C, h, w) tensor.

    One conversion per update serves all three forward passes (target and online on the
    next state, online on the state). Channels-last is oneDNN's native layout: measured on
    a float32 CPU update (one thread, 84x84x4), the first convolution's forward ran 2.4x
    faster and its weight gradient 2.3x (batch 32) to 3.9x (batch 256) faster than in
    NCHW, where oneDNN reorders every call (docs/training.md "CPU speed"). The conversion
    and the permute are one copy into ``out``, reused across updates when given: a fresh
    58 MB block per batch-256 update is a fresh mmap, and its page faults cost more than
    the copy (25 ms vs 12 ms here).
    """
    n, two, c, h, w = states.shape
    shape = (two, n, h, w, c)
    if out is None or tuple(out.shape) != shape or out.device != states.device:
        out = torch.empty(shape, dtype=torch.float32, device=states.device)
    return out.copy_(states.permute(1, 0, 3, 4, 2))


class Learner:
    """Holds the networks and the optimizer; ``update`` performs one gradient step."""

    def __init__(
        self,
        config: TrainConfig,
        state_shape: tuple[int, int, int],
        n_actions: int,
        device: torch.device,
    ) -> None:
        self.config = config
        self.device = device
        self.cuda = device.type == "cuda"
        if not self.cuda:
            keep_freed_memory()  # each update reuses the last one's pages (trainer/allocator.py)
        # Channels-last weights and inputs (network_inputs): oneDNN's (and cuDNN's) native layout.
        self.online = QNetwork.of_config(config, n_actions, state_shape=state_shape).to(
            device, memory_format=torch.channels_last
        )
        self.target = QNetwork.of_config(config, n_actions, state_shape=state_shape).to(
            device, memory_format=torch.channels_last
        )
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)
        #: What the update calls for the online network's Q-values: ``online`` itself, or
        #: ``online`` in DistributedDataParallel (trainer/distributed.py), which averages its
        #: gradients over the ranks.
        self.online_forward: nn.Module = self.online
        if self.cuda:
            # Fused + capturable Adam: one kernel per step, and no host sync, so it can
            # live inside a CUDA graph.
            self.optimizer = torch.optim.Adam(
                self.online.parameters(), lr=config.lr, eps=config.adam_eps, fused=True, capturable=True
            )
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        else:
            # The fused CPU kernel (torch >= 2.4) updates each tensor in one vectorised pass.
            # The foreach/for-loop paths call aten::sqrt on the whole second moment, which
            # is slow on the many exact zeros that dead ReLU units leave in it: measured
            # here, one Adam step of the Nature CNN took 44 ms with foreach=True and 6 ms
            # fused; batch-32 updates went from 33.6 to 39.2 per second (docs/training.md).
            self.optimizer = torch.optim.Adam(
                self.online.parameters(), lr=config.lr, eps=config.adam_eps, fused=True
            )
        self.amp_dtype = torch.bfloat16 if config.amp and (self.cuda or cpu_supports_bf16()) else None
        self.updates = 0
        self._inputs: torch.Tensor | None = None  # network_inputs' buffer
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_in: tuple[torch.Tensor, ...] | None = None
        self._static_out: torch.Tensor | None = None

    # ------------------------------------------------------------------ the step

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        # On CUDA autocast's weight cache must not outlive a graph capture; on CPU it saves
        # casting the online network's weights twice per update (next-state and state passes).
        return torch.autocast(self.device.type, dtype=self.amp_dtype, cache_enabled=not self.cuda)

    def _step(self, *batch: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        states, actions, returns, discounts, prev_actions, mc_returns = batch
        if cfg.random_shift:
            # DrQ (Kostrikov et al. 2020): independent shifts of the state and the bootstrap state.
            states = torch.stack([random_shift(states[:, i], cfg.random_shift) for i in (0, 1)], dim=1)
        self._inputs = network_inputs(states, self._inputs)
        obs, nxt = (x.permute(0, 3, 1, 2) for x in self._inputs)
        prev, prev_next = (prev_actions[:, 0], prev_actions[:, 1]) if cfg.prev_action else (None, None)
        logits = None
        with self._autocast():
            with torch.no_grad():
                q_next_target = self.target(nxt, prev_next)
                q_next_online = None if cfg.algo is Algo.DQN else self.online_forward(nxt, prev_next)
            if self.online.distributional:
                # Through online_forward (DistributedDataParallel's hooks), asking for the logits.
                logits = self.online_forward(obs, prev, return_logits=True)
                q = self.online.q_of_logits(logits)
            else:
                q = self.online_forward(obs, prev)
        out = q_learning_loss(
            q, q_next_target, q_next_online, actions, returns, discounts,
            algo=cfg.algo, cql_alpha=cfg.cql_alpha, huber_delta=cfg.huber_delta,
            logits=logits, support=self.online.support if logits is not None else None,
            calibration=mc_returns if cfg.cal_ql else None,
        )  # fmt: skip
        out.loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), cfg.grad_clip, foreach=True)
        self.optimizer.step()
        return torch.stack([out.loss.detach(), out.td, out.cql, out.q_mean, out.target_mean])

    def update(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns: torch.Tensor,
        discounts: torch.Tensor,
        prev_actions: torch.Tensor | None = None,
        mc_returns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One gradient step on a batch (``Batch``'s fields in order). Returns the metrics (METRIC_NAMES).

        ``prev_actions`` and ``mc_returns`` may be left out when the config does not use them
        (--prev-action, --cal-ql). Reading the metrics forces a device sync, so the loop reads
        them only when it logs.
        """
        if prev_actions is None:
            if self.config.prev_action:
                raise ValueError("--prev-action needs the batch's previous actions")
            prev_actions = torch.full((actions.shape[0], 2), -1, dtype=torch.int64, device=actions.device)
        if mc_returns is None:
            if self.config.cal_ql:
                raise ValueError("--cal-ql needs the batch's Monte Carlo returns")
            mc_returns = torch.zeros_like(returns)
        batch = (states, actions, returns, discounts, prev_actions, mc_returns)
        if self.cuda and self.config.compile:
            metrics = self._graph_update(*batch)
        else:
            self.optimizer.zero_grad(set_to_none=True)
            metrics = self._step(*batch)
        self.updates += 1
        if self.updates % self.config.target_update == 0:
            self.sync_target()
        return metrics

    def sync_target(self) -> None:
        # In-place copies: the target's tensors keep their addresses, which a captured
        # CUDA graph depends on.
        with torch.no_grad():
            for t, o in zip(self.target.parameters(), self.online.parameters(), strict=True):
                t.copy_(o)
            for t, o in zip(self.target.buffers(), self.online.buffers(), strict=True):
                t.copy_(o)

    def _graph_update(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self._graph is None and self._static_out is None:
            try:
                self._capture(inputs)
            except Exception as exc:  # capture is an optimisation: fall back, loudly
                warnings.warn(f"CUDA graph capture failed ({exc}); running eager updates", stacklevel=2)
                self._graph = None
                self._static_out = torch.empty(0)  # marks "tried"
        if self._graph is None:
            self.optimizer.zero_grad(set_to_none=True)
            return self._step(*inputs)
        assert self._static_in is not None and self._static_out is not None
        for static, x in zip(self._static_in, inputs, strict=True):
            if static.data_ptr() != x.data_ptr():
                static.copy_(x, non_blocking=True)
        self._graph.replay()
        return self._static_out

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> None:
        # Warm-up steps run on a side stream before capture (required by CUDA graphs);
        # they must not count as training, so parameters and optimizer state are put
        # back afterwards, in place.
        params = [p.detach().clone() for p in self.online.parameters()]
        opt_before = {
            id(p): {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
            for p, s in self.optimizer.state.items()
        }
        static_in = tuple(x.clone() for x in inputs)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.optimizer.zero_grad(set_to_none=True)
                self._step(*static_in)
        torch.cuda.current_stream().wait_stream(side)
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._step(*static_in)
        torch.cuda.synchronize()
        with torch.no_grad():
            for p, saved in zip(self.online.parameters(), params, strict=True):
                p.copy_(saved)
            for p, s in self.optimizer.state.items():
                before = opt_before.get(id(p), {})
                for k, v in s.items():
                    if torch.is_tensor(v):
                        if k in before:
                            v.copy_(before[k])
                        else:
                            v.zero_()
        self._graph, self._static_in, self._static_out = graph, static_in, static_out

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])


class DeviceFeeder:
    """Samples batches from the store and puts them on the learner's device.

    CPU: the numpy batch is wrapped without a copy. CUDA: two pinned host buffers
    and two device staging buffers; batch i+1 is sampled on the host and copied on
    a side stream while update i runs, then moved into fixed input tensors (the
    CUDA graph's static inputs) by the learner with a device-to-device copy.
    """

    def __init__(
        self,
        store: BatchSampler,
        rng: np.random.Generator,
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.store = store
        self.rng = rng
        self.batch_size = batch_size
        self.device = device
        self.cuda = device.type == "cuda"
        if self.cuda:
            shape = (batch_size, 2, *store.state_shape)
            self._host = [
                (
                    torch.empty(shape, dtype=torch.uint8).pin_memory(),
                    torch.empty(batch_size, dtype=torch.int64).pin_memory(),
                    torch.empty(batch_size, dtype=torch.float32).pin_memory(),
                    torch.empty(batch_size, dtype=torch.float32).pin_memory(),
                    torch.empty((batch_size, 2), dtype=torch.int64).pin_memory(),
                    torch.empty(batch_size, dtype=torch.float32).pin_memory(),
                )
                for _ in range(2)
            ]
            self._staging = [tuple(t.to(device) for t in host) for host in self._host]
            self._copy_stream = torch.cuda.Stream()
            self._copied = [torch.cuda.Event() for _ in range(2)]
            self._consumed = [torch.cuda.Event() for _ in range(2)]
            self._slot = 0
            self._pending: int | None = None
            #: The generator's state before each slot's batch was drawn (see ``checkpoint_rng``).
            self._rng_before: list[dict[str, Any]] = [{}, {}]

    def _sample_into_host(self, slot: int) -> None:
        states, *rest = self._host[slot]
        self._rng_before[slot] = self.rng.bit_generator.state
        batch = self.store.sample(self.batch_size, self.rng, out=states.numpy())
        for host, name in zip(rest, Batch.FIELDS, strict=True):
            host.numpy()[:] = getattr(batch, name)

    def _prefetch(self) -> int:
        slot = self._slot
        self._slot ^= 1
        self._copied[slot].synchronize()  # the host buffer's previous copy has finished
        self._sample_into_host(slot)
        with torch.cuda.stream(self._copy_stream):
            self._copy_stream.wait_event(self._consumed[slot])
            for dst, src in zip(self._staging[slot], self._host[slot], strict=True):
                dst.copy_(src, non_blocking=True)
            self._copied[slot].record(self._copy_stream)
        return slot

    def next(self) -> tuple[torch.Tensor, ...]:
        """The next batch on the device (``Batch``'s fields in order). On CUDA, call ``release()`` once consumed."""
        if not self.cuda:
            b = self.store.sample(self.batch_size, self.rng)
            return tuple(torch.from_numpy(getattr(b, name)) for name in ("states", *Batch.FIELDS))
        if self._pending is None:
            self._pending = self._prefetch()
        torch.cuda.current_stream().wait_event(self._copied[self._pending])
        return self._staging[self._pending]  # type: ignore[return-value]

    def checkpoint_rng(self) -> np.random.Generator:
        """The sampler's generator as a checkpoint must hold it: before the batch drawn ahead.

        On CUDA the next batch is sampled while the current update runs, so ``rng`` is one
        batch ahead of the learner; a run resumed from ``rng`` would skip that batch. This is
        the generator as it was before drawing it: the resumed run draws the same batches.
        """
        if not self.cuda or self._pending is None:
            return self.rng
        rng = np.random.Generator(type(self.rng.bit_generator)())
        rng.bit_generator.state = self._rng_before[self._pending]
        return rng

    def release(self) -> None:
        """Mark the batch from ``next()`` consumed (after its update is queued) and prefetch.

        Called after the update is queued, the host samples the next batch while the
        device computes; the copy stream waits until the update has read its inputs.
        """
        if not self.cuda or self._pending is None:
            return
        self._consumed[self._pending].record(torch.cuda.current_stream())
        self._pending = self._prefetch()
