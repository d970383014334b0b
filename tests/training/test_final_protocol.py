"""The paper's final CIFAR-10 protocol (Sec. 4.2): train on all training images, report the test error of the final
iteration, and never choose a checkpoint by its test error."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.data import load_split
from resnets.engine.sessions import read_sessions
from resnets.evaluation.protocol import evaluate_models
from resnets.training.loop import train
from resnets.weights.files import checkpoint_file, load_trained

from ..tiny import tiny_config


def test_png_folders_are_read_losslessly_in_class_order(cifar_png):
    test = load_split(cifar_png, "test", progress=False)
    assert test.classes[:3] == ["airplane", "automobile", "bird"] and len(test.labels) == 60
    first = sorted((cifar_png / "test" / "airplane").iterdir())[0]
    assert np.array_equal(test.images[0].permute(1, 2, 0).numpy(), np.asarray(Image.open(first).convert("RGB")))


def test_validating_on_the_test_split_writes_no_best_checkpoint(cifar_png, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(cifar_png, run, val_split=0, batch_size=24, iters=6, eval_every=2, log_every=2))
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6]
    assert (run / "last.pt").is_file() and not (run / "best.pt").exists()
    assert checkpoint_file(run) == run / "last.pt"  # `evaluate RUN` tests the final weights
    result = evaluate_models([load_trained(run)], [str(run)], str(cifar_png), "test", ["full"], progress=False)
    assert result["views"]["full"]["top1_error"] == pytest.approx(float(rows[-1]["val_error"]))


def test_a_held_out_validation_split_keeps_the_best_checkpoint(cifar_png, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(cifar_png, run, val_split=20, batch_size=20, iters=4, eval_every=2, log_every=2))
    assert (run / "best.pt").is_file()


def test_every_start_of_a_run_records_its_machine_and_precision(cifar_png, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_config(cifar_png, run, val_split=0, batch_size=24, iters=2, eval_every=2, log_every=2))
    train(tiny_config(cifar_png, run, val_split=0, batch_size=24, iters=4, eval_every=2, log_every=2), resume=True)
    sessions = read_sessions(run)
    assert [s["iteration"] for s in sessions] == [0, 2] and {s["precision"] for s in sessions} == {"fp32"}
    assert "threads" in sessions[0]["device"] and sessions[0]["torch"] == torch.__version__
