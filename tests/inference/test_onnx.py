"""ONNX export: checker, dynamic batch, metadata, ONNX Runtime against PyTorch, and the ONNX-backed predictor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from resnets.cli import main
from resnets.core.errors import UserError
from resnets.data.augment import normalize
from resnets.inference import load_predictor
from resnets.models import ResNet, ResNetConfig, create_model
from resnets.weights.files import TrainedModel

from .conftest import cifar_trained, photo_trained

onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install 'resnets[deploy]')")
ort = pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime (pip install 'resnets[deploy]')")

from resnets.inference.onnx_export import export_onnx  # noqa: E402 (after the skips)


def run_onnx(path: Path, x: torch.Tensor) -> list[torch.Tensor]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(y) for y in session.run(None, {"input": x.numpy()})]


def bottleneck_imagenet() -> TrainedModel:
    """The ImageNet family's design shrunk: bottleneck blocks with option B projections, the 7x7/2 stem and max pool,
    four stages (ResNet-50's layout with one block a stage and narrow widths), at 64x64 to stay fast."""
    torch.manual_seed(0)
    config = ResNetConfig(block="bottleneck", depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), num_classes=7)
    model = ResNet(config)
    train_config = {"augmentation": "imagenet", "test_resize": 72, "crop_size": 64}
    return TrainedModel("tiny50", model, torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), [], train_config, None)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[TrainedModel, Path]]:
    """Each family exported once: the CIFAR ResNet (option A), a bottleneck ImageNet net, a features_only backbone."""
    out = tmp_path_factory.mktemp("onnx")
    backbone = cifar_trained(fit=False)
    backbone.model = create_model("cifar_resnet", depth=8, features_only=True)
    models = {"cifar": cifar_trained(), "bottleneck": bottleneck_imagenet(), "backbone": backbone}
    for name, trained in models.items():
        export_onnx(trained, out / f"{name}.onnx")
    return {name: (trained, out / f"{name}.onnx") for name, trained in models.items()}


@pytest.mark.parametrize("family", ["cifar", "bottleneck", "backbone"])
def test_ort_matches_pytorch_at_other_batch_sizes(exported, family):
    trained, path = exported[family]
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    size = (32, 32) if family != "bottleneck" else (64, 64)
    for batch in (1, 5):  # neither is the traced batch (2) nor the check batch (3): the batch axis is dynamic
        images = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        x = normalize(images, trained.pixel_mean, trained.pixel_std)
        with torch.no_grad():
            expected = trained.model.eval()(x)
        expected = expected if isinstance(expected, list) else [expected]
        got = run_onnx(path, x)
        assert len(got) == len(expected) == (3 if family == "backbone" else 1)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and (g - e).abs().max() <= 1e-4


def test_metadata_holds_the_preprocessing_and_the_classes(exported):
    trained, path = exported["cifar"]
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["classes"]) == trained.classes and json.loads(props["input_size"]) == [3, 32, 32]
    mean = torch.tensor(json.loads(props["mean"])).reshape(json.loads(props["mean_shape"]))
    assert torch.equal(mean, trained.pixel_mean) and "std" not in props  # the paper's nets subtract only a mean
    _, bottleneck = exported["bottleneck"]
    props = {p.key: p.value for p in onnx.load(str(bottleneck)).metadata_props}
    assert json.loads(props["mean_shape"]) == [3, 1, 1] and json.loads(props["input_size"]) == [3, 64, 64]
    assert json.loads(props["classes"]) == [f"class {i}" for i in range(7)]
    _, backbone = exported["backbone"]
    assert json.loads({p.key: p.value for p in onnx.load(str(backbone)).metadata_props}["classes"]) == []


def test_onnx_predictor_gives_the_pytorch_predictors_scores(exported, tmp_path):
    from resnets.weights.files import export_safetensors

    trained, path = exported["cifar"]
    export_safetensors(trained, tmp_path / "m.safetensors")
    images = list(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)))
    torch_scores = load_predictor(tmp_path / "m.safetensors").scores(images)
    onnx_predictor = load_predictor(onnx=path)
    torch.testing.assert_close(onnx_predictor.scores(images), torch_scores, atol=1e-5, rtol=0)
    assert onnx_predictor.labels == trained.classes
    other = [torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8)]  # resized to 32x32 by either backend
    torch_predictor = load_predictor(tmp_path / "m.safetensors", backend="torch")
    torch.testing.assert_close(onnx_predictor.scores(other), torch_predictor.scores(other), atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="takes 32x32 inputs, but the center view's crops are not all 32x32"):
        load_predictor(onnx=path, view="center", resize=48, crop=40)
    with pytest.raises(UserError, match="features_only"):
        load_predictor(onnx=exported["backbone"][1])


def test_a_difference_beyond_the_tolerance_fails_loudly_and_writes_nothing(tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(UserError, match=r"differ from PyTorch's by .* \(> 1e-12\).*was not written"):
        export_onnx(photo_trained(), out, tolerance=1e-12)
    assert not out.exists()


def test_cli_export_with_a_fixed_batch(exported, tmp_path, capsys):
    from resnets.weights.files import export_safetensors

    export_safetensors(photo_trained(), tmp_path / "p.safetensors")
    out = tmp_path / "p.onnx"
    args = ["export", "--checkpoint", str(tmp_path / "p.safetensors"), "--format", "onnx", "--out", str(out)]
    assert main([*args, "--no-dynamic-batch", "--opset", "18"]) == 0
    assert "ONNX Runtime within" in capsys.readouterr().out
    model = onnx.load(str(out))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 32, 32]
    assert any(o.domain in ("", "ai.onnx") and o.version == 18 for o in model.opset_import)
