"""Issue 27's cases for train, experiment, analyze and report: a user's files in --out are never replaced unasked,
outputs stay out of the data folder, bad settings are one line, and the CLI's start is interruptible cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pytest

from resnets.cli import main
from resnets.core.errors import UserError
from resnets.experiments.report import collect
from resnets.training.loop import train

from .tiny import tiny_config

SMALL = dict(val_split=20, batch_size=20, iters=2, eval_every=2, log_every=2)


@pytest.mark.parametrize("name", ["metrics.csv", "best.pt", "sessions.jsonl"])
def test_train_keeps_a_users_own_files_in_an_out_without_config_json(cifar_png, tmp_path, name):
    run = tmp_path / "mine"
    run.mkdir()
    (run / name).write_text("my own\n")
    with pytest.raises(UserError, match=f"already holds {name}, which this command would replace; .* --force"):
        train(tiny_config(cifar_png, run, **SMALL))
    assert (run / name).read_text() == "my own\n"
    assert sorted(p.name for p in run.iterdir()) == [name]  # nothing written beside it (the lock is released)


def test_train_refuses_an_out_inside_its_data_folder(cifar_png, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cifar_png, data)
    with pytest.raises(UserError, match="is inside the input folder"):
        train(tiny_config(data, data / "runs" / "r", **SMALL))
    assert not (data / "runs").exists()


def test_an_experiment_keeps_a_users_results_md_and_does_not_advise_force(cifar_png, tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "results.md").write_text("my notes\n")
    flags = ["--data", str(cifar_png), "--out", str(out), "--iters", "2", "--val-split", "20", "--batch-size", "20"]
    assert main(["experiment", "table6", "--depths", "20", *flags]) == 2
    err = capsys.readouterr().err
    assert "already holds results.md" in err and "--force" not in err
    assert (out / "results.md").read_text() == "my notes\n" and not (out / "experiment.json").exists()


def test_an_experiment_member_with_a_foreign_config_does_not_advise_force(cifar_png, tmp_path, capsys):
    member = tmp_path / "exp" / "resnet20"
    member.mkdir(parents=True)
    (member / "config.json").write_text('{"mine": 1}\n')
    flags = ["--data", str(cifar_png), "--out", str(tmp_path / "exp"), "--iters", "2", "--val-split", "20"]
    assert main(["experiment", "table6", "--depths", "20", *flags]) == 2
    err = capsys.readouterr().err
    assert "was not written by resnets train" in err and "--force" not in err
    assert (member / "config.json").read_text() == '{"mine": 1}\n'


@pytest.mark.parametrize("depths", ["", ","])
def test_experiment_depths_that_name_no_depth_are_refused(cifar_png, tmp_path, capsys, depths):
    out = tmp_path / "exp"
    assert main(["experiment", "table6", "--depths", depths, "--data", str(cifar_png), "--out", str(out)]) == 2
    assert "--depths '': cifar has a residual net at depths" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("content", ['{"experiment": "table6", "mem', '{"members": "resnet20"}', "[]", ""])
def test_report_on_a_damaged_experiment_json_is_one_line(tmp_path, content):
    (tmp_path / "experiment.json").write_text(content)
    with pytest.raises(UserError, match="experiment.json is damaged"):
        collect([tmp_path])


@pytest.mark.parametrize("existing", ["responses.csv", "results.md"])
def test_analyze_keeps_an_earlier_analysis_unless_forced(cifar_png, tmp_path, capsys, existing):
    out = tmp_path / "analysis"
    out.mkdir()
    (out / existing).write_text("earlier\n")
    args = ["analyze", "responses", "--checkpoint", "run", "--data", str(cifar_png), "--out", str(out)]
    assert main(args) == 2
    assert f"already holds {existing}" in capsys.readouterr().err
    assert (out / existing).read_text() == "earlier\n"


def test_analyze_refuses_an_out_inside_its_data_folder(cifar_png, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(cifar_png, data)
    args = ["analyze", "responses", "--checkpoint", "run", "--data", str(data), "--out", str(data / "fig7")]
    assert main(args) == 2
    assert "is inside the input folder" in capsys.readouterr().err


def test_a_one_class_training_set_is_refused(cifar_png, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cifar_png / "train" / "cat", data / "train" / "cat")
    with pytest.raises(UserError, match="have one class \\(cat\\); a classifier needs at least two"):
        train(tiny_config(data, tmp_path / "run", **SMALL))


def test_no_validation_split_at_all_is_warned_about(cifar_png, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(cifar_png / "train", data / "train")
    train(tiny_config(data, tmp_path / "run", **{**SMALL, "val_split": 0}))
    assert "warning: --val-split 0 and" in capsys.readouterr().err


def test_warnings_are_one_clean_line(monkeypatch, capsys):
    def warn(args):
        warnings.warn("something to know", UserWarning, stacklevel=1)

    monkeypatch.setitem(sys.modules["resnets.cli.registry"].COMMANDS, "list", (lambda p: None, warn))
    assert main(["list"]) == 0
    assert capsys.readouterr().err == "resnets: warning: something to know\n"


def test_import_resnets_loads_no_torch():
    code = "import sys, resnets, resnets.cli; print('torch' in sys.modules); print(resnets.ResNet.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "ResNet"]


@pytest.mark.parametrize("delay", [0.1, 0.2, 0.3, 0.5, 0.8, 1.2])
def test_ctrl_c_while_the_cli_starts_is_one_line(tmp_path, delay):
    # A background job starts with SIGINT ignored; the child gets Python's default handler back.
    start = dict(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    args = [sys.executable, "-m", "resnets", "train", "--data", str(tmp_path), "--out", str(tmp_path / "r")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env, **start)
    time.sleep(delay)  # inside the imports of torch and the parser
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert "Traceback" not in err
    assert proc.returncode in (130, 2, -signal.SIGINT), err  # 2: it got past the imports and refused the data


def test_experiment_json_written_by_the_runner_is_recognised(cifar_png, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({"experiment": "degradation"}))  # another experiment's
    (out / "results.md").write_text("theirs\n")
    flags = ["--data", str(cifar_png), "--out", str(out), "--iters", "2", "--val-split", "20"]
    assert main(["experiment", "table6", "--depths", "20", *flags]) == 2
    assert (out / "results.md").read_text() == "theirs\n"


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_recipe_path_that_is_no_file_says_what_it_is(cifar_png, tmp_path, capsys, kind):
    recipe = tmp_path / "mine.toml"
    os.mkfifo(recipe) if kind == "fifo" else recipe.mkdir()
    flags = ["--recipe", str(recipe), "--data", str(cifar_png), "--out", str(tmp_path / "run"), "--iters", "1"]
    assert main(["train", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{recipe} is a {'FIFO' if kind == 'fifo' else 'folder'}" in err


def test_a_failure_that_follows_a_swallowed_ctrl_c_is_reported_as_the_interrupt(monkeypatch, capsys):
    # As a library with a catch-all around an import or an export does: the Ctrl-C is caught, and what fails next
    # (a half-imported module, "export failed") is the interrupt's doing, not a bug to show as a traceback.
    from resnets.cli import registry

    def swallowing(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the signal arrives here
        except BaseException:
            pass
        raise AttributeError("module 'numpy' has no attribute 'matrix'")

    add_arguments, _ = registry.COMMANDS["list"]
    monkeypatch.setitem(registry.COMMANDS, "list", (add_arguments, swallowing))
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "resnets list: interrupted\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
