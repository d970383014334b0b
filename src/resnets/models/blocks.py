"""The paper's building blocks (Fig. 2 basic, Fig. 5 bottleneck) and the shortcut options of Sec. 3.3."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUTS = ("A", "B", "C")
STRIDE_ON = ("1x1", "3x3")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution with 'same' padding and no bias (BN follows every conv)."""
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=dilation, groups=groups, dilation=dilation, bias=False
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A (Sec. 3.3): identity, subsampled by taking every `stride`-th pixel, with zero channels appended.

    Parameter-free, and a real module rather than a lambda so that the model pickles and exports.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            # A 1x1 pooling is exactly x[:, :, ::s, ::s], but its gradient keeps channels_last; the slice's
            # gradient is NCHW and makes every later backward op convert formats (about 10% of a ResNet-20 step).
            x = F.avg_pool2d(x, kernel_size=1, stride=self.stride)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra_channels}, stride={self.stride}"


class GlobalAvgPool(nn.Module):
    """Mean over each feature map, shape (N, C, 1, 1) like nn.AdaptiveAvgPool2d(1).

    A pooling window of the whole map keeps its gradient channels_last; the gradients of AdaptiveAvgPool2d and of
    x.mean() are NCHW and cost a format conversion in every backward op of the last stage.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, kernel_size=x.shape[2:])


def make_shortcut(shortcut: str, in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """The shortcut branch of one block: None means the plain identity."""
    changes_shape = stride != 1 or in_channels != out_channels
    if shortcut == "A" and changes_shape:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    if (shortcut == "B" and changes_shape) or shortcut == "C":
        return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    return None


class Block(nn.Module):
    """y = ReLU(F(x) + shortcut(x)) (Eq. 1-2); a plain block (`residual=False`) drops the addition."""

    expansion: ClassVar[int]  # output channels per `planes`: 1 (basic) or 4 (bottleneck)
    residual: bool
    downsample: nn.Module | None
    relu: nn.Module

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): the stacked layers, ending in BN (before the addition and the last ReLU)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual_branch(x)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class BasicBlock(Block):
    """Fig. 2 (left): [3x3, c; 3x3, c]."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        residual: bool = True,
        dilation: int = 1,
        first_dilation: int | None = None,
    ):
        super().__init__()
        self.residual = residual
        self.conv1 = conv3x3(in_channels, planes, stride, dilation=first_dilation or dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_channels, planes, stride) if residual else None

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(Block):
    """Fig. 5 (right): [1x1, c; 3x3, c; 1x1, 4c]; `stride_on` says which conv subsamples (Sec. 3.3 vs "v1.5")."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        residual: bool = True,
        dilation: int = 1,
        first_dilation: int | None = None,
        stride_on: str = "1x1",
        groups: int = 1,
        width_per_group: int = 64,
    ):
        super().__init__()
        self.residual = residual
        width = int(planes * width_per_group / 64) * groups
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups, first_dilation or dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride) if residual else None

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))
