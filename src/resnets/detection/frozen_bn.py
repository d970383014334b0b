"""BatchNorm frozen into a fixed affine layer (Sec. 4.3: BN statistics and scales fixed from pre-training)."""

from __future__ import annotations

import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, with all four as buffers (not trained).

    Its state dict has BatchNorm2d's keys, so weights of the trainable layer load into it unchanged.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), fill))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)  # a BatchNorm2d step counter: nothing to freeze
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{len(self.weight)}, eps={self.eps}"


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm2d replaced by a FrozenBatchNorm2d of its current statistics and affine."""
    if isinstance(module, nn.BatchNorm2d):
        # pre-trained BN tracks running statistics (track_running_stats=False would leave them None)
        assert module.running_mean is not None and module.running_var is not None
        frozen = FrozenBatchNorm2d(module.num_features, module.eps)
        frozen.weight.copy_(module.weight.detach())
        frozen.bias.copy_(module.bias.detach())
        frozen.running_mean.copy_(module.running_mean)
        frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        setattr(module, name, freeze_batchnorm(child))
    return module
