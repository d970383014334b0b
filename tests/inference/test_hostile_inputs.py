"""predict against careless and hostile inputs: other sizes, oversized views, odd files, bad --out, fixed-batch ONNX
graphs, architecture flags beside a checkpoint, and a model with non-finite outputs (issue 27)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.cli import main
from resnets.core.errors import UserError
from resnets.inference import load_predictor
from resnets.inference.inputs import collect_images
from resnets.weights.files import export_safetensors

from .conftest import CIFAR_PNG, cifar_trained

GOOD = sorted((CIFAR_PNG / "test").rglob("*.png"))[:3]  # 32x32, the CIFAR model's own size
needs_onnx = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")),
    reason="ONNX Runtime needs pip install 'resnets[deploy]'",
)


def run(capsys, *args: str, code: int = 0) -> tuple[str, str]:
    capsys.readouterr()
    assert main(list(args)) == code, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.out, captured.err


def one_line_error(capsys, *args: str) -> str:
    _, err = run(capsys, *args, code=2)
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A smooth random RGB image of `size` (W, H): a photo to a CIFAR model."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    small.resize(size, Image.BILINEAR).save(path)
    return path


def tops(predictions) -> list[list[int]]:
    return [[c["index"] for c in top] for top in predictions]


@needs_onnx
def test_eager_and_onnx_give_a_photo_the_same_outcome(cifar_model, tmp_path):
    images = [photo(tmp_path / "square.png", (224, 224)), photo(tmp_path / "wide.jpg", (300, 200), 1), *GOOD]
    eager, onnx = load_predictor(cifar_model, backend="torch"), load_predictor(cifar_model, backend="onnx")
    assert (eager.backend, onnx.backend) == ("torch", "onnxruntime")
    torch.testing.assert_close(onnx.scores(images), eager.scores(images), atol=1e-5, rtol=0)
    assert tops(onnx.predict(images)) == tops(eager.predict(images))
    fitted = Image.open(images[0]).resize((32, 32), Image.BILINEAR, reducing_gap=None)
    assert eager.info()["input_size"] == [32, 32]  # what the photo is resized to, whichever backend runs it
    assert tops(eager.predict([fitted])) == tops(eager.predict(images[:1]))


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnx", marks=needs_onnx)])
def test_a_folder_with_bad_images_gives_the_good_ones_and_reports_the_others(cifar_model, tmp_path, capsys, backend):
    folder = tmp_path / "in"
    folder.mkdir()
    for file in GOOD:
        shutil.copy(file, folder)
    photo(folder / "photo.jpg", (224, 224))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    photo(folder / "strip.png", (2000, 50))  # 40:1, a view would resize it to 10240x256
    out = tmp_path / "p.csv"
    args = ["predict", "--checkpoint", str(cifar_model), str(folder), "--out", str(out), "--backend", backend]
    _, err = run(capsys, *args)
    with out.open() as f:
        rows = {Path(row["file"]).name for row in csv.DictReader(f)}
    assert rows == {f.name for f in GOOD} | {"photo.jpg"}
    assert sum(
        "skipped" in line and "broken.png" in line and "cannot decode image" in line for line in err.splitlines()
    )
    assert sum("skipped" in line and "strip.png" in line and "20 times as long" in line for line in err.splitlines())
    assert "4 images predicted; skipped 2 bad images, resized 1 image of other sizes to the model's 32x32 input" in err


def test_a_large_photo_through_a_cifar_models_full_view_is_resized(cifar_model, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(big)  # a few KB; 12M pixels at full size
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(small)
    predictor = load_predictor(cifar_model, backend="torch")
    (outcome,) = predictor.predict_files([big])
    assert outcome.error is None and outcome.resized
    torch.testing.assert_close(predictor.scores([big]), predictor.scores([small]), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "view, size, reason",
    [
        ("center", (2000, 50), "more than 20 times as long"),
        ("multiscale", (3300, 300), "resized for the view to 7040x640"),
        ("full", (2100, 2100), "more than the 4194304 pixels a view takes"),  # a network of any input size
    ],
)
def test_images_too_large_for_the_view_are_refused_one_by_one(tmp_path, view, size, reason):
    trained = cifar_trained(fit=False)
    trained.pixel_mean = torch.full((3, 1, 1), 0.47)  # takes any size, as bare weights do
    export_safetensors(trained, tmp_path / "any.safetensors")
    predictor = load_predictor(tmp_path / "any.safetensors", view=view, resize=40, crop=32, scales=(32, 640))
    files = [photo(tmp_path / "big.png", size), GOOD[0]]
    outcomes = list(predictor.predict_files(files))
    assert outcomes[0].top is None and reason in outcomes[0].error and str(files[0]) in outcomes[0].error
    assert outcomes[1].error is None and outcomes[1].top
    with pytest.raises(UserError, match=reason):
        predictor.scores(files)


def test_fifos_and_link_loops_in_a_folder_are_walked_once(cifar_model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(GOOD[0], folder / "a.png")
    os.mkfifo(folder / "pipe.png")  # reading it would wait forever for a writer
    os.symlink(".", folder / "self")  # a loop: in/self/self/.../a.png
    out, err = run(capsys, "predict", "--checkpoint", str(cifar_model), str(folder), f"{folder}/**/*.png", "--json")
    assert [Path(entry["file"]).name for entry in json.loads(out)] == ["a.png"]
    assert "ignored 2 non-image files" in err  # the FIFO, once from the folder and once from the glob


def test_collect_images_skips_fifos_and_names_each_real_file_once(tmp_path):
    shutil.copy(GOOD[0], tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    os.symlink(".", tmp_path / "self")  # one loop: glob named a.png once per level, 40 times
    for paths in ([str(tmp_path)], [f"{tmp_path}/**/*.png"], [str(tmp_path / "a.png"), str(tmp_path / "self/a.png")]):
        assert collect_images(paths).files == [tmp_path / "a.png"], paths


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: Path("/dev/zero"), "/dev/zero is a character device, not an image file or folder"),
        (lambda p: os.mkfifo(p / "f.png") or p / "f.png", "f.png is a FIFO (named pipe), not an image file or folder"),
        (lambda p: os.symlink("gone", p / "l.png") or p / "l.png", "l.png is a dangling link"),
        (lambda p: p / "none.png", "none.png does not exist"),
    ],
)
def test_a_named_path_that_is_no_image_says_what_it_is(cifar_model, tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert message in one_line_error(capsys, "predict", "--checkpoint", str(cifar_model), str(path))


@pytest.mark.parametrize(
    "make, out, message",
    [
        (lambda p: (p / "x.csv").mkdir(), "x.csv", "x.csv is a folder, not a file"),
        (lambda p: (p / "x.csv.partial").mkdir(), "x.csv", "x.csv.partial is a folder, not a file"),
        (lambda p: (p / "keep.csv").write_text("mine"), "keep.csv/x.csv", "keep.csv is a file, not a folder"),
        (lambda p: None, "no/x.csv", "no does not exist, not a folder"),
    ],
)
def test_a_bad_out_is_one_line_before_any_prediction(cifar_model, tmp_path, capsys, monkeypatch, make, out, message):
    make(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["predict", "--checkpoint", str(cifar_model), str(GOOD[0]), "--out", out, "--overwrite"]
    monkeypatch.setattr("resnets.inference.Predictor.predict_files", lambda *a, **k: pytest.fail("predicted"))
    assert message in one_line_error(capsys, *args)
    assert not (tmp_path / "keep.csv").exists() or (tmp_path / "keep.csv").read_text() == "mine"


@needs_onnx
def test_an_onnx_graph_with_a_fixed_batch_runs_one_image_at_a_time(tmp_path, capsys):
    from resnets.inference.onnx_export import export_onnx

    export_onnx(cifar_trained(), tmp_path / "fixed.onnx", dynamic_batch=False)
    export_onnx(cifar_trained(), tmp_path / "dynamic.onnx")
    files = sorted((CIFAR_PNG / "test").rglob("*.png"))[:10]
    fixed = load_predictor(onnx=tmp_path / "fixed.onnx", batch_size=10)
    assert fixed.forward_batch == 1
    torch.testing.assert_close(fixed.scores(files), load_predictor(onnx=tmp_path / "dynamic.onnx").scores(files))
    out, _ = run(capsys, "predict", "--onnx", str(tmp_path / "fixed.onnx"), *map(str, files), "--batch-size", "10")
    assert out.count(".png") == 10


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "resnet20"], "--model NAME go together"),
        (["--shortcut", "B"], "--shortcut builds --model NAME for --weights"),
        (["--stride-on", "1x1", "--shortcut", "A"], "--shortcut --stride-on builds"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "serve"])
def test_architecture_flags_beside_a_checkpoint_are_refused(cifar_model, capsys, monkeypatch, command, extra, message):
    if command == "serve":
        pytest.importorskip("uvicorn")
        monkeypatch.setattr(socket.socket, "bind", lambda *a: pytest.fail("serve went on to bind"))
    paths = [str(GOOD[0])] if command == "predict" else []
    assert message in one_line_error(capsys, command, "--checkpoint", str(cifar_model), *paths, *extra)


def test_evaluate_refuses_them_by_the_same_check(cifar_model):
    from resnets.evaluation.protocol import load_models

    with pytest.raises(UserError, match="--shortcut builds --model NAME for --weights"):
        load_models([str(cifar_model)], shortcut="B")


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnx", marks=needs_onnx)])
def test_non_finite_outputs_give_valid_json_with_null_and_one_warning(tmp_path, capsys, backend):
    # On ONNX too: the export's check against PyTorch takes a NaN that both give as equal, not as a wrong export.
    trained = cifar_trained(fit=False)
    with torch.no_grad():
        trained.model.fc.bias[3] = math.nan
    export_safetensors(trained, tmp_path / "nan.safetensors")
    args = ["predict", "--checkpoint", str(tmp_path / "nan.safetensors"), *map(str, GOOD), "--batch-size", "1"]
    out, err = run(capsys, *args, "--json", "--backend", backend)
    entries = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert len(entries) == 3 and all(c["probability"] is None for e in entries for c in e["top"])
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"warning: {tmp_path / 'nan.safetensors'} gives NaN or infinite outputs; their probabilities are null (were "
        "its weights saved after a divergence?)"
    ]
    table, _ = run(capsys, *args, "--backend", backend)
    assert "      ?" in table


@pytest.mark.parametrize("view", ["center", "10crop", "full"])
def test_large_photos_wait_at_the_views_size_and_get_the_same_crops(cifar_model, photo_model, tmp_path, view):
    big = photo(tmp_path / "big.jpg", (1200, 900))
    model = cifar_model if view == "full" else photo_model
    predictor = load_predictor(model, view=view, backend="torch")
    image, _ = predictor._load(big)
    assert min(image.shape[-2:]) == (32 if view == "full" else predictor.resize)  # not 900x1200 while it waits
    (outcome,) = predictor.predict_files([big])
    assert outcome.top == predictor.predict([big])[0]  # the full-size image through the view: the same scores


def run_folder(tmp_path: Path, cifar_model: Path) -> Path:
    """A run folder as `resnets train` leaves it (its weights as final.safetensors, its records beside them)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(cifar_model, run_dir / "final.safetensors")
    for name in ("config.json", "metrics.csv", "sessions.jsonl"):
        (run_dir / name).write_text("mine\n")
    return run_dir


@pytest.mark.parametrize("target", ["image", "metrics.csv", "sessions.jsonl"])
def test_predict_out_never_replaces_an_input_even_with_overwrite(cifar_model, tmp_path, capsys, target):
    run_dir = run_folder(tmp_path, cifar_model)
    image = tmp_path / "photo.csv"  # a PNG by its content: predict takes a named file whatever its extension
    shutil.copy(GOOD[0], image)
    out = image if target == "image" else run_dir / target
    before = out.read_bytes()
    err = one_line_error(capsys, "predict", "--checkpoint", str(run_dir), str(image), "--out", str(out), "--overwrite")
    assert "an input is never replaced" in err and out.read_bytes() == before


@pytest.mark.parametrize("name", ["config.json", "metrics.csv", "final.safetensors"])
def test_export_never_replaces_a_file_of_the_input_run_even_forced(cifar_model, tmp_path, capsys, name):
    run_dir = run_folder(tmp_path, cifar_model)
    before = (run_dir / name).read_bytes()
    out = str(run_dir / name)
    err = one_line_error(capsys, "export", "--checkpoint", str(run_dir), "--out", out, "--force")
    assert "an input is never replaced" in err and (run_dir / name).read_bytes() == before


def test_a_link_at_the_partial_file_is_removed_never_written_through(cifar_model, tmp_path, capsys):
    victim = tmp_path / "last.pt"
    victim.write_bytes(b"precious")
    (tmp_path / "p.csv.partial").symlink_to(victim)
    run(capsys, "predict", "--checkpoint", str(cifar_model), str(GOOD[0]), "--out", str(tmp_path / "p.csv"))
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "p.csv").is_symlink() and (tmp_path / "p.csv").read_text().startswith("file,")
