"""Weight files in: torchvision-format .pth and .safetensors, loaded safely and key for key, with clear mismatches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from resnets import create_model
from resnets.core.errors import UserError
from resnets.weights.files import (
    TrainedModel,
    export_safetensors,
    load_trained,
    load_weights,
    pretrained_model,
    read_state_dict,
)

from .faults.helpers import Payload
from .models.test_torchvision_compat import torchvision_forward, torchvision_state_dict

RESNET18 = (False, (2, 2, 2, 2), 1)  # bottleneck?, blocks per stage, groups


@pytest.fixture(scope="module")
def torchvision_resnet18() -> dict[str, torch.Tensor]:
    """A state dict in torchvision's layout, written from its key rules (not from our model), 10 classes."""
    return torchvision_state_dict(False, (2, 2, 2, 2), 1, 64, num_classes=10)


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_file_loads_key_for_key_and_computes_the_same(torchvision_resnet18, tmp_path, suffix):
    path = save(torchvision_resnet18, tmp_path / f"resnet18{suffix}")
    trained = pretrained_model("resnet18", str(path), stride_on="3x3")
    assert trained.model.config.num_classes == 10  # from the file's fc
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, torchvision_resnet18[key]), key
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = torchvision_forward(torchvision_resnet18, x, *RESNET18)
        assert torch.allclose(trained.model.eval()(x), expected, atol=1e-4, rtol=1e-4)


def test_torchvision_file_comes_with_torchvision_normalisation(torchvision_resnet18, tmp_path):
    trained = pretrained_model("resnet18", str(save(torchvision_resnet18, tmp_path / "w.pth")))
    assert torch.equal(trained.pixel_mean, torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
    assert torch.equal(trained.pixel_std, torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1))
    assert (trained.name, trained.classes, trained.train_config) == ("resnet18", [], {})


def test_create_model_loads_a_weights_file(torchvision_resnet18, tmp_path):
    path = save(torchvision_resnet18, tmp_path / "w.pth")
    model = create_model("resnet18", weights=str(path))
    assert torch.equal(model.fc.weight, torchvision_resnet18["fc.weight"])


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_wrapped_state_dicts_are_unwrapped(torchvision_resnet18, tmp_path, wrapper):
    path = save({wrapper: torchvision_resnet18, "epoch": 3}, tmp_path / "w.pt")
    assert read_state_dict(path).keys() == torchvision_resnet18.keys()


def test_files_without_batchnorm_step_counters_load(torchvision_resnet18, tmp_path):
    old = {k: v for k, v in torchvision_resnet18.items() if not k.endswith("num_batches_tracked")}
    model = create_model("resnet18", num_classes=10)
    assert load_weights(model, old, source="old.pth") == []
    assert torch.equal(model.layer4[1].bn2.running_var, old["layer4.1.bn2.running_var"])


def test_a_wrong_architecture_lists_missing_and_unexpected_keys_and_names_the_file(torchvision_resnet18, tmp_path):
    path = save(torchvision_resnet18, tmp_path / "resnet18.pth")
    with pytest.raises(UserError) as info:
        pretrained_model("resnet34", str(path))
    message = str(info.value)
    assert message.startswith(f"{path} does not fit the model: 80 missing keys (layer1.2.conv1.weight, ")
    assert ", and 75 more)" in message and "unexpected" not in message and "\n" not in message
    with pytest.raises(UserError, match=re.escape("96 unexpected keys (layer1.2.conv1.weight, ")):
        load_weights(create_model("resnet18"), create_model("resnet34").state_dict(), source="w")


def test_a_wrong_shape_is_listed_with_both_shapes(torchvision_resnet18):
    with pytest.raises(UserError) as info:
        load_weights(
            create_model("resnet18", num_classes=10, widths=(64, 128, 256, 256)), torchvision_resnet18, source="w"
        )
    message = str(info.value)
    assert (
        "shape mismatches (layer4.0.conv1.weight [512, 256, 3, 3] in the file, [256, 256, 3, 3] in the model" in message
    )
    assert message.startswith("w does not fit the model: 26 shape mismatches (") and ", and 21 more)" in message


def test_reset_head_keeps_a_fresh_classifier_of_another_class_count(tmp_path):
    imagenet = create_model("resnet18").state_dict()  # 1000 classes
    torch.manual_seed(5)
    model = create_model("resnet18", num_classes=10)
    fresh = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("fc.")}
    with pytest.raises(UserError, match=re.escape("fc.weight [1000, 512] in the file, [10, 512] in the model")):
        load_weights(model, imagenet, source="imagenet.pth")
    assert load_weights(model, imagenet, source="imagenet.pth", reset_head=True) == ["fc.weight", "fc.bias"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh[key] if key in fresh else imagenet[key]), key


def test_reset_head_still_refuses_other_mismatches():
    with pytest.raises(UserError, match="missing keys"):
        load_weights(
            create_model("resnet34", num_classes=10), create_model("resnet18").state_dict(), source="w", reset_head=True
        )


def test_a_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "fc.bias": Payload(marker)}, evil)
    with pytest.raises(UserError, match=f"{re.escape(str(evil))} holds objects other than tensors.*refusing to load"):
        pretrained_model("resnet18", str(evil))
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # the payload is real: an unsafe loader would have run it
    assert marker.exists()


@pytest.mark.parametrize(
    "content, error",
    [
        (None, "does not exist"),
        (b"PK\x03\x04 truncated", "truncated or corrupted"),
        ({"a": 1}, "holds no state dict"),
    ],
)
def test_unreadable_files_are_clear_errors(tmp_path, content, error):
    path = tmp_path / "w.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(UserError, match=f"{re.escape(str(path))}.*{error}"):
        read_state_dict(path)


def test_a_missing_weights_argument_is_neither_file_nor_tag(tmp_path):
    with pytest.raises(
        UserError, match=r"weights nope.pth is neither a file nor a weights tag \(torchvision-v1, resnets-cifar10\)"
    ):
        pretrained_model("resnet18", "nope.pth")


def test_a_resnets_export_loads_with_its_own_architecture_and_normalisation(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet20")
    std = torch.tensor([0.2, 0.3, 0.4]).view(3, 1, 1)
    trained = TrainedModel("resnet20", model, torch.full((3, 32, 32), 0.5), ["a"] * 10, {"lr": 0.1}, std)
    path = tmp_path / "r20.safetensors"
    export_safetensors(trained, path)
    for loaded in (pretrained_model("resnet20", str(path)), load_trained(path)):
        assert (loaded.name, loaded.classes, loaded.train_config) == ("resnet20", ["a"] * 10, {"lr": 0.1})
        assert loaded.model.config == model.config and torch.equal(loaded.pixel_std, std)
        assert torch.equal(loaded.model.fc.weight, model.fc.weight)
    with pytest.raises(UserError, match="is a resnets export of resnet20, not resnet56, shortcut='B'"):
        pretrained_model("resnet56", str(path), shortcut="B")
