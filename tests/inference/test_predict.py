"""`resnets predict` and the Predictor: evaluate's preprocessing, input order, output formats, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnets
from resnets.cli import main
from resnets.inference import load_predictor
from resnets.weights.files import export_safetensors

from ..conftest import CIFAR_CLASSES
from .conftest import CIFAR_PNG, WNIDS, cifar_trained


def run(capsys, *args, code: int = 0) -> tuple[str, str]:
    capsys.readouterr()
    assert main(list(args)) == code, capsys.readouterr().err
    captured = capsys.readouterr()
    return captured.out, captured.err


def predict_json(capsys, *args) -> list[dict]:
    return json.loads(run(capsys, "predict", *args, "--json")[0])


def one_line_error(capsys, *args) -> str:
    _, err = run(capsys, *args, code=2)
    message = err.strip().splitlines()[-1]
    assert "Traceback" not in err and message.startswith("resnets ")
    return message


@pytest.mark.parametrize(
    "model, data, split, classes, view",
    [
        ("cifar_model", CIFAR_PNG, "test", CIFAR_CLASSES, "full"),
        ("photo_model", "photos", "val", WNIDS, "center"),
        ("photo_model", "photos", "val", WNIDS, "10crop"),
    ],
)
def test_top1_over_a_labelled_folder_has_exactly_evaluates_error(model, data, split, classes, view, capsys, request):
    model = str(request.getfixturevalue(model))
    data = request.getfixturevalue(data) if isinstance(data, str) else data
    evaluated = json.loads(
        run(
            capsys, "evaluate", "--checkpoint", model, "--data", str(data), "--split", split, "--views", view, "--json"
        )[0]
    )
    predicted = predict_json(capsys, "--checkpoint", model, str(data / split), "--views", view, "--batch-size", "7")
    assert len(predicted) == evaluated["images"] > 0
    wrong = sum(entry["top"][0]["index"] != classes.index(Path(entry["file"]).parent.name) for entry in predicted)
    assert 0 < wrong < len(predicted)  # the fitted head predicts several classes: the comparison means something
    assert 100.0 * (1 - (len(predicted) - wrong) / len(predicted)) == evaluated["top1_error"]


def test_json_follows_the_input_order_with_wnids_named(photo_model, photos, capsys):
    val = photos / "val"
    first = val / WNIDS[2] / f"{WNIDS[2]}_1.jpg"
    result = predict_json(capsys, "--checkpoint", str(photo_model), str(first), str(val / WNIDS[0]), "--top-k", "2")
    expected = [first, *sorted((val / WNIDS[0]).iterdir())]
    assert [entry["file"] for entry in result] == [str(p) for p in expected]
    for entry in result:
        assert [set(t) for t in entry["top"]] == [{"label", "index", "probability"}] * 2
        p = [t["probability"] for t in entry["top"]]
        assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1 + 1e-6
        assert {t["label"] for t in entry["top"]} <= {"tench", "English springer", "cassette player"}
    globbed = predict_json(capsys, "--checkpoint", str(photo_model), str(val / "*" / "*_0.jpg"), "--top-k", "1")
    assert [Path(e["file"]).name for e in globbed] == [f"{w}_0.jpg" for w in WNIDS]


def test_a_bad_image_is_skipped_and_counted_and_other_files_ignored(photo_model, photos, tmp_path, capsys):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    good = photos / "val" / WNIDS[0] / f"{WNIDS[0]}_0.jpg"
    (folder / "a.jpg").write_bytes(good.read_bytes())
    (folder / "sub" / "b.png").write_bytes(good.read_bytes())  # a JPEG named .png: the content decides
    (folder / "broken.jpg").write_bytes(good.read_bytes()[:300])  # truncated
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.jpg").write_bytes(b"junk")
    out, err = run(capsys, "predict", "--checkpoint", str(photo_model), str(folder), "--json")
    assert [Path(e["file"]).name for e in json.loads(out)] == ["a.jpg", "b.png"]
    skipped = [line for line in err.splitlines() if "skipped" in line and "broken.jpg" in line]
    assert len(skipped) == 1 and "cannot decode image" in skipped[0]
    assert "2 images predicted; skipped 1 bad image, ignored 1 non-image file" in err
    message = one_line_error(capsys, "predict", "--checkpoint", str(photo_model), str(folder), "--strict")
    assert "broken.jpg" in message and "--strict" in message


def test_out_streams_csv_and_jsonl_and_keeps_existing_files(photo_model, photos, tmp_path, capsys):
    val = str(photos / "val")
    listed = predict_json(capsys, "--checkpoint", str(photo_model), val, "--top-k", "3")
    run(capsys, "predict", "--checkpoint", str(photo_model), val, "--top-k", "3", "--out", str(tmp_path / "p.jsonl"))
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == listed
    out, _ = run(
        capsys, "predict", "--checkpoint", str(photo_model), val, "--top-k", "3", "--out", str(tmp_path / "p.csv")
    )
    assert out.strip() == f"wrote {len(listed)} predictions to {tmp_path / 'p.csv'}"
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["file"] for r in rows] == [e["file"] for e in listed]
    assert [(r["label1"], int(r["index3"])) for r in rows] == [
        (e["top"][0]["label"], e["top"][2]["index"]) for e in listed
    ]
    assert not list(tmp_path.glob("*.partial"))
    message = one_line_error(capsys, "predict", "--checkpoint", str(photo_model), val, "--out", str(tmp_path / "p.csv"))
    assert "exists; pass --overwrite" in message
    run(capsys, "predict", "--checkpoint", str(photo_model), val, "--out", str(tmp_path / "p.csv"), "--overwrite")


def test_table_lists_each_file_with_its_ranked_classes(photo_model, photos, capsys):
    file = photos / "val" / WNIDS[1] / f"{WNIDS[1]}_2.jpg"
    (entry,) = predict_json(capsys, "--checkpoint", str(photo_model), str(file))
    out, _ = run(capsys, "predict", "--checkpoint", str(photo_model), str(file), "--top-k", "3")
    lines = out.strip().splitlines()
    assert lines[0] == str(file) and len(lines) == 4
    for rank, (line, top) in enumerate(zip(lines[1:], entry["top"]), start=1):
        assert line.split(maxsplit=3) == [
            str(rank),
            f"{100 * top['probability']:.2f}%",
            str(top["index"]),
            top["label"],
        ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere/*.jpg"], "matches no files"),
        (["no-such-file.jpg"], "does not exist"),
        (["--views", "center,10crop"], "predict scores one view"),
        (["--views", "5crop"], "unknown view '5crop'"),
        (["--top-k", "0"], "--top-k 0 must be at least 1"),
        (["--weights", "w.pth"], "--model NAME go together"),
        (["--onnx", "m.onnx"], "exactly one of --checkpoint"),
    ],
)
def test_bad_arguments_are_one_line_errors(photo_model, photos, args, message, capsys):
    paths = [] if args[0].startswith("no") else [str(photos / "val")]
    source = [] if "--weights" in args else ["--checkpoint", str(photo_model)]
    assert message in one_line_error(capsys, "predict", *source, *paths, *args)


def test_weights_without_class_names_get_imagenets_sorted_wnids(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "r20-1000.pth"
    torch.save(resnets.create_model("resnet20", num_classes=1000).state_dict(), weights)
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(image)
    (entry,) = predict_json(capsys, "--model", "resnet20", "--weights", str(weights), str(image), "--top-k", "1")
    predictor = load_predictor(model="resnet20", weights=str(weights))
    # a CIFAR network (3x3 stem) is tested on the whole image, as its CIFAR runs are (issue 28)
    assert predictor.view_name == "full" and predictor.classes[0] == "n01440764" and len(predictor.classes) == 1000
    assert entry["top"][0]["label"] == predictor.labels[entry["top"][0]["index"]]
    assert predictor.labels[0] == "tench"


def test_every_kind_of_image_gives_the_same_prediction(photo_model, photos):
    file = photos / "val" / WNIDS[0] / f"{WNIDS[0]}_1.jpg"
    predictor = resnets.load_predictor(str(photo_model))
    pixels = np.array(Image.open(file).convert("RGB"))
    kinds = [file, str(file), file.read_bytes(), Image.open(file), pixels, torch.from_numpy(pixels).permute(2, 0, 1)]
    scores = predictor.scores(kinds)
    assert torch.equal(scores, scores[:1].expand_as(scores))
    with pytest.raises(resnets.UserError, match="image bytes: cannot decode image"):
        predictor.scores([b"not an image"])
    with pytest.raises(resnets.UserError, match="uint8 RGB"):
        predictor.scores([torch.zeros(3, 8, 8)])


def test_a_features_only_backbone_cannot_predict(tmp_path):
    trained = cifar_trained(fit=False)
    trained.model = resnets.create_model("cifar_resnet", depth=8, features_only=True)
    export_safetensors(trained, tmp_path / "b.safetensors")
    with pytest.raises(resnets.UserError, match="features_only backbone"):
        load_predictor(tmp_path / "b.safetensors")


def test_predictions_do_not_depend_on_the_batch(photo_model, photos):
    files = sorted((photos / "val").rglob("*.jpg"))
    one = load_predictor(photo_model, batch_size=1, view="10crop")
    many = load_predictor(photo_model, batch_size=64, view="10crop")
    torch.testing.assert_close(one.scores(files), many.scores(files), atol=1e-5, rtol=0)
