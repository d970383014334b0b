"""One ResNet (and plain-net) class for every network of the paper, configured by a validated dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .blocks import SHORTCUTS, STRIDE_ON, BasicBlock, Block, Bottleneck, GlobalAvgPool

BLOCKS: dict[str, type[Block]] = {"basic": BasicBlock, "bottleneck": Bottleneck}
STEMS = ("imagenet", "cifar")


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, choices))}")


@dataclass
class ResNetConfig:
    """Everything that defines a network; defaults are the paper's ImageNet ResNet-18."""

    block: str = "basic"
    depths: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage (Table 1 / Sec. 4.2)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # planes per stage; the stem has widths[0] filters
    stem: str = "imagenet"  # 'imagenet': 7x7/2 + 3x3/2 max pool; 'cifar': 3x3/1, no pool
    residual: bool = True  # False gives the paper's plain counterpart (same layers, no shortcuts)
    shortcut: str = "B"  # Sec. 3.3 options A/B/C
    stride_on: str = "1x1"  # which bottleneck conv subsamples: the paper's 1x1, or torchvision's 3x3 ("v1.5")
    num_classes: int = 1000
    groups: int = 1  # ResNeXt cardinality
    width_per_group: int = 64  # 64 is the paper; 128 gives Wide ResNet-50-2
    zero_init_residual: bool = False  # start each residual branch's last BN at zero
    replace_stride_with_dilation: tuple[bool, ...] = field(default_factory=tuple)
    features_only: bool = False  # forward returns the stage outputs (no head)

    def __post_init__(self) -> None:
        self.depths = tuple(self.depths)
        self.widths = tuple(self.widths)
        self.replace_stride_with_dilation = tuple(self.replace_stride_with_dilation) or (False,) * (
            len(self.depths) - 1
        )
        _choice("block", self.block, tuple(BLOCKS))
        _choice("stem", self.stem, STEMS)
        _choice("shortcut", self.shortcut, SHORTCUTS)
        _choice("stride_on", self.stride_on, STRIDE_ON)
        if not self.depths or any(not isinstance(d, int) or d < 1 for d in self.depths):
            raise ValueError(f"depths={self.depths!r} must be positive block counts, one per stage")
        if len(self.widths) != len(self.depths) or any(w < 1 for w in self.widths):
            raise ValueError(f"widths={self.widths!r} must give one positive width per stage ({len(self.depths)})")
        if len(self.replace_stride_with_dilation) != len(self.depths) - 1:
            raise ValueError(
                f"replace_stride_with_dilation={self.replace_stride_with_dilation!r} needs "
                f"{len(self.depths) - 1} booleans, one per stage after the first"
            )
        for name in ("num_classes", "groups", "width_per_group"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be a positive integer")
        if self.block == "basic" and (self.groups, self.width_per_group) != (1, 64):
            raise ValueError(
                "groups and width_per_group apply to bottleneck blocks only; use groups=1, width_per_group=64"
            )
        if self.zero_init_residual and not self.residual:
            raise ValueError("zero_init_residual=True would zero every plain block's output; it needs residual=True")

    @property
    def default_input_size(self) -> int:
        """The image side the network is made for: 32 (CIFAR stem) or 224 (ImageNet stem)."""
        return 32 if self.stem == "cifar" else 224

    def to_dict(self) -> dict:
        """A JSON-friendly dict that `ResNetConfig(**d)` rebuilds."""
        return asdict(self)


class ResNet(nn.Module):
    """Stem, stages `layer1..layerN` of blocks, global average pool and `fc`, named as in torchvision."""

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.config = config
        width = config.widths[0]
        if config.stem == "imagenet":
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)

        block = BLOCKS[config.block]
        block_options: dict = dict(shortcut=config.shortcut, residual=config.residual)
        if block is Bottleneck:
            block_options.update(
                stride_on=config.stride_on, groups=config.groups, width_per_group=config.width_per_group
            )
        self.feature_channels: list[int] = []
        self.feature_strides: list[int] = []
        in_channels, dilation, total_stride = width, 1, 4 if config.stem == "imagenet" else 1
        for i, (depth, planes) in enumerate(zip(config.depths, config.widths)):
            stride = 1 if i == 0 else 2
            first_dilation = dilation
            if i > 0 and config.replace_stride_with_dilation[i - 1]:
                dilation, stride = dilation * stride, 1
            blocks = []
            for j in range(depth):
                blocks.append(
                    block(
                        in_channels,
                        planes,
                        stride if j == 0 else 1,
                        dilation=dilation,
                        first_dilation=first_dilation if j == 0 else dilation,
                        **block_options,
                    )
                )
                in_channels = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            total_stride *= stride
            self.feature_channels.append(in_channels)
            self.feature_strides.append(total_stride)
        self.num_features = in_channels

        if config.features_only:
            self.avgpool: nn.Module = nn.Identity()
            self.fc: nn.Module = nn.Identity()
        else:
            self.avgpool = GlobalAvgPool()
            self.fc = nn.Linear(in_channels, config.num_classes)
        self._init_weights()

    @property
    def stages(self) -> list[nn.Sequential]:
        """The stages `layer1..layerN`, in order."""
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.config.depths))]

    def _init_weights(self) -> None:
        # He et al. 2015 ("PReLU" paper) initialisation, which Sec. 3.4 cites; fan_out as in torchvision.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.config.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1, BN, ReLU and (ImageNet stem) max pool."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage (strides 4, 8, 16, 32 for the ImageNet stem)."""
        outputs = []
        x = self.forward_stem(x)
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map, before pooling."""
        return self.forward_stages(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool and the fc layer (`pre_logits=True` stops before fc)."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.config.features_only:
            return self.forward_stages(x)
        return self.forward_head(self.forward_features(x))
