"""torch.distributed plumbing: set up from torchrun's environment, rank-0 helpers, agreement.

One process per device. ``torchrun --nproc_per_node=K -m crossnet_fast train ...`` sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; the backend is NCCL on CUDA and gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # this module created the process group (and destroys it)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> cuda:<local_rank> if CUDA is available, else cpu; "cuda" -> cuda:<local_rank>."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"config run.device: {name!r} but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def setup(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join (or create, from the torchrun environment) the default process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    if dist.is_available() and dist.is_initialized():
        info = DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owned=False)
        return info, resolve_device(device_name, local_rank)
    if world <= 1:
        return DistInfo(), resolve_device(device_name, 0)
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owned=True), device


def teardown(info: DistInfo) -> None:
    if info.owned and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_true(info: DistInfo, flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (all ranks stop at the same step)."""
    if not info.enabled:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean(info: DistInfo, t: torch.Tensor) -> torch.Tensor:
    """Average of ``t`` over ranks (a copy)."""
    t = t.detach().clone()
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= info.world
    return t


def gather_objects(info: DistInfo, obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (in-memory transport only)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


__all__ = ["DistInfo", "setup", "teardown", "barrier", "any_true", "mean", "gather_objects", "resolve_device"]
