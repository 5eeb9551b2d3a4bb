"""Phase 2 over several processes and machines with torch.distributed (gloo, CPU).

Phase-2 samples are independent given the phase-1 weights, and every batch is encoded with its own seed
(derived from the run's seed, the split and the batch's first sample), so any process can compute any
batch and get the numbers one process would. Under ``torchrun`` (which sets RANK / WORLD_SIZE / MASTER_ADDR),
`astrosnn.nalsm.job.run`:

1. runs phase 1 on rank 0 only (with its checkpoint) and broadcasts the weights;
2. splits each checkpoint chunk of phase-2 batches round-robin over the ranks (``--checkpoint-every``
   batches per process), gathers the spike counts on rank 0 in the original order and checkpoints them there;
3. trains the readout and writes every file on rank 0; the other ranks write nothing.

One machine, two processes::

    torchrun --standalone --nproc-per-node 2 -m astrosnn nalsm train --out runs/x

Two machines (run on each, NODE = 0 or 1; every machine needs the data, rank 0's writes the outputs)::

    torchrun --nnodes 2 --node-rank NODE --nproc-per-node 8 --master-addr HOST0 --master-port 29500 \\
        -m astrosnn nalsm train --dataset mnist --out runs/x

Features and metrics equal a one-process run's (tests/nalsm/test_shard.py). Carried phase-2 traces make
the batches a chain, so they refuse to shard. ``ASTROSNN_DIST_TIMEOUT_S`` (default a day) bounds how long
ranks wait, e.g. for rank 0's phase 1.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch

from astrosnn.errors import AstrosnnError

DEFAULT_TIMEOUT_S = 24 * 3600


class Shard:
    """This process's place among ``size`` processes (rank 0 is the one that writes)."""

    def __init__(self, rank: int = 0, size: int = 1, *, owns_group: bool = False):
        self.rank, self.size, self._owns_group = rank, size, owns_group

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (any picklable value, e.g. a tensor or an int)."""
        if self.size == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0, in rank order; None elsewhere."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.size if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self._owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_group = False


def from_env() -> Shard:
    """The shard torchrun describes in the environment (WORLD_SIZE > 1), else a single process."""
    size = os.environ.get("WORLD_SIZE")
    if size is None or size.strip() in ("", "1"):
        return Shard()
    try:
        world, rank = int(size), int(os.environ["RANK"])
    except (KeyError, ValueError):
        raise AstrosnnError("WORLD_SIZE is set but RANK is missing or not a number (start with torchrun)") from None
    if not 0 <= rank < world:
        raise AstrosnnError(f"RANK {rank} out of range for WORLD_SIZE {world}")
    import torch.distributed as dist

    if not dist.is_available():
        raise AstrosnnError("this torch build has no torch.distributed: run phase 2 in one process")
    timeout = float(os.environ.get("ASTROSNN_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout))
    return Shard(dist.get_rank(), dist.get_world_size(), owns_group=owns)


def broadcast_liquid(shard: Shard, weights: torch.Tensor | None) -> torch.Tensor:
    """Rank 0's phase-1 weights on every rank."""
    return shard.broadcast(weights.contiguous() if weights is not None else None)
