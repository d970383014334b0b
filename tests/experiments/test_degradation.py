"""`resnets experiment degradation` at depth 20: both nets trained, the figure, the table, and resuming."""

import json
import shutil
from types import SimpleNamespace

import pytest
from PIL import Image

from resnets.cli import main
from resnets.core.checkpoints import load_checkpoint
from resnets.core.errors import UserError
from resnets.engine.metrics import read_metrics
from resnets.experiments import degradation, runner
from resnets.experiments.report import collect
from resnets.training.loop import Trainer

from .conftest import TINY, TINY_FLAGS


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def experiment(cifar_small, tmp_path_factory, private_cache):
    """A depth-20 degradation experiment, stopped after 3 steps of its second net, then run again."""
    out = tmp_path_factory.mktemp("degradation")
    with pytest.MonkeyPatch.context() as m:
        original, steps = Trainer.step, {"n": 0}

        def step(self, *args):
            steps["n"] += 1
            if steps["n"] > TINY["iters"] + 3:
                raise Interrupt
            return original(self, *args)

        m.setattr(Trainer, "step", step)
        with pytest.raises(Interrupt):
            degradation("cifar", [20], str(cifar_small), out, **TINY)
    stopped_at = {name: load_checkpoint(out / name / "last.pt")["iteration"] for name in ("plain20", "resnet20")}
    plain_mtime = (out / "plain20" / "last.pt").stat().st_mtime_ns

    calls = []
    with pytest.MonkeyPatch.context() as m:
        train = runner.train
        m.setattr(
            runner,
            "train",
            lambda config, resume, **kw: calls.append((config.model, resume)) or train(config, resume, **kw),
        )
        results = degradation("cifar", [20], str(cifar_small), out, **TINY)
    return SimpleNamespace(out=out, results=results, stopped_at=stopped_at, calls=calls, plain_mtime=plain_mtime)


def test_finished_member_is_skipped_and_interrupted_one_resumes(experiment):
    assert experiment.stopped_at == {"plain20": 4, "resnet20": 2}
    assert experiment.calls == [("resnet20", True)]
    assert (experiment.out / "plain20" / "last.pt").stat().st_mtime_ns == experiment.plain_mtime
    assert load_checkpoint(experiment.out / "resnet20" / "last.pt")["iteration"] == 4
    assert [row["iteration"] for row in read_metrics(experiment.out / "resnet20" / "metrics.csv")] == [2, 4]


def test_figure_is_a_two_panel_png(experiment):
    with Image.open(experiment.out / "degradation.png") as image:
        assert image.format == "PNG" and image.width > 1.5 * image.height > 600


def test_table_has_both_nets_next_to_the_paper(experiment):
    text = experiment.results.read_text()
    assert experiment.results == experiment.out / "results.md"
    assert "![Degradation (Fig. 6): plain and residual nets on CIFAR-10](degradation.png)" in text
    assert "| model | training error (%) | validation error (held-out 100) (%) | paper (%) |" in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith(("| plain-20", "| ResNet-20"))]
    assert [r[0] for r in rows] == ["| plain-20", "| ResNet-20"]
    assert rows[0][-1] == " |" and rows[1][-1] == "8.75 |"  # the paper gives plain-20 as a curve only


def test_settings_are_recorded(experiment):
    settings = json.loads((experiment.out / "experiment.json").read_text())
    assert settings["members"] == ["plain20", "resnet20"]
    recorded = [settings[k] for k in ("recipe", "iters", "seed", "batch_size", "val_split")]
    assert recorded == ["cifar10-paper", 4, 0, 32, 100]


def test_other_settings_are_refused_naming_the_folder(experiment, cifar_small):
    message = r"--iters 5 differs from 4, with which the run in .*plain20 was trained; keep the run's --iters 4"
    with pytest.raises(UserError, match=message):
        degradation("cifar", [20], str(cifar_small), experiment.out, **{**TINY, "iters": 5})


def test_cli_reruns_a_finished_experiment_without_training(experiment, cifar_small, capsys):
    args = ["experiment", "degradation", "--depths", "20", "--data", str(cifar_small), "--out", str(experiment.out)]
    assert main([*args, *TINY_FLAGS]) == 0
    assert capsys.readouterr().out.count("skipped") == 2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--family", "imagenet", "--depths", "20"], "imagenet has a plain and a residual net at depths 18,34,50"),
        (["--depths", "20,1202"], "cifar has a plain and a residual net at depths 20,32,44,56,110 only"),
    ],
)
def test_user_errors(flags, message, tmp_path, capsys):
    assert main(["experiment", "degradation", "--data", str(tmp_path), "--out", str(tmp_path / "x"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


SHRUNK_IMAGENET = """
augmentation = "imagenet"
scale_range = [36, 44]
crop_size = 32
test_resize = 36
workers = 0
lr = 0.1
"""


def test_imagenet_family_trains_plain18_and_resnet18_with_the_sec_3_4_pipeline(imagenette_small, tmp_path):
    recipe = tmp_path / "shrunk-imagenet.toml"  # the ImageNet pipeline on 32x32 crops, for speed
    recipe.write_text(SHRUNK_IMAGENET)
    settings = dict(iters=2, eval_every=2, batch_size=4, val_split=0, precision="fp32")
    results = degradation("imagenet", [18], str(imagenette_small), tmp_path / "fig4", recipe=str(recipe), **settings)
    text = results.read_text()
    assert "Degradation (Fig. 4): plain and residual nets on ImageNet" in text
    assert "| plain-18 |" in text and "| ResNet-18 |" in text
    for name in ("plain18", "resnet18"):
        config = json.loads((tmp_path / "fig4" / name / "config.json").read_text())
        assert (config["augmentation"], config["model"]) == ("imagenet", name)


def test_reuse_takes_the_residual_nets_from_another_experiment(experiment, cifar_small, tmp_path, monkeypatch):
    table6 = tmp_path / "table6"
    shutil.copytree(experiment.out / "resnet20", table6 / "resnet20")  # a finished ResNet-20 of another experiment
    (table6 / "experiment.json").write_text(json.dumps({"experiment": "table6", "members": ["resnet20", "resnet32"]}))
    calls = []
    train = runner.train
    monkeypatch.setattr(runner, "train", lambda config, **kw: calls.append(config.model) or train(config, **kw))
    out = tmp_path / "fig6"
    degradation("cifar", [20], str(cifar_small), out, reuse=table6, **TINY)
    assert calls == ["plain20"]  # ResNet-20 is not trained twice, nor copied
    assert not (out / "resnet20").exists() and (out / "plain20" / "final.safetensors").is_file()
    folders = json.loads((out / "experiment.json").read_text())["folders"]
    assert folders == ["plain20", "../table6/resnet20"]
    assert [run.path.resolve() for run in collect([out])[0]] == [out / "plain20", table6 / "resnet20"]


def test_reuse_needs_an_experiment_folder(cifar_small, tmp_path, capsys):
    flags = ["--data", str(cifar_small), "--out", str(tmp_path / "fig6"), "--reuse", str(tmp_path)]
    assert main(["experiment", "degradation", "--depths", "20", *flags]) == 2
    assert "holds no experiment.json" in capsys.readouterr().err
