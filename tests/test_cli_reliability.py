"""User mistakes on the command line: one line, exit 2, nothing written, nothing a user wrote replaced."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from resnets.cli import main
from resnets.weights.files import load_trained

TINY = ["--batch-size", "20", "--iters", "2", "--eval-every", "2", "--val-split", "20", "--precision", "fp32"]


@pytest.fixture(scope="module")
def run(cifar_png, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--data", str(cifar_png), "--out", str(out), *TINY]) == 0
    return out


def one_line_error(capsys, argv: list[str], match: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    return err


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--lr", "nan"], "--lr nan is not a finite number"),
        (["--momentum", "nan"], "--momentum nan is not a finite number"),
        (["--weight-decay", "inf"], "--weight-decay inf is not a finite number"),
        (["--warmup-lr", "nan"], "--warmup-lr nan is not a finite number"),
        (["--model", "resnet21"], "--model resnet21 is not a model; choose one of"),
        (["--model", "cifar_resnet"], "--model cifar_resnet needs --depth N"),
        (["--data", ""], "--data is empty"),
        (["--resume"], "holds no run (no config.json); start it without --resume"),
    ],
)
def test_train_mistakes_are_one_line_and_leave_nothing(cifar_png, tmp_path, capsys, flags, match):
    out = tmp_path / "run"
    one_line_error(capsys, ["train", "--data", str(cifar_png), "--out", str(out), *TINY, *flags], match)
    assert not out.exists()


def test_train_out_that_is_a_file_is_one_line(cifar_png, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("mine\n")
    one_line_error(capsys, ["train", "--data", str(cifar_png), "--out", str(out), *TINY], "is a file, not a folder")
    assert out.read_text() == "mine\n"


def test_resume_with_another_model_changes_nothing(run, cifar_png, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    argv = ["train", "--data", str(cifar_png), "--out", str(run), "--resume", "--model", "plain20", "--iters", "4"]
    one_line_error(capsys, argv, "--model plain20 differs from resnet20")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_export_never_replaces_a_checkpoint_or_a_file_unasked(run, tmp_path, capsys):
    last = (run / "last.pt").read_bytes()
    one_line_error(capsys, ["export", "--checkpoint", str(run), "--out", str(run / "last.pt")], "already exists")
    assert (run / "last.pt").read_bytes() == last
    one_line_error(capsys, ["export", "--checkpoint", str(run), "--out", str(tmp_path)], "is a folder")
    mine = tmp_path / "w.safetensors"
    mine.write_text("mine")
    one_line_error(capsys, ["export", "--checkpoint", str(run), "--out", str(mine)], "pass --force to replace it")
    assert main(["export", "--checkpoint", str(run), "--out", str(mine), "--force"]) == 0
    assert load_trained(mine).name == "resnet20"


def test_report_never_replaces_the_metrics(run, capsys):
    metrics = (run / "metrics.csv").read_bytes()
    one_line_error(capsys, ["report", str(run), "--out", str(run / "metrics.csv")], "already exists")
    assert (run / "metrics.csv").read_bytes() == metrics
    assert main(["report", str(run), "--out", str(run / "report.md")]) == 0
    assert main(["report", str(run), "--out", str(run / "report.md")]) == 0  # an earlier report may be replaced


@pytest.mark.parametrize("damage", ["shape", "missing"])
def test_a_damaged_export_is_one_line(run, tmp_path, capsys, damage):
    good = tmp_path / "good.safetensors"
    assert main(["export", "--checkpoint", str(run), "--out", str(good)]) == 0
    tensors = load_file(str(good))
    with open(good, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    if damage == "shape":
        tensors["fc.weight"] = torch.zeros(3, 64)
    else:
        del tensors["fc.bias"]
    bad = tmp_path / "bad.safetensors"
    # without the checksum (as exports before it), which would catch the change before the shapes are compared
    save_file(tensors, str(bad), metadata={k: v for k, v in header["__metadata__"].items() if k != "checksum"})
    match = "shape mismatches (fc.weight" if damage == "shape" else "1 missing keys (fc.bias)"
    one_line_error(capsys, ["export", "--checkpoint", str(bad), "--out", str(tmp_path / "x.safetensors")], match)


def error_after_progress(capsys, argv: list[str], match: str) -> str:
    """Like one_line_error, for commands that draw progress bars on stderr before the error."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    bar = re.compile(r"\d+%\|.*\]\s*$")  # a tqdm progress line
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not bar.search(line)]
    assert len(lines) == 1 and lines[0].startswith(f"resnets {argv[0]}: error: ") and match in lines[0], err
    return lines[0]


def copy_of(cifar_png, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cifar_png, data)
    return data


def test_evaluate_refuses_a_held_out_split_rebuilt_from_other_data(run, cifar_png, tmp_path, capsys):
    other = copy_of(cifar_png, tmp_path)
    next((other / "train" / "cat").iterdir()).unlink()  # 119 images: another 20 would be held out
    match = f"--data {other} is not the data this model was trained on: its train split has 119 images, the run's had"
    error_after_progress(capsys, ["evaluate", "--checkpoint", str(run), "--data", str(other)], match)
    export = tmp_path / "w.safetensors"
    assert main(["export", "--checkpoint", str(run), "--out", str(export)]) == 0  # the export keeps the count
    argv = ["evaluate", "--checkpoint", str(export), "--data", str(other), "--split", "train"]
    error_after_progress(capsys, argv, match)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(cifar_png)]) == 0
    assert main(["evaluate", "--checkpoint", str(export), "--data", str(other), "--split", "test"]) == 0  # not rebuilt


def test_photo_views_on_cifar_images_warn_that_they_are_upsampled(run, cifar_png, capsys):
    argv = ["evaluate", "--checkpoint", str(run), "--data", str(cifar_png), "--limit", "4", "--split", "test"]
    capsys.readouterr()
    assert main([*argv, "--views", "full,center", "--resize", "40", "--crop", "36"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "32-pixel images are upsampled for the center (40 px) view;" in warnings[0]
    assert main([*argv, "--views", "full"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_only_commands_that_accept_it_advise_skip_bad_images(run, cifar_png, tmp_path, capsys):
    data = copy_of(cifar_png, tmp_path)
    bad = data / "train" / "cat" / "bad.png"
    bad.write_bytes(next((data / "train" / "dog").iterdir()).read_bytes()[:100])  # a truncated PNG
    err = error_after_progress(capsys, ["evaluate", "--checkpoint", str(run), "--data", str(data)], f"{bad}")
    assert "; replace or remove it" in err and "--skip-bad-images" not in err  # evaluate has no such flag
    err = error_after_progress(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "r"), *TINY], f"{bad}")
    assert "or pass --skip-bad-images" in err
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *TINY, "--skip-bad-images"]) == 0


def test_analyze_responses_of_an_imagenet_run_is_one_line(cifar_png, tmp_path, capsys):
    photos = ["--augmentation", "imagenet", "--scale-range", "32,40", "--crop-size", "32", "--test-resize", "32"]
    imagenet_run = tmp_path / "imagenet-run"
    assert main(["train", "--data", str(cifar_png), "--out", str(imagenet_run), *TINY, *photos, "--workers", "0"]) == 0
    out = tmp_path / "responses"
    argv = ["analyze", "responses", "--checkpoint", str(imagenet_run), "--data", str(cifar_png), "--out", str(out)]
    error_after_progress(capsys, argv, "was not trained with CIFAR augmentation (imagenet); Fig. 7's layer responses")
    assert not out.exists()


def refusing_folder(tmp_path):
    """An existing folder that takes no new file: read-only for a user; /proc for root, whom modes do not stop."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o555)
        return folder
    if not Path("/proc/self").is_dir():
        pytest.skip("needs a folder that refuses root's writes (/proc)")
    return Path("/proc")


@pytest.mark.parametrize("place", ["under a file", "refusing folder"])
@pytest.mark.parametrize("command", ["train", "report", "export", "analyze", "predict"])
def test_an_unwritable_out_is_one_line_before_any_work(run, cifar_png, tmp_path, capsys, place, command):
    if place == "under a file":
        (tmp_path / "notes.txt").write_text("mine\n")
        folder = tmp_path / "notes.txt" / "sub"
    else:
        folder = refusing_folder(tmp_path)
    argv = {
        "train": ["train", "--data", str(cifar_png), "--out", str(folder / "run"), *TINY],
        "report": ["report", str(run), "--out", str(folder / "report.md")],
        "export": ["export", "--checkpoint", str(run), "--out", str(folder / "w.safetensors")],
        "analyze": ["analyze", "responses", "--checkpoint", str(run), "--data", str(cifar_png), "--out", str(folder)],
        "predict": ["predict", "--checkpoint", str(run), str(cifar_png / "test"), "--out", str(folder / "p.csv")],
    }[command]
    error_after_progress(capsys, argv, "--out")
    if place == "under a file":
        assert (tmp_path / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("given", ["folder", "file", "link"])
def test_export_never_replaces_its_input_even_with_force(run, tmp_path, capsys, given):
    checkpoint = run / "best.pt" if (run / "best.pt").exists() else run / "last.pt"
    source = {"folder": run, "file": checkpoint, "link": tmp_path / "link.pt"}[given]
    if given == "link":
        source.symlink_to(checkpoint)
    out = run / ".." / run.name / checkpoint.name  # the same file by another spelling
    before = checkpoint.read_bytes()
    for fmt in ("safetensors", "onnx"):
        argv = ["export", "--checkpoint", str(source), "--out", str(out), "--force", "--format", fmt]
        one_line_error(capsys, argv, "is the input")
    assert checkpoint.read_bytes() == before


def test_report_never_replaces_its_input_even_with_force(run, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    link = tmp_path / "metrics-link.csv"
    link.symlink_to(run / "metrics.csv")
    for out in (run / "metrics.csv", run / "config.json", link):
        one_line_error(capsys, ["report", str(run), "--out", str(out), "--force"], "is the input")
    (tmp_path / "r-curves.png").symlink_to(run / "metrics.csv")  # where the curves of r.md would go
    one_line_error(capsys, ["report", str(run), "--out", str(tmp_path / "r.md")], "is the input")
    assert not (tmp_path / "r.md").exists()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
