"""Weights that ship inside the package (resnets-cifar10): loaded by name, listed with their measured error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from resnets import create_model
from resnets.cli import main
from resnets.core.errors import UserError
from resnets.training.loop import train
from resnets.weights import releases
from resnets.weights.files import export_safetensors, load_trained, pretrained_model, read_metadata

from .tiny import tiny_config


@pytest.fixture(scope="module")
def finished_run(cifar_png, tmp_path_factory):
    """A (tiny) run of the paper's final protocol: all training images, validated on the test split."""
    run = tmp_path_factory.mktemp("released") / "resnet20"
    train(tiny_config(cifar_png, run, val_split=0, batch_size=24, iters=4, eval_every=2, log_every=2))
    return run


@pytest.fixture
def packaged(finished_run, tmp_path, monkeypatch):
    """The run exported where the package keeps resnets-cifar10's files."""
    monkeypatch.setattr(releases, "PACKAGED", tmp_path / "released")
    export_safetensors(load_trained(finished_run), tmp_path / "released" / "cifar10" / "resnet20.safetensors")
    return finished_run


def test_weights_load_by_name_with_their_mean_classes_and_measured_error(packaged):
    trained = pretrained_model("resnet20", "resnets-cifar10")
    run = load_trained(packaged)
    assert trained.classes == run.classes and torch.equal(trained.pixel_mean, run.pixel_mean)
    for key, value in run.model.state_dict().items():
        assert torch.equal(trained.model.state_dict()[key], value), key
    rows = list(csv.DictReader((packaged / "metrics.csv").open()))
    assert (trained.iteration, trained.val_error) == (4, pytest.approx(float(rows[-1]["val_error"])))
    assert isinstance(create_model("resnet20", weights="resnets-cifar10"), torch.nn.Module)


def test_list_shows_which_models_have_weights_and_their_test_error(packaged, capsys):
    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    error = read_metadata(releases.RELEASES["resnets-cifar10"].packaged_file("resnet20"))["val_error"]
    assert lines["resnet20"].endswith(f"resnets-cifar10 (test error {error:.2f}% at 4 iterations)")
    assert "resnets-cifar10" not in lines["resnet56"]


def test_evaluate_by_name_reports_the_error_the_run_measured(packaged, cifar_png, capsys):
    args = ["evaluate", "--model", "resnet20", "--weights", "resnets-cifar10", "--data", str(cifar_png)]
    assert main([*args, "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader((packaged / "metrics.csv").open()))
    assert result["views"]["full"]["top1_error"] == pytest.approx(float(rows[-1]["val_error"]))


def test_a_depth_without_weights_names_the_ones_that_have_them(packaged):
    with pytest.raises(UserError, match="resnets-cifar10 has no weights for 'resnet56'; it has weights for: resnet20"):
        pretrained_model("resnet56", "resnets-cifar10")


RUNS = Path(__file__).resolve().parents[1] / "docs" / "reproductions" / "cifar10" / "table6"


SHIPPED = releases.RELEASES["resnets-cifar10"].models()


@pytest.mark.parametrize("model", SHIPPED)
def test_every_shipped_net_is_its_finished_run_and_classifies_real_test_images(model, cifar_png, capsys):
    shipped = releases.RELEASES["resnets-cifar10"].packaged_file(model)
    run = next(p for p in (RUNS / model, RUNS.parent / "degradation" / model) if p.is_dir())
    assert shipped.read_bytes() == (run / "final.safetensors").read_bytes()  # the run's export, unchanged
    metadata = read_metadata(shipped)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert (metadata["iteration"], metadata["train_images"]) == (64000, 50000) == (int(rows[-1]["iteration"]), 50000)
    assert metadata["val_error"] == pytest.approx(float(rows[-1]["val_error"]))
    # 60 real test images (6 per class): a finished ResNet gets a few wrong; an untrained net about 90%.
    args = ["evaluate", "--model", model, "--weights", "resnets-cifar10", "--data", str(cifar_png)]
    assert main([*args, "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1_error"] <= 20
