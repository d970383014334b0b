"""`resnets train`, `evaluate` and `export` end to end on a slice of the real CIFAR-10 JPEGs."""

import json
import subprocess
import sys

import pytest
import torch

from resnets.cli import main

TINY = [
    "--model",
    "resnet20",
    "--batch-size",
    "32",
    "--iters",
    "6",
    "--eval-every",
    "3",
    "--val-split",
    "100",
    "--precision",
    "fp32",
]


@pytest.fixture(scope="module")
def run(cifar_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--data", str(cifar_small), "--out", str(out), *TINY]) == 0
    return out


def evaluate_json(capsys, *args):
    capsys.readouterr()
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_writes_the_resolved_config(run):
    config = json.loads((run / "config.json").read_text())
    assert (config["iters"], config["batch_size"], config["recipe"], config["momentum"]) == (
        6,
        32,
        "cifar10-paper",
        0.9,
    )


def test_evaluate_reports_top1_top5_and_count(run, cifar_small, capsys):
    result = evaluate_json(capsys, "--checkpoint", str(run), "--data", str(cifar_small))
    assert result["images"] == 100 and result["split"] == "val"
    assert 0 <= result["top5_error"] <= result["top1_error"] <= 100
    limited = evaluate_json(
        capsys, "--checkpoint", str(run), "--data", str(cifar_small), "--split", "train", "--limit", "40"
    )
    assert limited["images"] == 40


def test_export_safetensors_evaluates_the_same(run, cifar_small, tmp_path, capsys):
    out = tmp_path / "r20.safetensors"
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--format", "safetensors", "--out", str(out)]) == 0
    a = evaluate_json(capsys, "--checkpoint", str(run / "last.pt"), "--data", str(cifar_small))
    b = evaluate_json(capsys, "--checkpoint", str(out), "--data", str(cifar_small))
    assert (a["top1_error"], a["top5_error"]) == (b["top1_error"], b["top5_error"])
    from safetensors.torch import load_file

    assert "layer3.2.bn2.running_var" in load_file(out) and torch.is_tensor(load_file(out)["fc.weight"])


def test_resume_finished_run_is_a_no_op(run, capsys):
    before = (run / "metrics.csv").read_text()
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert (run / "metrics.csv").read_text() == before


def cli(*args):
    return subprocess.run([sys.executable, "-m", "resnets", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/nonexistent/data", "--out", "{tmp}/r"], "/nonexistent/data"),
        (["train", "--data", "{data}", "--out", "{tmp}/r", "--lr", "-1"], "--lr -1.0 must be positive"),
        (["train", "--data", "{data}", "--out", "{tmp}/r", "--recipe", "nope"], "unknown recipe 'nope'"),
        (["evaluate", "--checkpoint", "{tmp}/missing.pt", "--data", "{data}"], "missing.pt does not exist"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, cifar_small, tmp_path):
    proc = cli(*(a.format(tmp=tmp_path, data=cifar_small) for a in args))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_list_flags_parse_as_lists():
    from resnets.cli import build_parser

    args = build_parser().parse_args(["train", "--milestones", "0.3,0.6", "--scale-range", "256,480", "--out", "x"])
    assert (args.milestones, args.scale_range) == ([0.3, 0.6], [256, 480])


def test_train_without_data_downloads_cifar10_into_resnets_data(tmp_path, monkeypatch, capsys):
    import resnets.training.pipeline as pipeline
    from resnets.core.errors import UserError

    calls = []

    def refuse(root, progress=True):
        calls.append(root)
        raise UserError("offline")

    monkeypatch.setenv("RESNETS_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(pipeline, "download_cifar10", refuse)
    assert main(["train", "--out", str(tmp_path / "run"), *TINY]) == 2
    assert calls == [tmp_path / "data"] and "offline" in capsys.readouterr().err
    assert not (tmp_path / "run" / "config.json").exists()
