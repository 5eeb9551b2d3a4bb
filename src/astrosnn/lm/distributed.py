"""Many processes for `lm train`: torchrun's environment, DDP or FSDP2, gradient accumulation, activation
checkpointing, bf16 autocast, and the distributed checkpoint (torch.distributed.checkpoint).

    torchrun --standalone --nproc-per-node 2 -m astrosnn lm train --corpus DIR --global-batch 32 --batch-size 8

- :func:`detect` reads RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun); one process without them.
- :func:`batch_plan` splits the global batch (rows) into world_size x accumulation x micro-batch; a world size
  that does not divide it is a one-line error before any work.
- Rank r reads rows r, r + W, ... of the global batch (``TokenStream(rank, world_size)``) and carries the
  recurrent state of those rows; the global state is gathered in global row order for a checkpoint, so a run
  resumes on any number of processes.
- :func:`wrap` puts the model under DDP, or FSDP2 (``fully_shard`` per block, then the root).
- :func:`save_checkpoint` writes the step folder: ``dcp/`` (model + optimizer, sharded, any world size reads it),
  the full model (``model.safetensors`` + ``config.json``, gathered to rank 0, what ``lm generate`` reads), and
  the training state (progress, RNG, carried state of every row); rank 0 hashes every file into the manifest.
"""

from __future__ import annotations

import datetime
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from astrosnn.errors import AstrosnnError

PARALLEL = ("ddp", "fsdp")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: rank, world size, local rank (torchrun's variables), and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % max(torch.cuda.device_count(), 1))
        return torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise AstrosnnError(f"environment variable {name}={text!r} is not an integer") from None


def detect() -> DistEnv:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK); a single process without it."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise AstrosnnError(f"RANK={rank} does not lie in 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    return DistEnv(rank, world, local)


def init(env: DistEnv, timeout_s: float = 1800.0) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA) when there are several processes."""
    import torch.distributed as dist

    if not env.active or dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(env.device)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def batch_plan(global_batch: int | None, micro_batch: int, world_size: int) -> tuple[int, int]:
    """(global batch, accumulation steps): global = world_size x accumulation x micro-batch rows.

    `global_batch` None: one micro-batch per process (global = world_size x micro_batch)."""
    if global_batch is None:
        return micro_batch * world_size, 1
    per_step = micro_batch * world_size
    if global_batch % per_step:
        raise AstrosnnError(f"the global batch of {global_batch} rows does not divide into {world_size} process(es) x "
                            f"micro-batches of {micro_batch} (--global-batch must be a multiple of "
                            f"{per_step} = world size x --batch-size)")  # fmt: skip
    return global_batch, global_batch // per_step


def check_precision(precision: str | None, device: torch.device) -> str:
    """fp32 or bf16 (autocast, CUDA only); None: bf16 on CUDA, fp32 on CPU."""
    if precision is None:
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise AstrosnnError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision == "bf16" and device.type != "cuda":
        raise AstrosnnError("precision bf16 (autocast) needs a CUDA device; use --precision fp32 on a CPU")
    return precision


def autocast(precision: str, device: torch.device):  # noqa: ANN201
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


# ------------------------------------------------------------------------------------------- the model


def activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in the backward pass (torch.utils.checkpoint, non-reentrant): the
    same gradients for less memory. The blocks keep their names (the checkpoint's keys do not change)."""
    from torch.utils.checkpoint import checkpoint

    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise AstrosnnError(f"activation checkpointing needs a model made of blocks; {model.kind} has none")
    for block in blocks:
        inner = block.forward

        def forward(self, *args: Any, _inner=inner, **kwargs: Any) -> Any:  # noqa: ANN001
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = types.MethodType(forward, block)


def wrap(model: nn.Module, parallel: str, env: DistEnv) -> nn.Module:
    """The model under DDP, or FSDP2 (fully_shard per block, then the root); unchanged in one process."""
    if not env.active:
        return model
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [env.device.index] if env.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if parallel == "fsdp":
        import warnings

        from torch.distributed.fsdp import fully_shard

        # the blocks return (output, state) with views inside the state; nothing writes into them in place
        warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
        for block in getattr(model, "blocks", ()):
            fully_shard(block)
        fully_shard(model)
        return model
    raise AstrosnnError(f"unknown parallel mode {parallel!r} (choose from {', '.join(PARALLEL)})")


def unwrap(model: nn.Module) -> nn.Module:
    """The model itself (DDP's `.module`; an FSDP2 model is its own module)."""
    return getattr(model, "module", model)


# ----------------------------------------------------------------------------------- collectives


def all_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum float64 values over the ranks (as they are in one process)."""
    if not env.active:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return t.tolist()


def all_max(value: float, env: DistEnv) -> float:
    if not env.active:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def agree(error: BaseException | None, env: DistEnv) -> None:
    """Every rank learns whether any rank failed: the failing rank raises its error, the others a one-line
    note (no rank waits forever in a collective that a failed rank never joins)."""
    if not env.active:
        if error is not None:
            raise error
        return
    import torch.distributed as dist

    t = torch.tensor([0 if error is None else 1], dtype=torch.int64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if error is not None:
        raise error
    if int(t):
        raise AstrosnnError(f"rank {env.rank}: stopped because another rank failed (its error is above)")


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    if not env.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    if env.active:
        import torch.distributed as dist

        dist.barrier()


def gather_rows(local: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This rank's rows r, r + W, ... of a batch-first tensor, gathered into the global row order."""
    if not env.active:
        return local
    import torch.distributed as dist

    parts = [torch.empty_like(local) for _ in range(env.world_size)]
    dist.all_gather(parts, local.contiguous())
    out = torch.empty((local.shape[0] * env.world_size, *local.shape[1:]), dtype=local.dtype, device=local.device)
    for r, part in enumerate(parts):
        out[r :: env.world_size] = part
    return out


def local_rows(global_tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    return global_tensor[env.rank :: env.world_size].contiguous() if env.active else global_tensor


# ------------------------------------------------------------------------------ state dicts, DCP


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full model state dict on CPU (rank 0 gets it; a collective under FSDP: every rank calls it)."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    multi = dist.is_available() and dist.is_initialized()
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=multi))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))


def set_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def dcp_save(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Model and optimizer state, each rank writing its shards (a collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, optimizer)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(folder))


def dcp_load(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load a DCP folder written by any number of processes into this (wrapped or plain) model and optimizer."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    msd, osd = get_state_dict(model, optimizer)
    state = {"model": msd, "optim": osd}
    try:
        import warnings

        with warnings.catch_warnings():  # one process reading a checkpoint of several is what is meant here
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(state, checkpoint_id=str(folder))
    except Exception as e:  # noqa: BLE001 - DCP raises CheckpointException and others for a damaged folder
        first = str(e).strip().splitlines()
        raise AstrosnnError(f"{folder}: the distributed checkpoint does not load into this model "
                            f"({first[-1][:200] if first else type(e).__name__})") from None  # fmt: skip
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
