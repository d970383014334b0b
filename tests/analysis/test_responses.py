"""Fig. 7's layer responses: which layers, the std itself, and `resnets analyze responses` end to end."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from resnets import create_model
from resnets.analysis.responses import checkpoint_responses, layer_responses, response_layers
from resnets.cli import main
from resnets.evaluation.splits import evaluation_split
from resnets.weights.files import TrainedModel, export_safetensors

from ..conftest import CIFAR_CLASSES
from ..data.conftest import save_image


def random_images(n: int = 5) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.mark.parametrize("name", ["resnet20", "plain20"])
def test_every_3x3_layer_of_a_cifar_net_in_forward_order(name):
    model = create_model(name)
    layers = response_layers(model)
    assert len(layers) == 19  # 6n+2 = 20 weighted layers: the 3x3 stem and 18 in the blocks; the fc is not 3x3
    first_block = model.layer1[0]
    assert layers[:3] == [model.bn1, first_block.bn1, first_block.bn2]
    assert layers[-1] is model.layer3[-1].bn2


def test_bottleneck_nets_give_the_middle_3x3_only():
    with torch.device("meta"):
        model = create_model("resnet50")
    layers = response_layers(model)
    assert len(layers) == 16  # one 3x3 per bottleneck; the 7x7 stem and 1x1 convs are not 3x3 layers
    assert layers[0] is model.layer1[0].bn2


@pytest.mark.parametrize("name", ["resnet20", "plain20"])
def test_std_matches_bn_outputs_set_by_hand(name):
    # gamma 0 makes every channel constant at beta; beta = k * (c % 2) over an even number of channels has std k/2.
    model = create_model(name)
    for k, bn in enumerate(response_layers(model), 1):
        bn.weight.data.zero_()
        bn.bias.data = k * (torch.arange(bn.num_features) % 2).float()
    stds = layer_responses(model, random_images(), torch.zeros(3, 32, 32), batch_size=3)
    assert stds == pytest.approx([k / 2 for k in range(1, 20)], rel=1e-12)


def test_streamed_std_equals_the_direct_one_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = create_model("resnet20").train()
    images, mean = random_images(), torch.full((3, 32, 32), 0.5)
    outputs = []
    handles = [
        bn.register_forward_hook(lambda m, i, o: outputs.append(o.double().clone())) for bn in response_layers(model)
    ]
    model.eval()
    with torch.no_grad():
        model(images.float() / 255 - mean)
    for h in handles:
        h.remove()
    model.train()
    direct = [o.std(unbiased=False).item() for o in outputs]
    assert layer_responses(model, images, mean, batch_size=2) == pytest.approx(direct, rel=1e-5)
    assert model.training and not any(bn._forward_hooks for bn in response_layers(model))


def exported(name: str, folder) -> str:
    """An untrained model saved as a run would save it, with a held-out split of 100 images."""
    torch.manual_seed(0)
    model = create_model(name)
    train_config = {"model": name, "val_split": 100, "split_seed": 0}
    path = folder / f"{name}.safetensors"
    export_safetensors(TrainedModel(name, model, torch.full((3, 32, 32), 0.45), CIFAR_CLASSES, train_config), path)
    return str(path)


def test_cli_writes_csv_png_and_summary(cifar_small, tmp_path, capsys):
    checkpoints = [exported("plain20", tmp_path), exported("resnet20", tmp_path)]
    out = tmp_path / "responses"
    args = ["analyze", "responses", "--data", str(cifar_small), "--out", str(out)]
    assert main([*args, "--checkpoint", checkpoints[0], "--checkpoint", checkpoints[1]]) == 0

    with (out / "responses.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["model", "layer", "std"]
    assert [(r["model"], int(r["layer"])) for r in rows] == [
        (m, i) for m in ("plain20", "resnet20") for i in range(1, 20)
    ]
    torch.manual_seed(0)
    model = create_model("resnet20")  # the exported resnet20's weights
    val = evaluation_split(str(cifar_small), "val", {"val_split": 100, "split_seed": 0}, CIFAR_CLASSES)
    expected = layer_responses(model, val.images, torch.full((3, 32, 32), 0.45))
    assert [float(r["std"]) for r in rows[19:]] == pytest.approx(expected, rel=1e-5)

    with Image.open(out / "responses.png") as image:
        assert image.format == "PNG" and image.width >= 600 and image.height >= 600
    summary = (out / "results.md").read_text()
    assert "![layer responses](responses.png)" in summary and "| resnet20 | 19 |" in summary


def test_responses_on_a_folder_holding_only_the_test_split(tmp_path):
    # Two of the model's ten classes, no train folder: the split is read alone and labelled by the model's classes.
    folders = ["cat", "cat", "dog"]
    files = [
        save_image(tmp_path / "data" / "test" / c / f"{i}.png", size=(32, 32), seed=i) for i, c in enumerate(folders)
    ]
    [result] = checkpoint_responses([exported("resnet20", tmp_path)], str(tmp_path / "data"), "test")
    torch.manual_seed(0)
    model = create_model("resnet20")  # the exported resnet20's weights
    images = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files])
    assert result.stds == pytest.approx(layer_responses(model, images, torch.full((3, 32, 32), 0.45)), rel=1e-5)
