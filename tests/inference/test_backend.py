"""The default backend of predict and serve: ONNX Runtime where it is exact (cached export), else PyTorch."""

from __future__ import annotations

import sys

import pytest
import torch

import resnets
from resnets.cli import main
from resnets.core.paths import default_cache_dir
from resnets.inference import load_predictor, onnx_cache
from resnets.weights.files import load_trained

from ..conftest import CIFAR_CLASSES
from .conftest import CIFAR_PNG

FILES = sorted((CIFAR_PNG / "test").rglob("*.png"))[::5]


def test_auto_runs_a_cifar_checkpoint_with_onnx_runtime_as_torch_does(cifar_model):
    auto = load_predictor(cifar_model)
    torch_ = load_predictor(cifar_model, backend="torch")
    assert auto.backend == "onnxruntime" and auto.info()["backend"] == "onnxruntime"
    assert type(auto.member.model).__name__ == "OnnxModel" and torch_.backend == "torch"
    scores, expected = auto.scores(FILES), torch_.scores(FILES)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)
    tops, expected_tops = auto.top(scores), torch_.top(expected)
    assert [[c["index"] for c in t] for t in tops] == [[c["index"] for c in t] for t in expected_tops]
    assert auto.labels == torch_.labels == CIFAR_CLASSES


def test_the_export_is_cached_and_reused(cifar_model, monkeypatch):
    load_predictor(cifar_model)
    (cached,) = (default_cache_dir() / "onnx").glob("*.onnx")

    def no_export(*args, **kwargs):
        raise AssertionError("exported a second time")

    monkeypatch.setattr(onnx_cache, "export_onnx", no_export)
    again = load_predictor(cifar_model)
    assert again.backend == "onnxruntime" and again.member.model.source == str(cached)


def test_other_weights_get_another_cache_file(cifar_model):
    trained = load_trained(cifar_model)
    first = onnx_cache.cache_path(trained)
    with torch.no_grad():
        trained.model.fc.bias.add_(1e-3)
    assert onnx_cache.cache_path(trained) != first


@pytest.mark.parametrize(
    "settings, reason",
    [
        ({"view": "multiscale", "scales": (32, 40)}, "multiscale view"),
        ({"precision": "bf16"}, "--precision bf16"),
    ],
)
def test_views_of_other_sizes_and_autocast_stay_with_torch(cifar_model, settings, reason):
    assert load_predictor(cifar_model, **settings).backend == "torch"
    with pytest.raises(resnets.UserError, match=reason):
        load_predictor(cifar_model, backend="onnx", **settings)
    assert not (default_cache_dir() / "onnx").exists()  # nothing exported for a path that does not run it


def test_cli_backend_flag(cifar_model, capsys):
    assert main(["predict", "--checkpoint", str(cifar_model), str(FILES[0]), "--backend", "torch", "--json"]) == 0
    assert not (default_cache_dir() / "onnx").exists()
    assert main(["predict", "--checkpoint", str(cifar_model), str(FILES[0]), "--precision", "bf16"]) == 0
    assert not (default_cache_dir() / "onnx").exists()


def test_backend_onnx_without_onnxruntime_is_one_line(cifar_model, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    assert load_predictor(cifar_model).backend == "torch"  # auto: PyTorch, as before the deploy extra
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(cifar_model), str(FILES[0]), "--backend", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs onnxruntime" in err and "resnets[deploy]" in err


def test_an_export_that_fails_its_check_falls_back_to_torch(cifar_model, monkeypatch):
    def wrong(*args, **kwargs):
        raise resnets.UserError("ONNX Runtime's outputs differ from PyTorch's by 0.1")

    monkeypatch.setattr(onnx_cache, "export_onnx", wrong)
    with pytest.warns(UserWarning, match="running PyTorch, since ONNX Runtime's outputs differ"):
        assert load_predictor(cifar_model).backend == "torch"
    with pytest.raises(resnets.UserError, match="differ from PyTorch"):
        load_predictor(cifar_model, backend="onnx")
