"""User mistakes on the command line: one line, exit 2, nothing written, nothing a user wrote replaced."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from resnets.cli import main
from resnets.weights import load_trained

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
    save_file(tensors, str(bad), metadata=header["__metadata__"])
    match = "shape mismatches (fc.weight" if damage == "shape" else "1 missing keys (fc.bias)"
    one_line_error(capsys, ["export", "--checkpoint", str(bad), "--out", str(tmp_path / "x.safetensors")], match)
