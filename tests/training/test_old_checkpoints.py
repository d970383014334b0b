"""Runs started by earlier code resume under today's: the committed reproductions and users' week-long runs depend
on it (issue 29). The fixture was written by the code before the engine refactor (tests/fixtures/README.md)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import torch

from resnets.cli import main
from resnets.core.checkpoints import load_checkpoint
from resnets.engine.run import read_config
from resnets.training.config import resolve_config
from resnets.training.loop import train

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "earlier-runs" / "resnet8-2026-12-06"


def test_a_run_interrupted_under_earlier_code_resumes_and_ends_as_an_uninterrupted_run(cifar_png, tmp_path, capsys):
    run = shutil.copytree(OLD_RUN, tmp_path / "old")
    assert load_checkpoint(run / "last.pt")["iteration"] == 4
    assert main(["train", "--out", str(run), "--resume", "--data", str(cifar_png), "--device", "cpu"]) == 0
    assert f"resuming {run / 'last.pt'} at iteration 4" in capsys.readouterr().out
    resumed = load_checkpoint(run / "last.pt")
    with open(run / "metrics.csv") as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [2, 4, 6, 8]
    assert len((run / "sessions.jsonl").read_text().splitlines()) == 2
    # The same run without the interruption, all under today's code: the same weights (up to the CPU's rounding:
    # the fixture's first four steps ran on another machine's kernels).
    saved = read_config(OLD_RUN / "config.json", "")
    whole = resolve_config({**saved, "data": str(cifar_png), "out": str(tmp_path / "whole")}, saved)
    train(whole)
    expected = load_checkpoint(tmp_path / "whole" / "last.pt")
    assert resumed["iteration"] == expected["iteration"] == 8
    for key, value in expected["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
