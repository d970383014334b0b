"""Malformed model files: every damaged, foreign or tampered file is one line naming it (and the key at fault), never
a traceback; an export's checksum catches a flipped byte; a detection run or an ONNX file in a classifier's place
names the command or flag that takes it."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import zipfile
from pathlib import Path

import onnx
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save, save_file

from resnets.cli import main
from resnets.core.checkpoints import load_checkpoint, save_checkpoint
from resnets.core.errors import UserError
from resnets.detection.model import KIND
from resnets.models import create_model
from resnets.weights.files import TrainedModel, export_safetensors, load_trained, read_state_dict

from .conftest import CIFAR_CLASSES


def classifier_state(**changes) -> dict:
    """What `resnets train` saves of a CIFAR ResNet-8 (no optimizer: loading a model does not read it)."""
    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=8, num_classes=10)
    state = {
        "iteration": 3,
        "model_name": "resnet8",
        "model_config": model.config.to_dict(),
        "train_config": {"augmentation": "cifar", "val_split": 0},
        "classes": list(CIFAR_CLASSES),
        "pixel_mean": torch.full((3, 32, 32), 0.47),
        "pixel_std": None,
        "model": model.state_dict(),
    }
    return {**state, **changes}


def one_line_naming(error: pytest.ExceptionInfo, path: Path, *words: str) -> str:
    message = str(error.value)
    assert "\n" not in message and str(path) in message and all(w in message for w in words), message
    return message


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "last.pt"
    save_checkpoint(path, classifier_state())
    return path.read_bytes()


def fuzzed(good: bytes) -> dict[str, bytes]:
    """Truncations of a real checkpoint, random bytes, flipped bytes, a safetensors file, a zip of other content and
    pickles of other structures."""
    rng = random.Random(0)
    cases = {f"truncated at {n}": good[:n] for n in range(0, len(good), len(good) // 40)}
    cases |= {f"random {i}": rng.randbytes(rng.randrange(1, 400)) for i in range(60)}
    for i in range(30):
        flipped = bytearray(good)
        flipped[rng.randrange(len(good))] ^= 0xFF
        cases[f"flipped {i}"] = bytes(flipped)
    cases["safetensors"] = save({"w": torch.zeros(3)})
    wrong_zip = io.BytesIO()
    with zipfile.ZipFile(wrong_zip, "w") as z:
        z.writestr("archive/data.pkl", b"not a pickle")
        z.writestr("notes.txt", "hello")
    cases["zip of other content"] = wrong_zip.getvalue()
    for name, value in {"list": [1, 2], "int": 3, "format only": {"format": "resnets-checkpoint-v1"}}.items():
        buffer = io.BytesIO()
        torch.save(value, buffer)
        cases[f"torch pickle of a {name}"] = buffer.getvalue()
        cases[f"plain pickle of a {name}"] = pickle.dumps(value)
    return cases


@pytest.mark.parametrize("name", ["last.pt", "weights.safetensors"])
def test_fuzzed_checkpoints_are_one_line_naming_the_file(good_checkpoint, tmp_path, name):
    path = tmp_path / name
    for case, content in fuzzed(good_checkpoint).items():
        path.write_bytes(content)
        for load in (load_checkpoint, load_trained, read_state_dict):
            try:
                load(path)
            except UserError as e:
                assert "\n" not in str(e) and str(path) in str(e), (case, load.__name__, str(e))
            except Exception as e:  # noqa: BLE001 (the point: nothing but UserError)
                raise AssertionError(f"{case}: {load.__name__} raised {type(e).__name__}: {e}") from None


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"model_config": None}, ["not a classifier checkpoint", "model_config"]),
        ({"model_config": {"depths": "three"}}, ["describes no valid network"]),
        ({"model_config": {"no_such_option": 1}}, ["describes no valid network"]),
        ({"model": {"conv1.weight": "weights"}}, ["not a classifier checkpoint", "model"]),
        ({"model": {"conv1.weight": torch.zeros(2)}}, ["does not fit the model"]),
        ({"pixel_mean": torch.zeros(3, 5)}, ["'pixel_mean' has shape [3, 5]"]),
        ({"pixel_mean": torch.full((3, 1, 1), float("nan"))}, ["'pixel_mean'", "finite"]),
        ({"pixel_std": torch.zeros(3)}, ["'pixel_std' is not 3 positive finite values"]),
        ({"classes": CIFAR_CLASSES[:3]}, ["'classes' names 3 classes for 10 outputs"]),
        ({"classes": [1, 2]}, ["'classes' is not a list of names"]),
        ({"iteration": "3"}, ["iteration"]),
    ],
)
def test_a_checkpoint_of_the_wrong_structure_is_one_line(tmp_path, changes, words):
    path = tmp_path / "last.pt"
    save_checkpoint(path, classifier_state(**changes))  # a valid checksum: the structure itself is wrong
    with pytest.raises(UserError) as error:
        load_trained(path)
    one_line_naming(error, path, *words)


def test_a_safetensors_file_named_pt_loads_as_what_it_is(tmp_path):
    pt = tmp_path / "weights.pt"
    export_safetensors(load_trained_of(tmp_path), pt)
    assert load_trained(pt).name == "resnet8"  # by its content, not its name
    assert set(read_state_dict(pt)) == set(classifier_state()["model"])
    with pytest.raises(UserError) as error:
        load_checkpoint(pt)  # resuming training: it is not a checkpoint
    one_line_naming(error, pt, "holds safetensors, not a PyTorch checkpoint")


def load_trained_of(tmp_path: Path) -> TrainedModel:
    path = tmp_path / "run" / "last.pt"
    path.parent.mkdir()
    save_checkpoint(path, classifier_state())
    return load_trained(path)


def onnx_bytes() -> bytes:
    """A real (empty) ONNX ModelProto, as any ONNX file begins."""
    graph = onnx.helper.make_graph([], "g", [], [])
    return onnx.helper.make_model(graph, producer_name="pytorch").SerializeToString()


@pytest.mark.parametrize("name", ["model.onnx", "model.bin"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_an_onnx_file_as_checkpoint_says_to_pass_it_as_onnx(tmp_path, capsys, name, command):
    model = tmp_path / name
    model.write_bytes(onnx_bytes())
    err = cli_error(capsys, command, model, tmp_path)
    assert f"{model} is an ONNX model, not a checkpoint" in err and f"--onnx {model}" in err, err


def cli_error(capsys, command: str, checkpoint: Path, tmp_path: Path) -> str:
    """The one stderr line of `command` run on `checkpoint` (exit 2), with whatever else it needs."""
    image = tmp_path / "image.png"
    image.write_bytes(b"")  # never read: the model is refused first
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    argv = {
        "predict": ["predict", "--checkpoint", str(checkpoint), str(image)],
        "evaluate": ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data)],
        "export": ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out.safetensors")],
        "serve": ["serve", "--checkpoint", str(checkpoint), "--port", "0"],
        "analyze": ["analyze", "responses", "--checkpoint", str(checkpoint), "--data", str(data)]
        + ["--out", str(tmp_path / "analysis")],
    }[command]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"resnets {command}: error: "), err
    return err


@pytest.mark.parametrize("command", ["export", "predict", "evaluate", "serve", "analyze"])
def test_a_detection_run_names_the_detect_command(tmp_path, capsys, command):
    if command == "serve":
        pytest.importorskip("uvicorn")
    run = tmp_path / "detector"
    run.mkdir()
    state = {"kind": KIND, "iteration": 2, "detector_config": {}, "backbone_config": {}, "classes": ["cat"]}
    save_checkpoint(run / "last.pt", {**state, "train_config": {}, "model": {}, "optimizer": {}})
    err = cli_error(capsys, command, run, tmp_path)
    assert f"{run} is a detection run" in err and f"resnets detect predict --checkpoint {run}" in err, err


def export_without_checksum(tmp_path: Path, **tampered: str) -> Path:
    """A resnets export with `tampered` metadata values and no checksum (as older exports), so that the values
    themselves are what loading checks."""
    path = tmp_path / "exported.safetensors"
    export_safetensors(load_trained_of(tmp_path), path)
    metadata = {k: v for k, v in read_raw_metadata(path).items() if k != "checksum"}
    save_file(load_file(str(path)), str(path), metadata={**metadata, **tampered})
    return path


def read_raw_metadata(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        return json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]


@pytest.mark.parametrize(
    "tampered, words",
    [
        ({"classes": json.dumps(["cat", "dog"])}, ["'classes' names 2 classes for 10 outputs"]),
        ({"classes": "[cat"}, ["metadata 'classes' is not JSON"]),
        ({"pixel_mean": "NaN"}, ["metadata 'pixel_mean' is not a list of finite numbers"]),
        ({"pixel_mean": json.dumps([0.5] * 3)}, ["'pixel_mean' holds 3 values, not the 3072 of its shape"]),
        (
            {"pixel_mean_shape": json.dumps([3, 1, 1]), "pixel_mean": json.dumps([0.5, float("nan"), 0.5])},
            ["'pixel_mean'"],
        ),
        ({"pixel_mean_shape": json.dumps([1, 3072, 1])}, ["'pixel_mean' has shape [1, 3072, 1]"]),
        ({"pixel_std": json.dumps([1, 0, 1])}, ["'pixel_std' is not 3 positive finite values"]),
        ({"model_config": json.dumps([1])}, ["metadata 'model_config' is not an object"]),
        ({"train_config": json.dumps({"crop_size": "big"})}, ["metadata 'train_config'"]),
        ({"iteration": json.dumps("many")}, ["metadata 'iteration' is not a number"]),
        ({"model_name": ""}, ["its metadata has no 'model_name'"]),
        ({"classes": "[" * 100_000 + "]" * 100_000}, ["metadata 'classes' is not JSON"]),  # past the parser's depth
        ({"iteration": "1" + "0" * 400}, ["metadata 'iteration' is not"]),  # past what a float takes
    ],
)
def test_tampered_export_metadata_is_one_line_naming_the_key(tmp_path, tampered, words):
    path = export_without_checksum(tmp_path, **tampered)
    with pytest.raises(UserError) as error:
        load_trained(path)
    one_line_naming(error, path, *words)


def test_an_export_without_a_checksum_loads_bit_for_bit(tmp_path):
    path = export_without_checksum(tmp_path)
    loaded, original = load_trained(path), load_trained(tmp_path / "run" / "last.pt")
    for key, value in original.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert torch.equal(loaded.pixel_mean, original.pixel_mean) and loaded.classes == original.classes


@pytest.mark.parametrize("where", ["tensor data", "metadata"])
def test_a_flipped_byte_in_an_export_is_caught_by_its_checksum(tmp_path, where):
    path = tmp_path / "exported.safetensors"
    export_safetensors(load_trained_of(tmp_path), path)
    assert "checksum" in read_raw_metadata(path)
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    if where == "tensor data":
        data[header + (len(data) - header) // 2] ^= 0x01  # a weight's low bit: a valid file, other numbers
    else:
        at = data.index(b'"iteration":"3"') + len(b'"iteration":"')
        data[at] = ord("4")  # the same length: the file still parses
    path.write_bytes(bytes(data))
    with pytest.raises(UserError) as error:
        load_trained(path)
    one_line_naming(error, path, "is corrupted (its checksum does not match its contents)")


@pytest.mark.parametrize("flag", ["--checkpoint", "--onnx"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_model_path_that_is_no_regular_file_says_what_it_is(tmp_path, capsys, flag, kind):
    # A FIFO is opened to sniff its kind and blocks forever; a device "does not exist": both name what the path is.
    path = Path("/dev/zero") if kind == "device" else tmp_path / "model.pt"
    if kind == "fifo":
        os.mkfifo(path)
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(image)
    assert main(["predict", flag, str(path), str(image)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path} is a {'FIFO' if kind == 'fifo' else 'character device'}" in err
