import csv
import math

import pytest
import torch

from resnets.core.checkpoints import load_checkpoint
from resnets.core.errors import UserError
from resnets.engine.trainer import TrainingDiverged
from resnets.training.config import TrainConfig
from resnets.training.loop import Trainer, train

from ..tiny import tiny_config


class Interrupt(Exception):
    pass


def interrupt_after(monkeypatch, steps: int) -> None:
    original, calls = Trainer.step, {"n": 0}

    def step(self, *args):
        calls["n"] += 1
        if calls["n"] > steps:
            raise Interrupt
        return original(self, *args)

    monkeypatch.setattr(Trainer, "step", step)


def test_run_writes_config_metrics_and_checkpoints(cifar_small, tmp_path):
    config = tiny_config(cifar_small, tmp_path / "run")
    last = train(config)
    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [3, 6, 9, 12]
    assert list(rows[0]) == ["iteration", "lr", "train_loss", "train_error", "val_error", "images_per_sec"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1, 0.1, 0.01, 0.001])  # milestones: 6 and 9 of 12
    assert all(0 <= float(r["val_error"]) <= 100 and float(r["images_per_sec"]) > 0 for r in rows)
    assert last["iteration"] == 12
    state = load_checkpoint(run / "last.pt")
    assert state["iteration"] == 12 and state["classes"][0] == "airplane"
    assert state["pixel_mean"].shape == (3, 32, 32)
    best = load_checkpoint(run / "best.pt")
    assert best["best_val_error"] == min(float(r["val_error"]) for r in rows)
    assert TrainConfig.from_dict(state["train_config"]) == config


@pytest.mark.parametrize("stop", [4, 9])  # mid-epoch (checkpoint at 3), epoch boundary (checkpoint at 9)
def test_resume_is_bit_for_bit(cifar_small, tmp_path, monkeypatch, stop):
    train(tiny_config(cifar_small, tmp_path / "whole"))
    with monkeypatch.context() as m:
        interrupt_after(m, stop)
        with pytest.raises(Interrupt):
            train(tiny_config(cifar_small, tmp_path / "cut"))
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["iteration"] == 3 * (stop // 3)
    train(tiny_config(cifar_small, tmp_path / "cut"), resume=True)
    whole, cut = (load_checkpoint(tmp_path / r / "last.pt") for r in ("whole", "cut"))
    for key, value in whole["model"].items():
        assert torch.equal(value, cut["model"][key]), key
    assert (tmp_path / "whole" / "metrics.csv").read_text().count("\n") == (
        tmp_path / "cut" / "metrics.csv"
    ).read_text().count("\n")


def test_existing_run_needs_resume(cifar_small, tmp_path):
    train(tiny_config(cifar_small, tmp_path / "run", iters=3))
    with pytest.raises(UserError, match="pass --resume"):
        train(tiny_config(cifar_small, tmp_path / "run", iters=3))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(cifar_small, tmp_path, monkeypatch):
    original, calls = Trainer.step, {"n": 0}

    def step(self, *args):
        calls["n"] += 1
        loss, wrong, taken = original(self, *args)
        return (loss * math.nan if calls["n"] > 7 else loss), wrong, taken

    monkeypatch.setattr(Trainer, "step", step)
    with pytest.raises(TrainingDiverged, match="loss became nan by iteration 9.*last.pt is kept"):
        train(tiny_config(cifar_small, tmp_path / "run"))
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 6


@pytest.mark.parametrize("until, lrs", [(1.0, [0.01, 0.1, 0.1]), (1e-6, [0.01, 0.01, 0.01])])
def test_warmup_lasts_until_training_error_is_low_enough(cifar_small, tmp_path, until, lrs):
    config = tiny_config(
        cifar_small, tmp_path / "run", iters=9, milestones=[0.99, 0.995], warmup_lr=0.01, warmup_until_error=until
    )
    train(config)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [float(r["lr"]) for r in rows] == pytest.approx(lrs)


def test_batch_larger_than_dataset_is_rejected_before_training(cifar_small, tmp_path):
    with pytest.raises(UserError, match="batch_size=512 is larger than the 300 training images"):
        train(tiny_config(cifar_small, tmp_path / "run", batch_size=512))
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_step_skipped_by_the_grad_scaler_is_retried_without_advancing_the_schedule(cifar_small, tmp_path):
    trainer = Trainer(tiny_config(cifar_small, tmp_path / "run", iters=6, milestones=[0.5, 0.75]))
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # the fp16 path's scaler, on the CPU
    overflow = {"at": 2, "calls": 0}

    def poison(grad):  # the gradient of the third step overflows
        overflow["calls"] += 1
        return grad * math.inf if overflow["calls"] == overflow["at"] + 1 else grad

    trainer.model.fc.weight.register_hook(poison)
    taken_lrs = []
    real_step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (
        taken_lrs.append(trainer.optimizer.param_groups[0]["lr"]),
        real_step(*a, **k),
    )[1]
    trainer.fit()
    assert overflow["calls"] == 7 and trainer.skipped_steps == 1  # six steps taken, one skipped and retried
    assert taken_lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.001, 0.001])  # milestones at 3 and 4 of 6 steps
    assert trainer.scaler.get_scale() == 2.0**9


@pytest.mark.parametrize("validation_seconds, warned", [(10.0, True), (0.01, False)])
def test_a_validation_that_dominates_the_run_is_warned_about(cifar_small, tmp_path, capsys, validation_seconds, warned):
    trainer = Trainer(tiny_config(cifar_small, tmp_path / "run", iters=9, eval_every=3, log_every=3, val_split=10))
    trainer.iteration = 3  # after the first validation: 2 more of them, 6 more steps of 1 s / 3 each
    trainer._warn_if_validation_dominates(validation_seconds, train_seconds=1.0, steps=3)
    assert capsys.readouterr().out.count("pass --eval-every N with a larger N") == (1 if warned else 0)


def test_only_the_first_validation_is_checked_for_its_share_of_the_run(cifar_small, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(Trainer, "_warn_if_validation_dominates", lambda self, *args: calls.append(args))
    train(tiny_config(cifar_small, tmp_path / "run", iters=9, eval_every=3, log_every=3, val_split=10))
    assert len(calls) == 1 and calls[0][2] == 3  # measured over the 3 steps before it


HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__")


def test_steps_between_log_points_read_nothing_back_from_the_device(cifar_small, tmp_path, monkeypatch):
    # On a GPU each of these waits for the queued kernels; the loop may use them at log points only, so a run
    # with twice the iterations between its two log points must make exactly as many of them.
    reads = {"n": 0}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    made = []
    for iters in (8, 16):
        reads["n"] = 0
        train(tiny_config(cifar_small, tmp_path / str(iters), iters=iters, log_every=iters // 2, eval_every=iters))
        made.append(reads["n"])
    assert made[0] > 0  # the log points and the validation do read (the counting works)
    assert made[0] == made[1], made


def test_compile_mode_reaches_torch_compile(cifar_small, tmp_path, monkeypatch):
    modes = []

    def compile(module, mode):
        modes.append(mode)
        return module

    monkeypatch.setattr(torch, "compile", compile)
    train(tiny_config(cifar_small, tmp_path / "run", iters=3, compile=True, compile_mode="reduce-overhead"))
    assert modes == ["reduce-overhead"]
    with pytest.raises(UserError, match="--compile-mode 'graphs' is not one of default, reduce-overhead"):
        tiny_config(cifar_small, tmp_path / "bad", compile_mode="graphs")
