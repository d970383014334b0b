"""Int8 inference: `export --int8` writes a graph only once it is checked against fp32 (refused past --max-drop,
writing nothing), predict and serve run a cached int8 graph that agrees with fp32, and the flags that do not fit
together are one-line errors."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnets.cli import main
from resnets.core.checkpoints import save_checkpoint
from resnets.core.paths import default_cache_dir
from resnets.detection.model import KIND
from resnets.inference import load_predictor

from .conftest import CIFAR_PNG

pytest.importorskip("onnx", reason="int8 export needs onnx (pip install 'resnets[deploy]')")
ort = pytest.importorskip("onnxruntime", reason="int8 inference needs onnxruntime (pip install 'resnets[deploy]')")

TRAIN, TEST = CIFAR_PNG / "train", CIFAR_PNG / "test"
SLICE = sorted(CIFAR_PNG.rglob("*.png"))  # the shipped real CIFAR-10 slice: 180 PNGs


def metadata(path: Path) -> dict[str, str]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map


def export(model: Path, out: Path, *flags: str) -> list[str]:
    return ["export", "--checkpoint", str(model), "--format", "onnx", "--out", str(out), *flags]


def one_line_error(capsys, argv: list[str], command: str = "export") -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"resnets {command}: error: "), err
    return err


def test_export_int8_checks_both_graphs_and_records_it(cifar_model, tmp_path, capsys):
    out = tmp_path / "int8.onnx"
    # One of the 60 images is 1.67 points: the tiny model may lose one or two of them
    assert (
        main(export(cifar_model, out, "--int8", "--calibration", str(TRAIN), "--check", str(TEST), "--max-drop", "5"))
        == 0
    )
    printed = capsys.readouterr().out
    props = metadata(out)
    check, settings = json.loads(props["quantization_check"]), json.loads(props["quantization"])
    assert props["precision"] == "int8" and check["images"] == 60 and check["on"] == str(TEST)
    assert f"fp32 {check['fp32_error']:.2f}%, int8 {check['int8_error']:.2f}%" in printed and "agreement" in printed
    assert settings["quant_format"] == "QDQ" and settings["per_channel"] and settings["calibration_images"] == 120
    assert metadata(out)["format"] == "resnets-onnx-v1"


def test_export_int8_without_check_prints_the_agreement_on_the_calibration_images(cifar_model, tmp_path, capsys):
    out = tmp_path / "int8.onnx"
    assert main(export(cifar_model, out, "--int8", "--calibration", str(TRAIN), "--calibration-images", "30")) == 0
    assert "int8 agrees with fp32 on" in capsys.readouterr().out
    assert json.loads(metadata(out)["quantization_check"])["images"] == 30


def test_an_int8_graph_past_max_drop_is_refused_and_nothing_is_written(cifar_model, tmp_path, capsys):
    flat = tmp_path / "flat"  # one nearly uniform image: ranges far too narrow for real images, which then saturate
    flat.mkdir()
    pixels = 128 + np.random.default_rng(0).integers(-2, 3, (32, 32, 3))
    Image.fromarray(pixels.astype(np.uint8)).save(flat / "grey.png")
    out = tmp_path / "int8.onnx"
    argv = export(cifar_model, out, "--int8", "--calibration", str(flat), "--check", str(TEST), "--max-drop", "0.5")
    err = one_line_error(capsys, argv)
    assert "int8 raises the top-1 error on" in err and "--max-drop 0.5" in err and f"{out} was not written" in err
    assert list(tmp_path.iterdir()) == [flat]


def top1(predictor) -> list[int]:
    return [outcome.top[0]["index"] for outcome in predictor.predict_files(SLICE, 1)]


def test_predict_int8_agrees_with_fp32_on_the_real_cifar_slice_and_the_graph_is_cached(cifar_model, capsys):
    fp32 = top1(load_predictor(cifar_model, backend="torch"))
    predictor = load_predictor(cifar_model, precision="int8", calibration=TRAIN)
    assert "built the int8 graph" in capsys.readouterr().err
    int8 = top1(predictor)
    assert predictor.info()["precision"] == "int8" and predictor.backend == "onnxruntime"
    assert np.mean(np.array(fp32) == np.array(int8)) >= 0.9
    (entry,) = (default_cache_dir() / "onnx").glob("*-int8-*.onnx")
    built = entry.stat().st_mtime_ns
    again = load_predictor(cifar_model, precision="int8", calibration=TRAIN)
    assert "built the int8 graph" not in capsys.readouterr().err and entry.stat().st_mtime_ns == built
    assert top1(again) == int8


def test_the_int8_cache_is_keyed_by_the_calibration_images_contents(cifar_model, tmp_path, capsys):
    images = tmp_path / "calibration"
    shutil.copytree(TRAIN / "cat", images)
    load_predictor(cifar_model, precision="int8", calibration=images)
    first = sorted((default_cache_dir() / "onnx").glob("*-int8-*.onnx"))
    changed = sorted(images.iterdir())[0]
    changed.write_bytes((TRAIN / "dog" / sorted(p.name for p in (TRAIN / "dog").iterdir())[0]).read_bytes())
    load_predictor(cifar_model, precision="int8", calibration=images)
    assert len(sorted((default_cache_dir() / "onnx").glob("*-int8-*.onnx"))) == len(first) + 1
    load_predictor(cifar_model, precision="int8", calibration=images, calibration_images=3)
    assert len(sorted((default_cache_dir() / "onnx").glob("*-int8-*.onnx"))) == len(first) + 2


def test_predict_cli_runs_an_int8_export(cifar_model, tmp_path, capsys):
    out = tmp_path / "int8.onnx"
    assert main(export(cifar_model, out, "--int8", "--calibration", str(TRAIN), "--calibration-images", "40")) == 0
    files = [str(p) for p in SLICE[:3]]
    capsys.readouterr()
    assert main(["predict", *files, "--onnx", str(out), "--precision", "int8", "--json", "--top-k", "1"]) == 0
    assert [entry["file"] for entry in json.loads(capsys.readouterr().out)] == files


def test_serve_with_int8_answers(cifar_model):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from resnets.serve.app import create_app
    from resnets.serve.options import ServeSettings

    predictor = load_predictor(cifar_model, precision="int8", calibration=TRAIN, calibration_images=40)
    app = create_app(predictor, ServeSettings())

    async def ask() -> list:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://resnets") as client:
                image = {"content": SLICE[0].read_bytes(), "params": {"name": "a.png"}}
                return [await client.get("/info"), await client.post("/predict", **image)]

    info, answer = asyncio.run(ask())
    assert info.json()["precision"] == "int8" and info.json()["backend"] == "onnxruntime"
    assert answer.status_code == 200 and answer.json()[0]["top"][0]["label"] in predictor.labels


def detection_run(tmp_path: Path) -> Path:
    run = tmp_path / "detector"
    run.mkdir()
    state = {"kind": KIND, "iteration": 2, "detector_config": {}, "backbone_config": {}, "classes": ["cat"]}
    save_checkpoint(run / "last.pt", {**state, "train_config": {}, "model": {}, "optimizer": {}})
    return run


def test_export_int8_errors_are_one_line_and_write_nothing(cifar_model, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no images here")
    out = tmp_path / "out.onnx"
    cases = {
        "holds no images": export(cifar_model, out, "--int8", "--calibration", str(empty)),
        "is not a folder": export(cifar_model, out, "--int8", "--calibration", str(tmp_path / "missing")),
        "use --format onnx, not --format safetensors": [
            *export(cifar_model, out, "--int8", "--calibration", str(TRAIN)),
            "--format",
            "safetensors",
        ],
        "needs --calibration DIR": export(cifar_model, out, "--int8"),
        "apply to --int8": export(cifar_model, out, "--calibration", str(TRAIN)),
        "--calibration-images 0 must be": export(
            cifar_model, out, "--int8", "--calibration", str(TRAIN), "--calibration-images", "0"
        ),
        "--max-drop nan must be": export(cifar_model, out, "--int8", "--calibration", str(TRAIN), "--max-drop", "nan"),
        "--check": export(cifar_model, out, "--int8", "--calibration", str(TRAIN), "--check", str(out)),
        "drop --no-dynamic-batch": export(
            cifar_model, out, "--int8", "--calibration", str(TRAIN), "--no-dynamic-batch"
        ),
        "is a detection run": export(detection_run(tmp_path), out, "--int8", "--calibration", str(TRAIN)),
    }
    for words, argv in cases.items():
        assert words in one_line_error(capsys, argv), words
    assert not out.exists()


def test_predict_int8_errors_are_one_line(cifar_model, tmp_path, capsys):
    fp32 = tmp_path / "fp32.onnx"
    assert main(export(cifar_model, fp32)) == 0
    image = str(SLICE[0])
    base = ["predict", image, "--checkpoint", str(cifar_model)]
    cases = {
        "--precision int8 needs --calibration DIR": [*base, "--precision", "int8"],
        "is an fp32 graph; export it with --int8": ["predict", image, "--onnx", str(fp32), "--precision", "int8"],
        "apply to --precision int8": [*base, "--calibration", str(TRAIN)],
        "drop --backend torch": [*base, "--precision", "int8", "--calibration", str(TRAIN), "--backend", "torch"],
        "holds no images": [*base, "--precision", "int8", "--calibration", str(tmp_path / "empty")],
        "--precision int8: the multiscale view": [
            *base,
            "--precision",
            "int8",
            "--calibration",
            str(TRAIN),
            "--views",
            "multiscale",
        ],
        "is a detection run": [
            "predict",
            image,
            "--checkpoint",
            str(detection_run(tmp_path)),
            "--precision",
            "int8",
            "--calibration",
            str(TRAIN),
        ],
    }
    (tmp_path / "empty").mkdir()
    for words, argv in cases.items():
        assert words in one_line_error(capsys, argv, "predict"), words
