"""Faster R-CNN with a ResNet C4 trunk (Sec. 4.3): the trunk, the RPN and the Res5 RoI head in one module."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checkpoints import LAST, load_checkpoint
from ..core.errors import UserError
from ..core.runtime import autocast
from ..models import ResNet, ResNetConfig
from .backbone import C4Trunk, backbone_network
from .config import FROM_SCRATCH, FasterRCNNConfig
from .frozen_bn import freeze_batchnorm
from .heads import Res5ROIHeads
from .rpn import RPN
from .transforms import resize_image, resize_scale


class FasterRCNN(nn.Module):
    """Images in, per-image detections (eval) or the four losses (train: RPN and head, classification and box).

    State-dict keys: `trunk.*` (torchvision's conv1, bn1, layer1..layer3), `rpn.*`, `roi_heads.res5.*` (layer4).
    """

    pixel_mean: torch.Tensor  # (1, 3, 1, 1) buffers
    pixel_std: torch.Tensor

    def __init__(self, config: FasterRCNNConfig, backbone: ResNet, pixel_mean: torch.Tensor, pixel_std: torch.Tensor):
        super().__init__()
        self.config = config
        self.backbone_config = backbone.config
        backbone = copy.deepcopy(backbone)
        if config.frozen_bn:
            freeze_batchnorm(backbone)  # in place: the ResNet itself comes back, its BatchNorm2d layers replaced
        self.trunk = C4Trunk(backbone)
        self.rpn = RPN(config, self.trunk.out_channels, self.trunk.stride)
        self.roi_heads = Res5ROIHeads(config, backbone.stages[3], backbone.feature_channels[3], self.trunk.stride)
        for module in self._frozen():
            module.requires_grad_(False)
        self.register_buffer("pixel_mean", pixel_mean.reshape(1, 3, 1, 1).float())
        self.register_buffer("pixel_std", pixel_std.reshape(1, 3, 1, 1).float())

    def forward(
        self,
        images: torch.Tensor,
        sizes: list[tuple[int, int]],
        targets: list[dict] | None = None,
        generators: list[torch.Generator] | None = None,
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """`images`: a normalised, zero-padded batch (N, 3, H, W); `sizes`: each image's (h, w) inside it;
        `targets` (training): per image `boxes` (G, 4) in input pixels and `labels` (G,) in 0..K-1;
        `generators` (training): per image a CPU torch.Generator for its anchor and RoI samples (default torch's)."""
        features = self.trunk(images)
        if self.training:
            if targets is None:
                raise ValueError("a model in training mode needs targets; call .eval() to detect")
            proposals, rpn_losses = self.rpn(features, sizes, targets, generators)
            return {**rpn_losses, **self.roi_heads.losses(features, proposals, targets, generators)}
        proposals, _ = self.rpn(features, sizes)
        return self.roi_heads.detect(features, proposals, sizes)

    def normalize(
        self, images: list[torch.Tensor], pad_to: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Float [0, 255] images (3, h, w) of any sizes as one normalised batch, zero-padded at the right and
        bottom to `pad_to` (h, w) (default: the largest image's), rounded up to a multiple of the trunk's stride,
        and their sizes."""
        sizes = [(int(x.shape[1]), int(x.shape[2])) for x in images]
        stride = self.trunk.stride
        height, width = pad_to or (max(h for h, _ in sizes), max(w for _, w in sizes))
        if any(h > height or w > width for h, w in sizes):
            raise ValueError(f"pad_to={pad_to} is smaller than an image of the batch {sizes}")
        height, width = -(-height // stride) * stride, -(-width // stride) * stride
        mean, std = self.pixel_mean[0], self.pixel_std[0]
        batch = [
            F.pad((x.to(mean.device) / 255 - mean) / std, (0, width - x.shape[2], 0, height - x.shape[1]))
            for x in images
        ]
        return torch.stack(batch), sizes

    @torch.no_grad()
    def detect(
        self, images: list[torch.Tensor], channels_last: bool = False, precision: str = "fp32"
    ) -> list[dict[str, torch.Tensor]]:
        """Detections of uint8 images (3, H, W) of any sizes, boxes in each image's own pixels (eval mode).

        `precision` is the convolutions' autocast ('fp32', 'bf16', 'fp16'); scores and box arithmetic stay fp32."""
        was_training = self.training
        self.eval()
        scales = [resize_scale(x.shape[1], x.shape[2], self.config.min_size, self.config.max_size) for x in images]
        batch, sizes = self.normalize([resize_image(x, s) for x, s in zip(images, scales)])
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(batch.device, precision):
            results = self(batch, sizes)
        self.train(was_training)
        for result, scale in zip(results, scales):
            result["boxes"] = result["boxes"] / scale
        return results

    def train(self, mode: bool = True) -> FasterRCNN:
        """As nn.Module.train; frozen stages stay in eval mode (their BN, if not frozen, keeps its statistics)."""
        super().train(mode)
        for module in self._frozen():
            module.eval()
        return self

    def _frozen(self) -> list[nn.Module]:
        """The first `freeze_at` of: the stem, conv2_x, conv3_x, conv4_x, conv5_x."""
        t = self.trunk
        return [nn.ModuleList([t.conv1, t.bn1]), t.layer1, t.layer2, t.layer3, self.roi_heads.res5][
            : self.config.freeze_at
        ]


def faster_rcnn(
    backbone: str = "resnet101",
    num_classes: int = 20,
    pooler: str = "roi_pool",
    backbone_weights: str | None = None,
    **settings,
) -> FasterRCNN:
    """Faster R-CNN C4 on the zoo's `backbone` (any ImageNet-family name), `num_classes` object classes.

    `backbone_weights`: None (random), a `resnets train` run folder or .pt, a weights file, or 'torchvision-v1'.
    `settings`: any FasterRCNNConfig field (defaults: the paper's and py-faster-rcnn's; without backbone weights,
    FROM_SCRATCH's: BN trained, no stage fixed).
    """
    if backbone_weights is None:
        settings = {**FROM_SCRATCH, **settings}
    config = FasterRCNNConfig(backbone=backbone, num_classes=num_classes, pooler=pooler, **settings)
    options = {"stride_on": config.stride_on} if config.stride_on else {}
    network, mean, std = backbone_network(backbone, backbone_weights, **options)
    return FasterRCNN(config, network, mean, std)


def rebuild(config: dict, backbone_config: dict) -> FasterRCNN:
    """The (untrained) model that a checkpoint's two configs describe; load its state dict next."""
    network = ResNet(ResNetConfig(**backbone_config))
    return FasterRCNN(FasterRCNNConfig(**config), network, torch.zeros(3), torch.ones(3))


KIND = "faster-rcnn-c4"  # what a detection checkpoint holds (its "kind")


def detector_file(run: str | Path) -> Path:
    """The checkpoint that `--checkpoint run` names: a run folder's last.pt, or the file itself."""
    path = Path(run)
    return path / LAST if path.is_dir() else path


def load_detector(run: str | Path) -> tuple[FasterRCNN, dict]:
    """The trained detector of a run folder (its last.pt) or a checkpoint file, in eval mode, and its state."""
    file = detector_file(run)
    if not file.is_file():
        raise UserError(f"{run} holds no {LAST}; is it a `resnets detect train` run folder?")
    state = load_checkpoint(file)
    if state.get("kind") != KIND:
        raise UserError(f"{file} is not a detection checkpoint (it is a classification one?); train with detect train")
    model = rebuild(state["detector_config"], state["backbone_config"])
    model.load_state_dict(state["model"])
    return model.eval(), state
