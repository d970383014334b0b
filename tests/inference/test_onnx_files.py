"""ONNX files a user or the cache holds: tampered metadata is one line naming the file and the key, `--opset` is
written as asked or refused before anything is written, and a damaged or swapped cache entry is exported again."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from resnets.cli import main
from resnets.core.errors import UserError
from resnets.core.paths import default_cache_dir
from resnets.inference import load_predictor, onnx_cache
from resnets.weights.files import export_safetensors

from .conftest import CIFAR_PNG, cifar_trained

onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install 'resnets[deploy]')")
pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime (pip install 'resnets[deploy]')")

from resnets.inference.onnx_export import MIN_OPSET, export_onnx, opset_range  # noqa: E402 (after the skips)
from resnets.inference.onnx_runtime import load_onnx  # noqa: E402

FILES = sorted((CIFAR_PNG / "test").rglob("*.png"))[::12]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "cifar.onnx"
    export_onnx(cifar_trained(), path)
    return path


def tampered(exported: Path, tmp_path: Path, **values: str | None) -> Path:
    """A copy of `exported` with metadata values replaced (None: removed)."""
    model = onnx.load(str(exported))
    props = {p.key: p.value for p in model.metadata_props}
    props = {k: v for k, v in {**props, **values}.items() if v is not None}
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "tampered.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    "values, words",
    [
        ({"classes": json.dumps(["cat", "dog"])}, "'classes' names 2 classes for 10 outputs"),
        ({"classes": "airplane, automobile"}, "metadata 'classes' is not JSON"),
        ({"classes": json.dumps([1] * 10)}, "'classes' is not a list of names"),
        ({"mean_shape": json.dumps([3, 16, 64])}, "'mean' has shape [3, 16, 64], not [3, 1, 1] or [3, 32, 32]"),
        ({"mean_shape": json.dumps([3, 1, 1])}, "'mean' holds 3072 values, not the 3 of its shape"),
        ({"mean": "[0.5, 0.5"}, "metadata 'mean' is not a list of finite numbers"),
        ({"mean": json.dumps([0.5, "x", 0.5]), "mean_shape": "[3, 1, 1]"}, "metadata 'mean' is not a list"),
        ({"mean": json.dumps(["NaN"])}, "metadata 'mean' is not a list"),
        ({"std": json.dumps([0.2, 0.2])}, "'std' is not 3 positive finite values"),
        ({"train_config": "{'crop_size': 32}"}, "metadata 'train_config' is not an object"),
        ({"train_config": json.dumps({"test_resize": -1})}, "metadata 'train_config'"),
        ({"mean_shape": None}, "its metadata has no 'mean_shape'"),
        ({"model_name": None}, "its metadata has no 'model_name'"),
    ],
)
def test_tampered_metadata_is_one_line_naming_the_file_and_the_key(exported, tmp_path, capsys, values, words):
    path = tampered(exported, tmp_path, **values)
    with pytest.raises(UserError) as error:
        load_onnx(path)
    assert str(path) in str(error.value) and words in str(error.value) and "\n" not in str(error.value)
    capsys.readouterr()
    assert main(["predict", "--onnx", str(path), str(FILES[0])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def opset_of(path: Path) -> list[int]:
    return [entry.version for entry in onnx.load(str(path)).opset_import if entry.domain in ("", "ai.onnx")]


def test_the_opset_asked_for_is_the_opset_written(tmp_path):
    low, high = opset_range()
    assert low == MIN_OPSET == 18 and high >= 21
    for opset in (low, 21, high):
        out = tmp_path / f"m{opset}.onnx"
        export_onnx(cifar_trained(fit=False), out, opset=opset)
        assert opset_of(out) == [opset]


@pytest.mark.parametrize("opset", [5, 13, 17, 0, -1, 99])
def test_an_opset_the_exporter_cannot_write_is_refused_before_anything_is_written(tmp_path, capsys, opset):
    export_safetensors(cifar_trained(fit=False), tmp_path / "m.safetensors")
    out = tmp_path / "m.onnx"
    argv = ["export", "--checkpoint", str(tmp_path / "m.safetensors"), "--format", "onnx", "--out", str(out)]
    capsys.readouterr()
    assert main([*argv, "--opset", str(opset)]) == 2
    err = capsys.readouterr().err
    low, high = opset_range()
    assert (
        err.count("\n") == 1 and f"--opset {opset} is not supported: the exporter writes opsets {low} to {high}" in err
    )
    assert list(tmp_path.iterdir()) == [tmp_path / "m.safetensors"]
    with pytest.raises(UserError, match=f"--opset {opset} is not supported"):
        export_onnx(cifar_trained(fit=False), out, opset=opset)


@pytest.mark.parametrize("flags", [["--opset", "18"], ["--no-dynamic-batch"]])
def test_onnx_graph_flags_without_onnx_format_are_refused(tmp_path, capsys, flags):
    export_safetensors(cifar_trained(fit=False), tmp_path / "m.safetensors")
    argv = ["export", "--checkpoint", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "w.safetensors")]
    capsys.readouterr()
    assert main([*argv, *flags]) == 2
    assert f"{flags[0]} applies to --format onnx" in capsys.readouterr().err
    assert not (tmp_path / "w.safetensors").exists()


@pytest.fixture
def cifar_model_file(tmp_path) -> Path:
    path = tmp_path / "cifar.safetensors"
    export_safetensors(cifar_trained(), path)
    return path


def cached_entry(model: Path) -> Path:
    load_predictor(model)
    (entry,) = (default_cache_dir() / "onnx").glob("*.onnx")
    return entry


def damage_truncate(entry: Path, tmp_path: Path) -> None:
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])


def damage_swap(entry: Path, tmp_path: Path) -> None:
    """Another model's checked export (with its record) copied over the entry: valid, but other weights."""
    shutil.copy(onnx_cache.cached_onnx(cifar_trained(seed=1, fit=False)), entry)


def damage_swap_with_record(entry: Path, tmp_path: Path) -> None:
    other = cifar_trained(seed=1, fit=False)
    source = onnx_cache.cached_onnx(other)
    shutil.copy(source, entry)
    shutil.copy(source.with_name(source.name + ".json"), entry.with_name(entry.name + ".json"))


def damage_unrecorded(entry: Path, tmp_path: Path) -> None:
    entry.with_name(entry.name + ".json").unlink()  # as entries cached before the records


def damage_deep_record(entry: Path, tmp_path: Path) -> None:
    entry.with_name(entry.name + ".json").write_text("[" * 100_000 + "]" * 100_000)  # past the parser's depth


@pytest.mark.parametrize(
    "damage", [damage_truncate, damage_swap, damage_swap_with_record, damage_unrecorded, damage_deep_record]
)
def test_a_damaged_or_swapped_cache_entry_is_exported_again(cifar_model_file, tmp_path, damage):
    entry = cached_entry(cifar_model_file)
    good = entry.read_bytes()
    damage(entry, tmp_path)
    with pytest.warns(UserWarning, match=f"the cached ONNX export {entry} .*; exporting it again"):
        predictor = load_predictor(cifar_model_file)
    assert predictor.backend == "onnxruntime" and entry.read_bytes() == good
    expected = load_predictor(cifar_model_file, backend="torch").scores(FILES)
    torch.testing.assert_close(predictor.scores(FILES), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("part", ["entry", "record"])
@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_cache_entry_that_is_no_file_is_one_line_naming_it(cifar_model_file, part, kind):
    entry = cached_entry(cifar_model_file)
    target = entry if part == "entry" else entry.with_name(entry.name + ".json")
    target.unlink()
    target.mkdir() if kind == "folder" else os.mkfifo(target)
    with pytest.raises(UserError, match=f"{target} is a .*, not an ONNX cache file; remove it"):
        load_predictor(cifar_model_file, backend="onnx")


def test_a_cache_folder_that_cannot_be_made_is_one_line(cifar_model_file, monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RESNETS_CACHE", str(tmp_path / "file"))
    with pytest.raises(UserError, match="the ONNX cache .* is a file, not a folder"):
        load_predictor(cifar_model_file, backend="onnx")
