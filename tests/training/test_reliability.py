"""The run folder's guarantees: a lock per run, finite checkpoints only, a checkpoint on SIGINT/SIGTERM and on a timer,
and a resume that refuses another run's settings or data before writing anything."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import torch

from resnets.core import checkpoints
from resnets.core.checkpoints import load_checkpoint
from resnets.core.errors import UserError
from resnets.engine import trainer as engine
from resnets.engine.lock import LOCK
from resnets.engine.trainer import TrainingDiverged, TrainingInterrupted
from resnets.training.config import resolve_config
from resnets.training.loop import Trainer, train

from ..tiny import tiny_config

SMALL = dict(val_split=20, batch_size=20, iters=4, eval_every=2, log_every=2)


def small(data, out, **overrides):
    return tiny_config(data, out, **{**SMALL, **overrides})


def test_a_second_trainer_on_a_locked_run_is_refused_in_one_line(cifar_png, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # a live process holds it
    with pytest.raises(UserError, match=rf"another trainer \(pid {os.getpid()}\) is training into") as info:
        train(small(cifar_png, run))
    assert "\n" not in str(info.value) and sorted(p.name for p in run.iterdir()) == [LOCK]


def test_a_stale_lock_is_cleared_and_released_after_the_run(cifar_png, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(f"{dead.pid} {socket.gethostname()}\n")
    train(small(cifar_png, run, iters=2))
    assert (run / "last.pt").is_file() and not (run / LOCK).exists()


def test_weights_that_became_non_finite_are_never_saved(cifar_png, tmp_path, monkeypatch):
    step = Trainer.step

    def poisoned(self, x, y, lr):  # the update of iteration 3 (so the loss stays finite) breaks one weight
        result = step(self, x, y, lr)
        if self.iteration == 3:
            with torch.no_grad():
                self.model.fc.weight[0, 0] = math.nan
        return result

    monkeypatch.setattr(Trainer, "step", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"1 weights .* by iteration 4; the last good checkpoint .* is kept"):
        train(small(cifar_png, run))
    kept = load_checkpoint(run / "last.pt")
    assert kept["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


def test_sigterm_saves_the_current_iteration_and_the_resumed_run_equals_an_uninterrupted_one(cifar_png, tmp_path):
    whole = tmp_path / "whole"
    train(small(cifar_png, whole, iters=6, eval_every=4))
    step = Trainer.step

    def signalled(self, x, y, lr):
        if self.iteration == 2:  # between two validations and two log points
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, x, y, lr)

    cut = tmp_path / "cut"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Trainer, "step", signalled)
        with pytest.raises(TrainingInterrupted) as info:
            train(small(cifar_png, cut, iters=6, eval_every=4))
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert str(info.value) == (
        f"SIGTERM at iteration 3: saved {cut / 'last.pt'}; continue with: resnets train --out {cut} --resume"
    )
    assert load_checkpoint(cut / "last.pt")["iteration"] == 3 and not (cut / LOCK).exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone with the run
    train(small(cifar_png, cut, iters=6, eval_every=4), resume=True)
    a, b = (load_checkpoint(r / "last.pt")["model"] for r in (whole, cut))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_are_also_written_on_a_timer(cifar_png, tmp_path, monkeypatch):
    saved = []
    save = checkpoints.save_checkpoint
    monkeypatch.setattr(
        engine, "save_checkpoint", lambda path, state: (saved.append(state["iteration"]), save(path, state))
    )
    train(small(cifar_png, tmp_path / "run", eval_every=4, checkpoint_minutes=1e-9))  # due after every iteration
    assert saved == [1, 2, 3, 4, 4]  # 4: last.pt and best.pt of the validation


def test_resume_without_a_checkpoint_is_an_error(cifar_png, tmp_path):
    with pytest.raises(UserError, match="--resume: .* holds no valid checkpoint to continue; start without --resume"):
        train(small(cifar_png, tmp_path / "run"), resume=True)
    assert not (tmp_path / "run").exists()


def test_resume_on_other_data_is_refused_before_anything_is_written(cifar_png, tmp_path):
    run = tmp_path / "run"
    train(small(cifar_png, run, iters=2))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    other = tmp_path / "nine-classes"
    shutil.copytree(cifar_png, other)
    shutil.rmtree(other / "train" / "truck")
    shutil.rmtree(other / "test" / "truck")
    with pytest.raises(UserError, match=f"--data {other} is not the data of the run in {run}: it has 88 training"):
        train(small(other, run, iters=4), resume=True)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_with_another_model_names_the_setting(cifar_png, tmp_path):
    run = tmp_path / "run"
    train(small(cifar_png, run, iters=2))
    saved = small(cifar_png, run, iters=2).to_dict()
    with pytest.raises(UserError, match="--model plain20 differs from resnet20, with which the run in"):
        resolve_config({"model": "plain20"}, saved)
    with pytest.raises(UserError, match="--batch-size 40 differs from 20"):
        resolve_config({"batch_size": 40}, saved)
    # The milestones are fractions of --iters: a longer run would move lr drops already taken.
    with pytest.raises(UserError, match="--iters 8 differs from 2, with which the run in .*; keep the run's --iters 2"):
        resolve_config({"iters": 8}, saved)
    elsewhere = resolve_config({"device": "cpu", "data": "/moved", "precision": "fp32"}, saved)  # MECHANICS: allowed
    assert (elsewhere.device, elsewhere.data, elsewhere.iters) == ("cpu", "/moved", 2)


def test_a_foreign_config_json_is_not_replaced_unasked(cifar_png, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"mine": true}\n')
    with pytest.raises(UserError, match="config.json was not written by resnets train; .* pass --force"):
        train(small(cifar_png, run, iters=2))
    assert (run / "config.json").read_text() == '{"mine": true}\n'
    train(small(cifar_png, run, iters=2), force=True)
    assert load_checkpoint(run / "last.pt")["iteration"] == 2


@pytest.mark.parametrize("kind", ["fifo", "dangling link"])
def test_non_regular_files_in_a_class_folder_are_ignored(cifar_png, tmp_path, kind):
    data = tmp_path / "data"
    shutil.copytree(cifar_png, data)
    odd = data / "train" / "cat" / "odd.png"
    os.mkfifo(odd) if kind == "fifo" else odd.symlink_to(tmp_path / "gone.png")
    train(small(data, tmp_path / "run", iters=2))  # a FIFO would block decoding forever
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train_images"] == 100
