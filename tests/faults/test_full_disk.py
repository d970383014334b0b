"""A failed write while saving (a full disk) keeps the previous checkpoint intact and says so."""

import errno

import pytest
import torch

from resnets.core import checkpoints as checkpoint_module
from resnets.core.checkpoints import load_checkpoint
from resnets.core.errors import UserError
from resnets.training.loop import train

from ..tiny import tiny_config


def test_disk_full_during_the_second_save(cifar_small, tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def save_until_the_disk_is_full(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # last.pt and best.pt at iteration 2 went through; last.pt at 4 does not
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_until_the_disk_is_full)
    run = tmp_path / "run"
    config = tiny_config(cifar_small, run, iters=6, eval_every=2, log_every=2, deterministic=False)
    with pytest.raises(
        UserError,
        match=r"could not write checkpoint .*last.pt \(No space left on device\); "
        "the previous checkpoint is intact",
    ):
        train(config)
    monkeypatch.undo()
    assert load_checkpoint(run / "last.pt")["iteration"] == 2
    assert not list(run.glob(".*.part"))  # the partial file was removed
