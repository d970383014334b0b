"""Data-parallel training under torchrun: the process group, this process's place in it, and synchronised BN."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..core.runtime import resolve_device

TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class Group:
    """This process's place in a run: rank `rank` of `world_size`, computing on `device`; alone it is 0 of 1."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    restarts: int = 0  # how often this machine's torchrun has restarted its workers (--max-restarts)

    @property
    def active(self) -> bool:
        """Whether other processes take part, so collectives are needed."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, writes metrics and saves checkpoints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.active:
            dist.barrier()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `tensor` over all ranks (the tensor itself when alone)."""
        if self.active:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor

    def from_main(self, value: float) -> float:
        """Rank 0's `value`, on every rank."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return tensor.item()

    def min_max(self, value: int) -> tuple[int, int]:
        """The smallest and the largest `value` that the ranks passed."""
        extremes = torch.tensor([-value, value], device=self.device)
        if self.active:
            dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
        return -int(extremes[0].item()), int(extremes[1].item())

    def data_parallel(self, model: nn.Module) -> nn.Module:
        """`model` in DistributedDataParallel (gradients averaged over ranks) when others take part, else itself."""
        if not self.active:
            return model
        device_ids = [self.device] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on each node's local rank 0 before the others, so they find what it downloaded or cached."""
        if self.local_rank:
            self.barrier()
        yield
        if not self.local_rank:
            self.barrier()


def _group_from_env(device: torch.device) -> Group:
    """This process's place as torchrun's environment gives it (GPU LOCAL_RANK on CUDA); 0 of 1 without torchrun."""
    if not all(name in os.environ for name in TORCHRUN_ENV):
        return Group(device)
    rank, local_rank, world_size = (int(os.environ[name]) for name in TORCHRUN_ENV)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
    return Group(device, rank, local_rank, world_size, restarts=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)))


@contextmanager
def process_group(device: str = "auto") -> Iterator[Group]:
    """Join torchrun's process group for the block (NCCL on CUDA, gloo on the CPU); alone without torchrun.

    Nested blocks share the group that the outermost one set up and tears down.
    """
    group = _group_from_env(resolve_device(device))
    if not group.active or dist.is_initialized():
        yield group
        return
    # torchrun's own store outlives a restart of the workers, so the restarted ones may read their predecessors'
    # addresses and fail to connect (pytorch/pytorch#135712).
    restartable = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", 0)) > 0
    if group.is_main and restartable and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        print("warning: restarts may fail to connect; set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for torchrun")
    cuda = group.device.type == "cuda"
    if cuda:
        torch.cuda.set_device(group.device)
    dist.init_process_group("nccl" if cuda else "gloo", device_id=group.device if cuda else None)
    try:
        yield group
    finally:
        dist.destroy_process_group()


def sync_batchnorm(model: M, device: torch.device) -> M:
    """`model` with every BatchNorm2d normalising over the global batch of all ranks (for `--sync-bn`), converted in
    place: the model itself comes back.

    CUDA gets torch's fused SyncBatchNorm; torch's has no CPU kernels, so other devices get GlobalBatchNorm2d.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(model, name, GlobalBatchNorm2d.from_batchnorm(child))
        else:
            sync_batchnorm(child, device)
    return model


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch, on any device and backend.

    Ranks may hold different numbers of samples or sizes (a detector's RoIs): the counts are summed with the sums.
    Statistics are summed in float32 at least, the variance in a second pass around the global mean (no
    E[x^2] - E[x]^2 cancellation); eval mode is plain BatchNorm.
    """

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d) -> GlobalBatchNorm2d:
        """A GlobalBatchNorm2d sharing `bn`'s parameters and buffers (the optimizer keeps working on them)."""
        sync = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            setattr(sync, name, getattr(bn, name))
        sync.train(bn.training)
        return sync

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16/fp16 activations: statistics in fp32
        local_count = xf.new_tensor([x.numel() // x.shape[1]])  # exact in fp32 below 2^24, else as rounded as a sum
        summed = _SumOverRanks.apply(torch.cat([xf.sum((0, 2, 3)), local_count]))  # one all-reduce for both
        count = summed[-1].detach()
        mean = summed[:-1] / count
        centred = xf - mean[:, None, None]
        var = _SumOverRanks.apply(centred.square().sum((0, 2, 3))) / count
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count)
        y = centred * torch.rsqrt(var + self.eps)[:, None, None]
        if self.affine:
            y = y * self.weight[:, None, None] + self.bias[:, None, None]
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        # BatchNorm registers these buffers when track_running_stats, the one case that calls this
        assert self.num_batches_tracked is not None and self.running_mean is not None and self.running_var is not None
        self.num_batches_tracked += 1
        momentum = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(var * count / (count - 1), alpha=momentum)  # unbiased, as BN


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is summed too: every rank's loss depends on the global statistics."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad
