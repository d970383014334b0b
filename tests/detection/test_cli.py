"""`resnets detect train|evaluate|predict` end to end with a tiny ResNet-18 detector on synthetic images."""

from __future__ import annotations

import csv
import json
import math
import os
import signal

import pytest
import torch

from resnets.cli import main
from resnets.core.checkpoints import load_checkpoint
from resnets.detection.config import DetectionTrainConfig
from resnets.detection.training import DetectionTrainer
from resnets.engine.lock import LOCK
from resnets.training.config import recipe_values

from .conftest import SCENES, voc_xml

# A few RoIs, small anchors and 48-64 px images: an iteration takes about a second on one core.
SMALL = [
    "--backbone", "resnet18", "--min-size", "48", "--max-size", "64", "--precision", "fp32", "--lr", "0.01",
    "--set", "anchor_sizes=[16,32]", "--set", "rpn_pre_nms_train=200", "--set", "rpn_post_nms_train=32",
    "--set", "rpn_pre_nms_test=100", "--set", "rpn_post_nms_test=8", "--set", "roi_batch_size=8",
    "--set", "rpn_batch_size=16", "--set", "rpn_min_size=0", "--log-every", "1", "--checkpoint-every", "2",
]  # fmt: skip


def train(voc, run, iters, *extra):
    return main(["detect", "train", "--data", str(voc), "--out", str(run), "--iters", str(iters), *SMALL, *extra])


def test_sigterm_saves_and_the_resumed_run_equals_an_uninterrupted_one(voc, tmp_path, capsys, monkeypatch):
    assert train(voc, tmp_path / "whole", 4) == 0
    step = DetectionTrainer.step

    def signalled(self, iteration):
        if iteration == 0:  # iteration 1 is no checkpoint (every 2): the signal's own save writes it
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, iteration)

    parts = tmp_path / "parts"
    with monkeypatch.context() as m:
        m.setattr(DetectionTrainer, "step", signalled)
        assert train(voc, parts, 4) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.endswith(
        f"SIGTERM at iteration 1: saved {parts / 'last.pt'}; continue with: resnets detect train --out {parts} --resume"
    )
    assert load_checkpoint(parts / "last.pt")["iteration"] == 1 and not (parts / LOCK).exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone with the run
    assert train(voc, parts, 4, "--resume") == 0
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    parts = torch.load(parts / "last.pt", weights_only=True)
    assert whole["iteration"] == parts["iteration"] == 4
    for key, value in whole["model"].items():
        torch.testing.assert_close(parts["model"][key], value, rtol=0, atol=0, msg=key)
    with open(tmp_path / "parts" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4] and all(float(r["loss"]) > 0 for r in rows)
    assert train(voc, tmp_path / "whole", 6) == 2  # not overwritten without --resume
    assert "already exists; pass --resume" in capsys.readouterr().err


def test_evaluate_and_predict(voc, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(voc, run, 1, "--set", "test_score_threshold=0") == 0  # one step: scores still near chance
    capsys.readouterr()
    saved = tmp_path / "d.json"
    args = ["detect", "evaluate", "--checkpoint", str(run), "--data", str(voc), "--split", "val", "--json"]
    assert main([*args, "--save-detections", str(saved)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"map_50_voc07", "map_50", "map", "per_class", "images"} and result["images"] == 4
    detections = json.loads(saved.read_text())
    assert detections and set(detections[0]) == {"image", "label", "box", "score"}
    # Scoring the saved file gives the same numbers as scoring the checkpoint.
    assert main(["detect", "evaluate", "--detections", str(saved), "--data", str(voc), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == result
    assert main([*args, "--precision", "bf16"]) == 0  # the convolutions in bf16: the same images scored
    assert json.loads(capsys.readouterr().out)["images"] == 4

    image = voc / "JPEGImages" / "a.jpg"
    draw = tmp_path / "drawn"
    assert (
        main(
            [
                "detect",
                "predict",
                "--checkpoint",
                str(run),
                str(image),
                "--threshold",
                "0",
                "--json",
                "--draw",
                str(draw),
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert found and all(d["image"] == str(image) and d["label"] in ("cat", "dog") for d in found)
    assert (draw / "a.png").is_file()


def test_user_errors_are_one_line(voc, tmp_path, capsys):
    (voc / "Annotations" / "c.xml").write_text((voc / "Annotations" / "c.xml").read_text().replace("dog", "cow", 1))
    assert main(["detect", "evaluate", "--detections", str(tmp_path / "none.json"), "--data", str(voc)]) == 2
    assert "cannot read detections file" in capsys.readouterr().err
    assert train(voc, tmp_path / "r", 1, "--set", "no_such_setting=1") == 2
    assert "model settings" in capsys.readouterr().err
    assert main(["detect", "evaluate", "--checkpoint", str(tmp_path), "--data", str(voc)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no last.pt" in err


def test_paper_recipe_is_data():
    config = DetectionTrainConfig.from_values(recipe_values("detection-voc-paper"), "recipe")
    assert (config.backbone, config.min_size, config.max_size, config.pooler) == ("resnet101", 600, 1000, "roi_pool")
    assert config.detector(20).rpn_post_nms_test == 300
    with pytest.raises(Exception, match="unknown key"):
        DetectionTrainConfig.from_values({"bogus": 1}, "recipe")


def test_evaluate_skips_bad_boxes_when_asked_as_its_error_advises(voc, tmp_path, capsys):
    name, width, height, objects = SCENES[0]
    zero_area = ("dog", [9, 9, 9, 9], 0)  # as BCCD's val split has one
    (voc / "Annotations" / f"{name}.xml").write_text(voc_xml(f"{name}.jpg", width, height, [*objects, zero_area]))
    (tmp_path / "none.json").write_text("[]")
    args = ["detect", "evaluate", "--detections", str(tmp_path / "none.json"), "--data", str(voc), "--split", "val"]
    assert main(args) == 2
    assert "has zero area" in capsys.readouterr().err
    assert main([*args, "--skip-bad-images", "--json"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 boxes" in captured.err and json.loads(captured.out)["images"] == 4


def test_detect_train_runs_on_the_engine_sessions_a_save_timer_and_the_fp16_retry(voc, tmp_path, monkeypatch):
    from resnets.engine import trainer as engine

    saved, runs = [], []
    save = engine.save_checkpoint
    monkeypatch.setattr(
        engine, "save_checkpoint", lambda path, state: (saved.append(state["iteration"]), save(path, state))
    )
    use_optimizer = engine.Engine.use_optimizer

    def fp16_scaler_on_the_cpu(self, *args):  # the fp16 path's grad scaler, with the third gradient overflowing
        use_optimizer(self, *args)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        calls = []
        weight = next(p for p in self.model.parameters() if p.requires_grad)
        weight.register_hook(lambda g: (calls.append(1), g * math.inf if len(calls) == 3 else g)[1])
        runs.append(self)

    monkeypatch.setattr(engine.Engine, "use_optimizer", fp16_scaler_on_the_cpu)
    run = tmp_path / "run"
    assert train(voc, run, 3, "--checkpoint-every", "100", "--checkpoint-minutes", "1e-9") == 0
    assert saved == [1, 2, 3]  # the clock is due after every iteration, the every-100 rule never
    assert runs[0].skipped_steps == 1  # the overflowing step was skipped and repeated: still 3 steps taken
    with open(run / "metrics.csv") as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [1, 2, 3]
    (session,) = [json.loads(line) for line in (run / "sessions.jsonl").read_text().splitlines()]
    assert session["iteration"] == 0 and session["precision"] == "fp32"
