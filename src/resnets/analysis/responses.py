"""Fig. 7: the standard deviation of every 3x3 layer's response, after BN and before the addition and the ReLU."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core.errors import UserError
from ..core.runtime import resolve_device
from ..core.tables import markdown_table, unique_labels
from ..data import ImageSet, normalize
from ..data.reading import InMemoryReading, reading_for
from ..evaluation.splits import evaluation_split
from ..weights.files import load_trained
from .output import RESULTS_FILE, write_text
from .plots import response_plot

TABLE, FIGURE = "responses.csv", "responses.png"
WRITES = (TABLE, FIGURE, RESULTS_FILE)  # what `analyze responses` writes into its --out


@dataclass
class LayerResponses:
    """One model's response std per 3x3 layer, in forward order (layer 1 first)."""

    label: str
    residual: bool
    stds: list[float]


def response_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The BN after every 3x3 conv, in forward order: the CIFAR stem's conv1 and the 3x3 convs of each block.

    Sec. 4.2 measures "the outputs of each 3x3 layer, after BN"; a conv and its BN share a suffix (conv2/bn2),
    so 1x1 convs, the ImageNet stem's 7x7 conv and the projection shortcuts are left out by their kernel size.
    """
    layers = []
    for module in model.modules():  # pre-order: the stem before layer1, blocks in order
        children = dict(module.named_children())
        for name, conv in children.items():
            bn = children.get("bn" + name[len("conv") :]) if name.startswith("conv") else None
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and isinstance(bn, nn.BatchNorm2d):
                layers.append(bn)
    return layers


@torch.no_grad()
def layer_responses(
    model: nn.Module,
    images: torch.Tensor,
    mean: torch.Tensor,
    *,
    batch_size: int = 500,
) -> list[float]:
    """Std of each 3x3 layer's output over every image, channel and position of `images` (uint8 [N, 3, H, W]).

    The hooks sit on the BN modules, so they see the output before the ReLU (which runs in place afterwards)
    and, in a block's last layer, before the shortcut is added. Sums are float64 and streamed over batches;
    the images go, a batch at a time, to the model's device.
    """
    device = next(model.parameters()).device
    layers = response_layers(model)
    sums = torch.zeros(len(layers), 3, dtype=torch.float64, device=device)  # count, sum, sum of squares

    def hook(index: int):
        def record(module: nn.Module, inputs, output: torch.Tensor) -> None:
            x = output.detach().double()
            sums[index] += torch.stack([x.new_tensor(x.numel()), x.sum(), x.square().sum()])

        return record

    handles = [bn.register_forward_hook(hook(i)) for i, bn in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            model(normalize(images[start : start + batch_size].to(device), mean.to(device)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    count, total, squares = sums.T
    variance = squares / count - (total / count) ** 2
    return variance.clamp_min(0).sqrt().tolist()


def checkpoint_responses(
    checkpoints: list[str], data: str, split: str, *, batch_size: int = 500, device: str = "auto"
) -> list[LayerResponses]:
    """Fig. 7 for every checkpoint (run folder, .pt or .safetensors), measured on `split` of `data`."""
    target = resolve_device(device)
    trained = [load_trained(path) for path in checkpoints]
    for path, t in zip(checkpoints, trained):  # before any data is read
        if not isinstance(reading_for(t.train_config), InMemoryReading):
            augmentation = t.train_config.get("augmentation", "unknown")
            raise UserError(
                f"{path} was not trained with CIFAR augmentation ({augmentation}); Fig. 7's layer responses are "
                "measured on CIFAR-10 runs of `resnets train` (32x32 images held in memory)"
            )
    labels = unique_labels([t.name for t in trained], checkpoints)
    results = []
    for label, t in zip(labels, trained):
        images = evaluation_split(data, split, t.train_config, t.classes, train_images=t.train_images)
        assert isinstance(images, ImageSet)  # CIFAR-augmented runs (checked above) are read in memory
        stds = layer_responses(t.model.to(target), images.images, t.pixel_mean, batch_size=batch_size)
        results.append(LayerResponses(label, t.model.config.residual, stds))
    return results


def write_csv(responses: list[LayerResponses], path: Path) -> Path:
    """One row per model and layer: model, layer (1-based, forward order), std."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["model", "layer", "std"])
    for r in responses:
        writer.writerows([r.label, i, f"{std:.6g}"] for i, std in enumerate(r.stds, 1))
    return write_text(path, text.getvalue())


def save_responses(responses: list[LayerResponses], out: Path, split: str) -> list[Path]:
    """Write OUT/responses.csv, the two-panel OUT/responses.png and OUT/results.md with a summary table."""
    figure = out / FIGURE
    response_plot(responses, figure, title=f"Layer responses (Fig. 7) on the {split} split")
    rows = [[r.label, str(len(r.stds)), f"{sum(r.stds) / len(r.stds):.3f}", f"{max(r.stds):.3f}"] for r in responses]
    summary = "\n\n".join(
        [
            "# Layer responses (Fig. 7)",
            f"The std of each 3x3 layer's output after BN, before the addition and ReLU, over every image, "
            f"channel and position of the {split} split. Layer 1 is the CIFAR stem's 3x3 conv (an ImageNet "
            "stem is 7x7, not counted).",
            f"![layer responses]({figure.name})",
            markdown_table(["model", "3x3 layers", "mean std", "largest std"], rows),
            f"Per layer: [{TABLE}]({TABLE}).",
        ]
    )
    return [write_csv(responses, out / TABLE), figure, write_text(out / RESULTS_FILE, summary + "\n")]
