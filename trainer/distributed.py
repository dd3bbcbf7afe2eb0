"""Data-parallel ``sonic-train offline`` over several processes: torch.distributed, as torchrun launches it.

``torchrun --nproc-per-node N -m trainer.cli offline ...`` (several GPUs, or several nodes
with torchrun's rendezvous flags) or ``sonic-train offline --ddp N ...`` (N local processes,
started through torchrun's launcher by ``launch_local``) run one process per rank. Each rank:

* samples ``--batch-size / N`` transitions per update from its own shard of the replay
  index (``ShardSampler``: a contiguous slice of the transitions, so on several nodes each
  reads its own part of the memory-mapped frames), with its own generator (``rank_rng``);
* runs the same update on a replica of the network wrapped in torch's
  ``DistributedDataParallel``, which averages the gradients across ranks during the backward
  pass (buckets all-reduced while the rest of the backward runs), so every replica takes the
  same Adam step: the global batch is ``--batch-size``, as in one process;
* agrees with the others before every update whether to stop (``Ranks.any``: Ctrl-C or
  SIGTERM reaches the ranks at slightly different moments; all stop after the same update).

Rank 0 alone writes the run folder (config, metrics averaged over the ranks, checkpoints); a
checkpoint holds every rank's sampler state, so a resumed run with the same number of ranks
carries on where each left off. Backends: NCCL on CUDA (one GPU per rank, ``LOCAL_RANK``),
gloo on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from dataset.errors import ConfigError
from trainer.replay import Batch, ReplayStore

__all__ = ["Ranks", "ShardSampler", "launch_local", "rank_rng", "strip_ddp_flag"]


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place in the job (torchrun's RANK, WORLD_SIZE and LOCAL_RANK)."""

    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Ranks | None:
        """The job torchrun started this process in; None outside torchrun (or for one process)."""
        env = os.environ if environ is None else environ
        if int(env.get("WORLD_SIZE", "1")) <= 1:
            return None
        try:
            return cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"])))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"torchrun's environment is incomplete ({exc}); start with torchrun") from None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self, cuda: bool) -> None:
        """Join the process group (torchrun's MASTER_ADDR/MASTER_PORT rendezvous)."""
        if cuda:
            torch.cuda.set_device(self.local_rank)  # "cuda" is this rank's GPU from here on
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", rank=self.rank, world_size=self.world_size)

    def close(self, finished: bool = True) -> None:
        """Leave the process group: after the other ranks (``finished``), with nothing left in flight.

        In CI a rank 1 that had finished aborted on its way out ("terminate called without an
        active exception", exit -6) while rank 0 still wrote its checkpoint. The likely cause
        (pytorch/pytorch#179291): gloo work objects still held by the DistributedDataParallel
        reducer are freed during interpreter shutdown and take the GIL there. So the DDP wrapper,
        unreachable once training returns, is collected here first; the ranks meet at a barrier,
        so none leaves while another still talks to it; then the group is destroyed. After a
        failure there is no barrier: the others may never reach it (pytorch/torchtitan#1342).
        """
        if not dist.is_initialized():
            return
        gc.collect()  # the unwrapped DDP module and its reducer's pending work, while Python is whole
        if finished:
            dist.barrier()
        dist.destroy_process_group()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. building the replay cache); the others after it."""
        if not self.is_main:
            dist.barrier()
        try:
            yield
        finally:
            if self.is_main:
                dist.barrier()

    def local_batch(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            raise ConfigError(
                f"--batch-size {batch_size} must be a multiple of the {self.world_size} processes "
                "(it is the global batch, split evenly)"
            )
        return batch_size // self.world_size

    def wrap(self, module: nn.Module, cuda: bool) -> nn.Module:
        """``module`` in DistributedDataParallel: its gradients are averaged over the ranks in backward."""
        return nn.parallel.DistributedDataParallel(module, device_ids=[self.local_rank] if cuda else None)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any (a collective: every rank must call it)."""
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def mean(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """The mean of each value over the ranks (a collective)."""
        t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world_size).tolist(), strict=True))

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (None elsewhere; a collective)."""
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out


def rank_rng(seed: int, rank: int) -> np.random.Generator:
    """Rank ``rank``'s sampler generator: independent streams from one seed (NumPy's SeedSequence spawning)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(rank,))))


class ShardSampler:
    """Uniform sampling from one rank's contiguous shard of a ``ReplayStore``'s transitions."""

    def __init__(self, store: ReplayStore, rank: int, world_size: int) -> None:
        n = len(store)
        if n < world_size:
            raise ConfigError(f"{n} transitions cannot be split over {world_size} processes; record more")
        self.store = store
        self.lo, self.hi = rank * n // world_size, (rank + 1) * n // world_size
        self.state_shape = store.state_shape

    def __len__(self) -> int:
        return self.hi - self.lo

    def sample(self, batch_size: int, rng: np.random.Generator, out: np.ndarray | None = None) -> Batch:
        t = self.lo + rng.integers(0, self.hi - self.lo, size=batch_size, dtype=np.int64)
        return self.store.gather(t, out=out)


def strip_ddp_flag(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--ddp N`` / ``--ddp=N`` (what each rank of ``launch_local`` is started with)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--ddp":
            skip = True
        elif not arg.startswith("--ddp="):
            out.append(arg)
    return out


def launch_local(processes: int, argv: Sequence[str]) -> int:
    """Run ``sonic-train`` ``argv`` as ``processes`` local ranks through torchrun's launcher; the exit status.

    What ``torchrun --standalone --nproc-per-node N -m trainer.cli ARGV`` does (a local
    rendezvous on a free port, one OpenMP thread per rank unless OMP_NUM_THREADS is set, the
    other ranks stopped when one fails), with ARGV handed over as parsed: torchrun's own
    parser would take ``--run`` for an abbreviation of its ``--run-path``. Ctrl-C reaches every
    rank from the terminal; they agree on the update to stop after and save it.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={processes}", "-m", "trainer.cli"])
    args.training_script_args = list(argv)
    try:
        run(args)
    except ChildFailedError as exc:  # the rank said why on stderr
        return next((f.exitcode for f in exc.failures.values() if f.exitcode > 0), 1)
    except SignalException:
        return 130
    return 0
