"""`resnets evaluate`: several test views in one JSON, ensembles, --weights, and one-line errors."""

import json

import pytest
import torch

from resnets.cli import main
from resnets.data import open_split
from resnets.data.imagenet_classes import IMAGENET_WNIDS
from resnets.models import ResNet, ResNetConfig, create_model
from resnets.weights.files import TrainedModel, export_safetensors

from .conftest import CIFAR_CLASSES
from .data.conftest import save_image
from .evaluation.conftest import IMAGENETTE_CLASSES, imagenette  # noqa: F401 (the fixture)
from .models.test_torchvision_compat import torchvision_state_dict

CIFAR_RUN = {"val_split": 100, "split_seed": 0, "augmentation": "cifar"}


def export(path, model, classes, train_config, mean):
    export_safetensors(TrainedModel("tiny", model, mean, classes, train_config), path)
    return str(path)


@pytest.fixture(scope="module")
def cifar_model(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=8, num_classes=10)
    return export(
        tmp_path_factory.mktemp("w") / "c.safetensors", model, CIFAR_CLASSES, CIFAR_RUN, torch.rand(3, 32, 32)
    )


@pytest.fixture(scope="module")
def photo_model(tmp_path_factory, imagenette):  # noqa: F811
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(depths=(1, 1), widths=(8, 16), num_classes=IMAGENETTE_CLASSES))
    classes = open_split(imagenette, "val").classes
    config = {"val_split": 0, "augmentation": "imagenet", "test_resize": 256, "crop_size": 224}
    return export(tmp_path_factory.mktemp("w") / "p.safetensors", model, classes, config, torch.rand(3, 224, 224))


def evaluate(capsys, *args):
    capsys.readouterr()
    assert main(["evaluate", *args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def error(capsys, *args):
    capsys.readouterr()
    assert main(["evaluate", *args]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "Traceback" not in message
    return message


def test_every_view_in_one_json_object(photo_model, imagenette, capsys):  # noqa: F811
    views = "center,10crop,multiscale"
    result = evaluate(
        capsys, "--checkpoint", photo_model, "--data", str(imagenette), "--views", views, "--workers", "0"
    )
    images = 2 * IMAGENETTE_CLASSES
    assert result["checkpoints"] == [photo_model] and result["split"] == "val" and result["images"] == images
    assert list(result["views"]) == views.split(",")
    for r in result["views"].values():
        assert set(r) == {"top1_error", "top5_error", "images", "seconds"} and r["images"] == images
        assert 0 <= r["top5_error"] <= r["top1_error"] <= 100 and r["seconds"] > 0
    assert (result["top1_error"], result["top5_error"]) == tuple(
        result["views"]["center"][k] for k in ("top1_error", "top5_error")
    )


def test_cifar_runs_default_to_the_full_view_and_text_is_a_line_per_view(cifar_model, cifar_small, capsys):
    result = evaluate(capsys, "--checkpoint", cifar_model, "--data", str(cifar_small), "--limit", "10")
    assert list(result["views"]) == ["full"] and result["images"] == 10 == result["views"]["full"]["images"]
    capsys.readouterr()
    views = ["--views", "full,center", "--resize", "32", "--crop", "28"]
    assert main(["evaluate", "--checkpoint", cifar_model, "--data", str(cifar_small), *views]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "full view (100 images)" in lines[0] and "center view" in lines[1]


def test_an_ensemble_of_a_checkpoint_with_itself_is_the_checkpoint(cifar_model, cifar_small, capsys):
    one = evaluate(capsys, "--checkpoint", cifar_model, "--data", str(cifar_small))
    two = evaluate(capsys, "--checkpoint", cifar_model, "--checkpoint", cifar_model, "--data", str(cifar_small))
    assert two["checkpoints"] == [cifar_model, cifar_model]
    assert (one["top1_error"], one["top5_error"], one["images"]) == (
        two["top1_error"],
        two["top5_error"],
        two["images"],
    )


def test_ensemble_members_must_share_their_classes(cifar_model, cifar_small, tmp_path, capsys):
    model = create_model("cifar_resnet", depth=8, num_classes=10)
    other = export(tmp_path / "o.safetensors", model, CIFAR_CLASSES[::-1], CIFAR_RUN, torch.rand(3, 32, 32))
    message = error(capsys, "--checkpoint", cifar_model, "--checkpoint", other, "--data", str(cifar_small))
    assert "the same classes" in message


def test_weights_file_with_model_defaults_to_the_center_view(imagenette, tmp_path, capsys):  # noqa: F811
    torch.manual_seed(0)
    weights = tmp_path / "r18.pth"
    torch.save(create_model("resnet18", num_classes=IMAGENETTE_CLASSES).state_dict(), weights)
    args = ["--weights", str(weights), "--model", "resnet18", "--data", str(imagenette), "--limit", "2"]
    result = evaluate(capsys, *args, "--workers", "0")
    assert list(result["views"]) == ["center"] and result["images"] == 2
    assert result["checkpoints"] == [f"{weights} (resnet18)"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--views", "center,5crop"], "unknown view '5crop'"),
        (["--views", ","], "--views is empty"),
        (["--scales", "224,abc", "--views", "multiscale"], "--scales '224,abc' is not"),
        (["--scales", "0", "--views", "multiscale"], "--scales 0 must be between 8 and 4096 pixels"),
        (["--scales", "1", "--views", "multiscale"], "--scales 1 must be between 8 and 4096 pixels"),
        (["--resize", "1", "--crop", "1", "--views", "center"], "--crop 1 must be between"),
        (["--resize", "100000", "--views", "10crop"], "--resize 100000 must be between"),
        (["--resize", "100", "--views", "center"], "crop 224 must be"),
        (["--limit", "0"], "--limit 0 must be a positive"),
        (["--split", "test"], "split folder"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, cifar_model, cifar_small, capsys):
    assert message in error(capsys, "--checkpoint", cifar_model, "--data", str(cifar_small), *args)


def test_models_come_from_checkpoints_or_weights_with_a_model(cifar_small, capsys):
    assert "--checkpoint RUN" in error(capsys, "--data", str(cifar_small))
    assert "go together" in error(capsys, "--weights", "x.pth", "--data", str(cifar_small))


def test_val_of_a_run_without_a_held_out_split_needs_a_val_folder(cifar_small, tmp_path, capsys):
    model = create_model("cifar_resnet", depth=8, num_classes=10)
    run = export(tmp_path / "r.safetensors", model, CIFAR_CLASSES, {"val_split": 0}, torch.rand(3, 32, 32))
    assert "use --split test" in error(capsys, "--checkpoint", run, "--data", str(cifar_small))


def rigged(model: torch.nn.Module, *ranked: int) -> torch.nn.Module:
    """`model` with a classifier that ignores the image: output ranked[0] scores highest, then ranked[1], ..."""
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.fill_(-10.0)
        for rank, index in enumerate(ranked):
            model.fc.bias[index] = 10.0 - rank
    return model


def one_split(root, split, classes, per_class=2, size=(32, 32)):
    """ROOT/<split>/<class>/ with `per_class` random PNGs of `size` each, and no other split."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            save_image(root / split / name / f"{i}.png", size=size, seed=10 * c + i)
    return str(root)


def test_a_folder_holding_only_the_test_split_is_labelled_by_the_checkpoint(tmp_path, capsys):
    # The model always answers "cat" (its class 3); the folder holds cat and dog and no train split. Labelled by the
    # checkpoint's classes, half the images are right; labelled by the folder's own order (cat 0, dog 1), none.
    model = rigged(create_model("cifar_resnet", depth=8, num_classes=10), CIFAR_CLASSES.index("cat"))
    run = export(tmp_path / "r.safetensors", model, CIFAR_CLASSES, CIFAR_RUN, torch.rand(3, 32, 32))
    data = one_split(tmp_path / "cifar-test", "test", ["cat", "dog"])
    result = evaluate(capsys, "--checkpoint", run, "--data", data, "--split", "test")
    assert (result["images"], result["top1_error"], result["classes"]) == (4, 50.0, 10)
    assert result["classes_absent"] == [c for c in CIFAR_CLASSES if c not in ("cat", "dog")]
    assert main(["evaluate", "--checkpoint", run, "--data", data, "--split", "test"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("8 of the model's 10 classes have no images in the test split (airplane, automobile")


def test_a_folder_class_the_model_does_not_know_is_a_one_line_error(cifar_model, tmp_path, capsys):
    data = one_split(tmp_path / "d", "test", ["cat", "zebra"])
    message = error(capsys, "--checkpoint", cifar_model, "--data", data, "--split", "test")
    assert "has class 'zebra', which the model does not know; its 10 classes are airplane, automobile" in message


def test_torchvision_weights_map_an_imagenette_subset_by_wnid(tmp_path, capsys):
    # A torchvision-format file names no classes: its 1000 outputs are the sorted ImageNet wnids. The rigged model
    # answers n02102040 (English springer, output 217), then n02979186 (cassette player, output 482).
    state = torchvision_state_dict(False, (2, 2, 2, 2), 1, 64, num_classes=1000)
    springer, cassette = IMAGENET_WNIDS.index("n02102040"), IMAGENET_WNIDS.index("n02979186")
    assert (springer, cassette) == (217, 482)
    model = rigged(create_model("resnet18", num_classes=1000), springer, cassette)
    state["fc.weight"], state["fc.bias"] = model.fc.weight.detach().clone(), model.fc.bias.detach().clone()
    weights = tmp_path / "resnet18.pth"
    torch.save(state, weights)
    wnids = ["n01440764", "n02102040", "n02979186"]  # tench, English springer, cassette player
    data = one_split(tmp_path / "imagenette", "val", wnids, size=(40, 36))  # val only, as Imagenette's val archive
    small = ["--resize", "32", "--crop", "32", "--workers", "0"]
    result = evaluate(capsys, "--weights", str(weights), "--model", "resnet18", "--data", data, *small)
    assert result["images"] == 6 and result["classes"] == 1000
    assert len(result["classes_absent"]) == 997 and not set(wnids) & set(result["classes_absent"])
    # top-1: only the springers are right; top-5: the cassette players too.
    assert result["top1_error"] == pytest.approx(100 * 4 / 6) and result["top5_error"] == pytest.approx(100 * 2 / 6)
