"""`resnets report`: curves, the runs table and each experiment's results, from folders written by hand."""

import json
import re

import pytest
from PIL import Image

from resnets.analysis.runs import load_run
from resnets.cli import main
from resnets.core.errors import UserError
from resnets.experiments.report import fig6_panels, write_report
from resnets.training.config import TrainConfig


def fake_run(folder, model, errors):
    """A run folder as `resnets train` leaves it: config.json and one metrics row per (train, val) error pair."""
    folder.mkdir(parents=True)
    TrainConfig(model=model, iters=2 * len(errors), val_split=100, out=str(folder)).save(folder / "config.json")
    rows = ["iteration,lr,train_loss,train_error,val_error,images_per_sec"]
    rows += [f"{2 * i},0.1,2.0,{train},{val},100" for i, (train, val) in enumerate(errors, 1)]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def experiment(tmp_path):
    """An experiment folder with one finished member, one not started, a results.md and its figure."""
    out = tmp_path / "exp"
    fake_run(out / "plain20", "plain20", [(60.0, 55.0), (40.0, 42.5)])
    (out / "experiment.json").write_text(json.dumps({"members": ["plain20", "resnet20"]}))
    (out / "results.md").write_text("# Degradation\n\n![Degradation](degradation.png)\n\n[web](https://x.org/a)\n")
    (out / "degradation.png").write_bytes(b"")
    return out


def test_report_of_a_run_and_an_experiment(experiment, tmp_path):
    run = fake_run(tmp_path / "runs" / "r20", "resnet20", [(50.0, 45.0), (30.0, 31.25)])
    report = tmp_path / "reports" / "REPORT.md"
    written = [report, tmp_path / "reports" / "REPORT-curves.png", tmp_path / "reports" / "REPORT-fig6.png"]
    assert write_report([run, experiment], report) == written
    text = report.read_text()
    assert "![training curves](REPORT-curves.png)" in text
    assert "| [r20](../runs/r20) | ResNet-20 | 4 / 4 | 0.27M | 30.00 | 31.25 | 31.25 | held-out 100 | 8.75 |" in text
    assert "| [plain20](../exp/plain20) | plain-20 | 4 / 4 | 0.27M | 40.00 | 42.50 | 42.50 | held-out 100 |  |" in text
    assert "resnet20](../exp/resnet20)" not in text  # not started: no metrics yet
    assert "\n## Degradation\n" in text and "![Degradation](../exp/degradation.png)" in text
    assert "[web](https://x.org/a)" in text
    with Image.open(tmp_path / "reports" / "REPORT-curves.png") as image:
        assert image.format == "PNG" and image.width > image.height > 300


def test_cli_and_a_folder_that_is_neither(experiment, tmp_path, capsys):
    assert main(["report", str(experiment), "--out", str(tmp_path / "r.md")]) == 0
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(UserError, match=re.escape(f"{tmp_path} is not a training run")):
        write_report([tmp_path], tmp_path / "r.md")


def test_fig6_draws_the_finished_cifar_runs_in_the_papers_three_panels(tmp_path):
    done = fake_run(tmp_path / "resnet56", "resnet56", [(50.0, 45.0), (10.0, 12.0)])
    started = fake_run(tmp_path / "plain20", "plain20", [(60.0, 55.0)])
    config = json.loads((started / "config.json").read_text())
    (started / "config.json").write_text(json.dumps({**config, "iters": 64000}))  # 2 of 64,000: not finished
    runs = [load_run(done), load_run(started)]
    panels = fig6_panels(runs)
    assert list(panels) == ["plain nets", "ResNets", "ResNet-110 and ResNet-1202"]
    assert [[run.model for run in panel] for panel in panels.values()] == [[], ["resnet56"], []]
    report = tmp_path / "r.md"
    assert tmp_path / "r-fig6.png" in write_report([done, started], report)
    assert "![Fig. 6](r-fig6.png)" in report.read_text()
    with Image.open(tmp_path / "r-fig6.png") as image:
        assert image.format == "PNG" and image.width > 3 * image.height


def test_no_fig6_for_imagenet_runs(tmp_path):
    run = fake_run(tmp_path / "r18", "resnet18", [(50.0, 45.0)])
    assert fig6_panels([load_run(run)]) is None
    assert not any(p.name.endswith("fig6.png") for p in write_report([run], tmp_path / "r.md"))
