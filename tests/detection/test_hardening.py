"""`resnets detect` against careless and hostile use (issue 27): nothing a user wrote is replaced, a resume continues
only its own run, flags and data files are checked, and what cannot be read is one line, skipped, or never hangs."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import zlib

import pytest
import torch
from PIL import Image

from resnets.cli import main
from resnets.core.checkpoints import load_checkpoint
from resnets.core.errors import UserError
from resnets.detection.data import load_detection_split
from resnets.detection.training import DetectionTrainer
from resnets.engine.lock import LOCK

from .conftest import SLICE, synthetic_image, write_voc
from .test_cli import SMALL


def detect(*args) -> int:
    return main(["detect", *map(str, args)])


def one_line_error(capsys, *parts: str) -> str:
    """The command's error: one line, holding every one of `parts`."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("resnets detect: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(part in lines[0] for part in parts), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A VOC folder and a 2-iteration run trained on it (copy it before changing it)."""
    root = tmp_path_factory.mktemp("trained")
    voc = write_voc(root / "voc")
    assert (
        detect("train", "--data", voc, "--out", root / "run", "--iters", 2, *SMALL, "--set", "test_score_threshold=0")
        == 0
    )
    return voc, root / "run"


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run, free to change."""
    return shutil.copytree(trained[1], tmp_path / "run")


@pytest.fixture
def no_hang():
    """A read that would block forever fails the test instead (SIGALRM raises in the blocked call)."""

    def hung(signum, frame):
        raise TimeoutError("blocked: a FIFO was opened as a file")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def contents(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# Item 4: outputs never replace an input, nor what a user wrote unasked.


def test_save_detections_never_replaces_the_checkpoint_or_the_data_even_with_force(trained, run, capsys):
    voc = trained[0]
    before = contents(run)
    evaluate = ["evaluate", "--checkpoint", run, "--data", voc, "--split", "val"]
    for target in (run / "last.pt", run / ".." / run.name / "last.pt"):  # by any name
        for force in ([], ["--force"]):
            assert detect(*evaluate, "--save-detections", target, *force) == 2
            one_line_error(capsys, f"--save-detections {target} is the input", "last.pt")
    assert detect(*evaluate, "--save-detections", voc / "Annotations" / "a.xml", "--force") == 2
    one_line_error(capsys, "--save-detections", "inside the input folder")
    assert contents(run) == before and (voc / "Annotations" / "a.xml").read_text().startswith("<annotation>")


@pytest.mark.parametrize("name", ["config.json", "metrics.csv"])
def test_save_detections_never_replaces_a_file_of_the_checkpoints_run_even_with_force(trained, run, capsys, name):
    before = contents(run)
    flags = ["--checkpoint", run / "last.pt", "--data", trained[0], "--split", "val", "--force"]
    assert detect("evaluate", *flags, "--save-detections", run / name) == 2
    one_line_error(capsys, "an input is never replaced")
    assert contents(run) == before


def test_save_detections_replaces_only_an_earlier_detections_file_unless_forced(trained, run, tmp_path, capsys):
    evaluate = ["evaluate", "--checkpoint", run, "--data", trained[0], "--split", "val", "--json"]
    mine = tmp_path / "mine.json"
    mine.write_text('{"my": "notes"}')
    assert detect(*evaluate, "--save-detections", mine) == 2
    one_line_error(capsys, f"--save-detections {mine} already exists", "--force")
    assert mine.read_text() == '{"my": "notes"}'
    assert detect(*evaluate, "--save-detections", mine, "--force") == 0
    first = json.loads(mine.read_text())
    assert first and all(set(d) == {"image", "label", "box", "score"} for d in first)
    assert detect(*evaluate, "--save-detections", mine) == 0  # an earlier detections file: ours to replace
    assert json.loads(mine.read_text()) == first
    assert detect(*evaluate, "--save-detections", tmp_path) == 2  # a folder
    one_line_error(capsys, "is a folder")
    assert detect("evaluate", "--detections", mine, "--data", trained[0], "--save-detections", tmp_path / "x") == 2
    one_line_error(capsys, "--save-detections saves the detections of a --checkpoint")


def test_resume_from_a_checkpoint_that_does_not_load_stops_in_one_line(trained, run, capsys):
    (run / "last.pt").write_text("[]")  # as `--save-detections RUN/last.pt` left it before
    before = contents(run)
    assert detect("train", "--data", trained[0], "--out", run, "--iters", 2, *SMALL, "--resume") == 2
    one_line_error(capsys, "--resume:", "last.pt", "restore it")
    assert contents(run) == before  # not retrained from 0
    assert detect("train", "--data", trained[0], "--out", run, "--iters", 2, *SMALL) == 2  # nor afresh, unasked
    one_line_error(capsys, "last.pt", "--force")
    assert contents(run) == before


@pytest.mark.parametrize("mine", ["metrics.csv", "last.pt", "config.json"])
def test_detect_train_refuses_a_folder_of_a_users_files_unless_forced(trained, tmp_path, capsys, mine):
    out = tmp_path / "out"
    out.mkdir()
    (out / mine).write_text("mine\n")
    args = ["train", "--data", trained[0], "--out", out, "--iters", 1, *SMALL]
    assert detect(*args) == 2
    one_line_error(capsys, str(out), "--force")
    assert contents(out) == {mine: b"mine\n"}
    assert detect(*args, "--force") == 0
    assert load_checkpoint(out / "last.pt")["iteration"] == 1


def test_drawings_get_unique_names_and_never_replace_an_input(trained, tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    synthetic_image(64, 48, [[5, 5, 30, 30]]).save(photos / "a.png")
    synthetic_image(64, 48, [[9, 9, 40, 40]], seed=1).save(photos / "more" / "a.jpg")  # the same stem
    (photos / "a-2.png").write_bytes(b"a user's file, no image")
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    predict = ["predict", "--checkpoint", trained[1], "--threshold", 0, "--draw", photos]
    assert detect(*predict, photos / "a.png", photos / "more" / "a.jpg") == 0
    assert all(p.read_bytes() == b for p, b in before.items())  # inputs and the user's file untouched
    drawn = sorted(p.name for p in photos.iterdir() if p.is_file() and p not in before)
    assert drawn == ["a-3.png", "a-4.png"]
    assert "(drawn in" in capsys.readouterr().out
    # Again: the inputs stay inputs; the earlier drawings are ours, so they are replaced, not multiplied.
    assert detect(*predict, photos / "a.png", photos / "more" / "a.jpg") == 0
    assert sorted(p.name for p in photos.iterdir() if p.is_file() and p not in before) == drawn


def test_draw_naming_a_file_or_an_uncreatable_place_is_refused_before_any_work(trained, tmp_path, capsys):
    image = trained[0] / "JPEGImages" / "a.jpg"
    afile = tmp_path / "file.png"
    afile.write_bytes(b"x")
    for draw in (afile, afile / "below"):
        # A checkpoint that does not exist: the --draw check comes first.
        assert detect("predict", "--checkpoint", tmp_path / "none", image, "--draw", draw) == 2
        one_line_error(capsys, "--draw", "is a file, not a folder")
    assert afile.read_bytes() == b"x"


# Item 5: a detection run has the classifier's guarantees.


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--backbone", "resnet34"], "--backbone resnet34 differs from resnet18"),
        (["--iters", "4"], "--iters 4 differs from 2"),
        (["--min-size", "40"], "--min-size 40 differs from 48"),
        (["--set", "rpn_post_nms_test=5"], "--set rpn_post_nms_test 5 differs from 8"),
        (["--set", "freeze_at=2"], "--set freeze_at 2 differs from 0"),  # the from-scratch default is what ran
        (["--split", "val"], "--split val differs from train"),
        (["--recipe", "detection-voc-paper"], "--split trainval differs from train"),  # a recipe's values count
    ],
)
def test_resume_with_another_setting_is_refused_naming_it(trained, run, capsys, change, named):
    before = contents(run)
    assert detect("train", "--data", trained[0], "--out", run, "--iters", 2, *SMALL, *change, "--resume") == 2
    one_line_error(capsys, named, "keep the run's")
    assert contents(run) == before


def test_resume_may_change_the_run_mechanics(trained, run, tmp_path):
    moved = shutil.copytree(trained[0], tmp_path / "moved")
    args = ["train", "--data", moved, "--out", run, "--iters", 2, *SMALL, "--resume"]
    assert detect(*args, "--device", "cpu", "--log-every", "2", "--checkpoint-every", "1", "--no-channels-last") == 0
    assert json.loads((run / "config.json").read_text())["data"] == str(moved)


@pytest.mark.parametrize("holds", ["nothing", "an empty folder", "a config.json only"])
def test_resume_with_nothing_to_resume_is_refused(trained, tmp_path, capsys, holds):
    out = tmp_path / "out"
    if holds != "nothing":
        out.mkdir()
    if holds == "a config.json only":  # a run stopped before its first checkpoint
        shutil.copy(trained[1] / "config.json", out)
    before = contents(out) if out.exists() else None
    assert detect("train", "--data", trained[0], "--out", out, "--iters", 2, *SMALL, "--resume") == 2
    one_line_error(capsys, "--resume:", "without --resume")
    assert (contents(out) if out.exists() else None) == before


def test_an_out_inside_the_data_is_refused(trained, capsys):
    out = trained[0] / "runs" / "one"
    assert detect("train", "--data", trained[0], "--out", out, "--iters", 1, *SMALL) == 2
    one_line_error(capsys, f"--out {out} is inside the input folder")
    assert not (trained[0] / "runs").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--lr", "nan"], "--lr nan is not a finite number"),
        (["--lr", "inf"], "--lr inf is not a finite number"),
        (["--lr", "-0.1"], "--lr -0.1 must be positive"),
        (["--weight-decay", "nan"], "--weight-decay nan"),
        (["--milestones", "nan"], "--milestones nan"),
        (["--milestones", "0.8,0.5"], "increasing fractions"),
        (["--images-per-batch", "0"], "--images-per-batch 0 must be a positive integer"),
        (["--set", "rpn_post_nms_test=abc"], "--set rpn_post_nms_test 'abc' has the wrong type; expected int"),
        (["--set", "rpn_post_nms_test=1.5"], "--set rpn_post_nms_test 1.5 has the wrong type"),
        (["--set", "rpn_post_nms_test=0"], "rpn_post_nms_test=0 must be a positive integer"),
        (["--set", "frozen_bn=1"], "--set frozen_bn 1 has the wrong type; expected bool"),
        (["--set", 'anchor_sizes=[16, "x"]'], "--set anchor_sizes 'x' has the wrong type"),
        (["--set", "anchor_sizes=[]"], "anchor_sizes=[] must be finite numbers above 0"),
        (["--set", "test_score_threshold=NaN"], "--set test_score_threshold nan is not a finite number"),
        (["--set", "test_score_threshold=2"], "test_score_threshold=2.0 must be in [0, 1]"),
        (["--set", "rpn_min_size=-1"], "rpn_min_size=-1.0 must be a finite number, at least 0"),
        (["--set", "backbone=resnet50"], "--set backbone: not one of the model settings; it comes from --backbone"),
        (["--set", "=3"], "is not FIELD=VALUE"),
    ],
)
def test_bad_flags_and_settings_are_refused_before_anything_is_written(trained, tmp_path, capsys, flags, named):
    out = tmp_path / "out"
    assert detect("train", "--data", trained[0], "--out", out, "--iters", 1, *SMALL, *flags) == 2
    one_line_error(capsys, named)
    assert not out.exists()


def test_weights_that_became_non_finite_are_never_saved(trained, tmp_path, monkeypatch, capsys):
    step = DetectionTrainer.step

    def poisoned(self, iteration):  # the update of the last step (its loss still finite) breaks one weight
        losses = step(self, iteration)
        if iteration == 3:
            with torch.no_grad():
                weight = next(p for p in self.model.parameters() if p.requires_grad)
                weight[(0,) * weight.dim()] = math.nan
        return losses

    monkeypatch.setattr(DetectionTrainer, "step", poisoned)
    out = tmp_path / "out"
    assert detect("train", "--data", trained[0], "--out", out, "--iters", 4, *SMALL) == 2
    one_line_error(capsys, "1 weights or optimizer values became NaN or infinite by iteration 4; the last good")
    kept = load_checkpoint(out / "last.pt")
    assert kept["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())
    assert not (out / LOCK).exists()


def test_a_second_trainer_on_the_same_out_is_refused(trained, run, capsys):
    (run / LOCK).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # a live trainer holds it
    before = contents(run)
    assert detect("train", "--data", trained[0], "--out", run, "--iters", 2, *SMALL, "--resume") == 2
    one_line_error(capsys, f"(pid {os.getpid()}) is training into {run}")
    assert contents(run) == before


# Item 6: what is no regular file is skipped (or refused by name), never read.


def test_a_fifo_named_like_an_annotation_is_skipped_or_refused(labelimg, voc, no_hang):
    flat = labelimg.rename(labelimg.with_name("flat [1]"))  # a name that is a glob pattern, read as a name
    os.mkfifo(flat / "e.xml")
    assert [a.image_id for a in load_detection_split(flat, "train").annotations] == ["a", "b", "c", "d"]
    os.remove(voc / "Annotations" / "c.xml")
    os.mkfifo(voc / "Annotations" / "c.xml")
    with pytest.raises(UserError, match=r"annotation .*c.xml is a FIFO \(named pipe\); .*--skip-bad-images"):
        load_detection_split(voc, "train")
    assert load_detection_split(voc, "train", skip_bad_images=True).summary() == "skipped 1 images"


def test_a_fifo_as_a_coco_file_or_a_split_list_is_refused_by_name(coco, voc, no_hang):
    for path in (coco / "annotations" / "instances_val.json", voc / "ImageSets" / "Main" / "val.txt"):
        path.unlink()
        os.mkfifo(path)
        with pytest.raises(UserError, match=rf"{path.name} is a FIFO \(named pipe\)"):
            load_detection_split(path.parents[1] if path.suffix == ".json" else voc, "val")


def test_detect_predict_skips_a_fifo_in_a_folder(trained, tmp_path, capsys, no_hang):
    photos = tmp_path / "photos"
    photos.mkdir()
    synthetic_image(64, 48, [[5, 5, 30, 30]]).save(photos / "a.png")
    os.mkfifo(photos / "b.png")
    assert detect("predict", "--checkpoint", trained[1], photos, "--json") == 0
    assert {d["image"] for d in json.loads(capsys.readouterr().out)} <= {str(photos / "a.png")}


def test_a_fifo_as_detections_file_is_refused(trained, tmp_path, capsys, no_hang):
    os.mkfifo(tmp_path / "d.json")
    assert detect("evaluate", "--detections", tmp_path / "d.json", "--data", trained[0]) == 2
    one_line_error(capsys, "d.json: it is a FIFO")


def test_detect_predict_reports_and_skips_an_image_that_does_not_decode(trained, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    synthetic_image(64, 48, [[5, 5, 30, 30]]).save(photos / "a.png")
    (photos / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n but no image")
    assert detect("predict", "--checkpoint", trained[1], photos, "--threshold", 0) == 0
    captured = capsys.readouterr()
    assert f"{photos / 'a.png'}:" in captured.out and str(photos / "b.png") not in captured.out
    assert "skipped 1 bad images" in captured.err and str(photos / "b.png") in captured.err
    assert detect("predict", "--checkpoint", trained[1], photos, "--strict") == 2
    one_line_error(capsys, "b.png", "drop --strict")
    (photos / "a.png").unlink()  # nothing left that decodes: a failure, not an empty success
    assert detect("predict", "--checkpoint", trained[1], photos, "--json") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "none of the 1 images could be decoded" in captured.err


# Item 9: a box with a coordinate that is no finite number is a bad box, in every layout.


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_a_nan_coordinate_in_a_voc_xml_is_a_bad_box(tmp_path, value):
    root = shutil.copytree(SLICE, tmp_path / "bccd")
    xml = root / "Annotations" / "BloodImage_00148.xml"
    xml.write_text(re.sub(r"<xmin>\d+</xmin>", f"<xmin>{value}</xmin>", xml.read_text(), count=1))
    with pytest.raises(UserError, match=r"BloodImage_00148.xml: box \[.*\] has a coordinate that is not a finite"):
        load_detection_split(root, "val")
    data = load_detection_split(root, "val", skip_bad_images=True)
    assert data.summary() == "skipped 1 boxes" and len(data.annotations) == 2


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_nan_coordinate_in_a_coco_json_is_a_bad_box(coco, value):
    path = coco / "annotations" / "instances_val.json"
    payload = json.loads(path.read_text())
    payload["annotations"][0]["bbox"][2] = value
    path.write_text(json.dumps(payload))  # NaN / Infinity, as Python writes them
    with pytest.raises(UserError, match=r"instances_val.json: box .* of image 100 has a coordinate that is not a"):
        load_detection_split(coco, "val")
    assert load_detection_split(coco, "val", skip_bad_images=True, allow_empty=True).summary() == "skipped 1 boxes"


# Item 10: an image that does not decode is skipped and counted by evaluate --skip-bad-images.


def test_evaluate_skips_an_image_whose_data_is_truncated(trained, tmp_path, capsys):
    voc = shutil.copytree(trained[0], tmp_path / "voc")
    jpeg = voc / "JPEGImages" / "b.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])  # the header reads, the pixels do not
    assert Image.open(jpeg).size == (80, 72)
    evaluate = ["evaluate", "--checkpoint", trained[1], "--data", voc, "--split", "val", "--json"]
    assert detect(*evaluate) == 2
    one_line_error(capsys, "b.jpg", "--skip-bad-images")
    assert detect(*evaluate, "--skip-bad-images") == 0
    captured = capsys.readouterr()
    assert "skipped 1 images" in captured.err and json.loads(captured.out)["images"] == 3


# Item 11: a detections file's every entry is checked.


def header_only_png(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` and holds no pixels: Pillow reads its size, and refuses it past twice its
    decompression-bomb limit, before any data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("skip", [False, True])
def test_a_decompression_bomb_in_a_detection_set_is_refused_or_skipped_by_name(voc, skip):
    bomb = voc / "JPEGImages" / "b.jpg"
    bomb.write_bytes(header_only_png(20_000, 10_000))
    if skip:
        assert [a.image_id for a in load_detection_split(voc, "val", skip_bad_images=True).annotations] == list("acd")
        return
    with pytest.raises(UserError, match=f"image {bomb} is too big to decode safely"):
        load_detection_split(voc, "val")


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"score": "high"}, "has score 'high', which must be a finite number"),
        ({"score": math.nan}, "has score nan"),
        ({"score": math.inf}, "has score inf"),
        ({"score": True}, "has score True"),
        ({"box": [1, math.nan, 5, 5]}, "must be four finite numbers"),
        ({"box": [1, 2, 3]}, "must be four finite numbers"),
        ({"box": 7}, "has box 7"),
        ({"box": [30, 2, 10, 20]}, "inverted"),
        ({"label": 1}, "label 1"),
        ({"image": None}, "has image None"),
    ],
)
def test_a_bad_detection_is_refused_in_one_line(voc, tmp_path, capsys, entry, named):
    good = {"image": "a", "label": "cat", "box": [10, 8, 50, 40], "score": 0.9}
    path = tmp_path / "d.json"
    path.write_text(json.dumps([good, {**good, **entry}]))
    assert detect("evaluate", "--detections", path, "--data", voc, "--split", "val") == 2
    one_line_error(capsys, f"{path}: entry 1", named)


# Item 12: a COCO file of the wrong structure is one line naming the file and the entry.


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\] has bbox \[1, 2, 3\]"),
        (lambda c: c["annotations"][0].update(bbox=["1", 2, 3, 4]), r"annotations\[0\] has bbox"),
        (lambda c: c["annotations"][1].pop("bbox"), r"annotations\[1\] has no 'bbox'"),
        (lambda c: c["annotations"][0].update(image_id="100"), r"annotations\[0\] has image_id '100'"),
        (lambda c: c["images"][2].update(id="102"), r"images\[2\] has id '102', which must be an integer"),
        (lambda c: c["images"][1].pop("file_name"), r"images\[1\] has no 'file_name'"),
        (lambda c: c["images"][1].update(file_name=None), r"images\[1\] has file_name None"),
        (lambda c: c["images"][3].update(id=100), r"images\[3\] repeats id 100"),
        (lambda c: c.pop("images"), r"has no 'images'"),
        (lambda c: c.update(images={"a": 1}), r"has no list of 'images'"),
        (lambda c: c.pop("categories"), r"has no 'categories'"),
        (lambda c: c["categories"].append("dog"), r"categories\[2\] is not an object"),
        (lambda c: c["categories"][0].update(id=1), r"categories\[1\] repeats id 1"),
        (lambda c: c["categories"][1].pop("name"), r"categories\[1\] has no 'name'"),
    ],
)
def test_a_coco_file_of_the_wrong_structure_is_one_line(coco, change, named):
    path = coco / "annotations" / "instances_val.json"
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))
    with pytest.raises(UserError, match=named) as e:
        load_detection_split(coco, "val")
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_a_coco_file_that_is_no_object_is_one_line(coco):
    (coco / "annotations" / "instances_val.json").write_text("[]")
    with pytest.raises(UserError, match="is not a COCO instances file"):
        load_detection_split(coco, "val")


DEEP = "[" * 100_000 + "]" * 100_000  # past the parser's recursion limit
HUGE = "1" + "0" * 400  # an integer that float() cannot take


@pytest.mark.parametrize("text", [DEEP, lambda good: good.replace('"score": 0.9', f'"score": {HUGE}')])
def test_a_detections_file_too_deep_or_with_a_huge_number_is_one_line(voc, tmp_path, capsys, text):
    good = json.dumps([{"image": "a", "label": "cat", "box": [10, 8, 50, 40], "score": 0.9}])
    path = tmp_path / "d.json"
    path.write_text(text(good) if callable(text) else text)
    assert detect("evaluate", "--detections", path, "--data", voc, "--split", "val") == 2
    one_line_error(capsys, f"cannot read detections file {path}")


@pytest.mark.parametrize("text", [DEEP, lambda good: good.replace('"bbox": [9', f'"bbox": [{HUGE}', 1)])
def test_a_coco_file_too_deep_or_with_a_huge_number_is_one_line(coco, text):
    path = coco / "annotations" / "instances_val.json"
    path.write_text(text(path.read_text()) if callable(text) else text)
    with pytest.raises(UserError, match="is not a COCO instances file") as e:
        load_detection_split(coco, "val")
    assert "\n" not in str(e.value)


# Item 14: flags out of range.


@pytest.mark.parametrize(
    ("threshold", "named"),
    [("nan", "--threshold nan is not a finite number"), ("-1", "--threshold -1.0 must be a number from 0 to 1"),
     ("2", "--threshold 2.0 must be a number from 0 to 1")],
)  # fmt: skip
def test_predict_refuses_a_threshold_that_is_no_score(trained, capsys, threshold, named):
    image = trained[0] / "JPEGImages" / "a.jpg"
    assert detect("predict", "--checkpoint", trained[1], image, "--threshold", threshold) == 2
    one_line_error(capsys, named)


@pytest.mark.parametrize("limit", ["0", "-2"])
def test_evaluate_refuses_a_limit_that_is_no_count(trained, capsys, limit):
    assert detect("evaluate", "--checkpoint", trained[1], "--data", trained[0], "--limit", limit) == 2
    one_line_error(capsys, f"--limit {limit} must be a number at least 1")


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_a_data_path_that_is_no_folder_says_what_it_is(tmp_path, kind):
    data = tmp_path / "voc.tar"
    data.write_text("") if kind == "file" else os.mkfifo(data)
    with pytest.raises(UserError, match=f"data folder {data} is a {'file' if kind == 'file' else 'FIFO'}"):
        load_detection_split(data, "train")
