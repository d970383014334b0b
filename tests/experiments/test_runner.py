"""Which member folders an experiment may continue: the settings must agree once something was trained."""

import pytest

from resnets.errors import UserError
from resnets.experiments.runner import Experiment, check_agrees


def member(tmp_path, data="data", **overrides):
    """The config of the experiment's one member, ResNet-20 in tmp_path/resnet20."""
    experiment = Experiment("t", "cifar", [20], ["resnet20"], "cifar10-paper", data, tmp_path, overrides)
    return experiment.member_config("resnet20")


def test_settings_must_agree_once_a_checkpoint_exists(tmp_path):
    started = member(tmp_path, iters=8, seed=1)
    (tmp_path / "resnet20").mkdir()
    started.save(tmp_path / "resnet20" / "config.json")
    check_agrees(member(tmp_path, iters=9, seed=1))  # nothing trained yet: it starts over
    (tmp_path / "resnet20" / "last.pt").write_bytes(b"")
    message = r"resnet20/config.json was trained with --seed 1 but this experiment asks for --seed 2"
    with pytest.raises(UserError, match=message):
        check_agrees(member(tmp_path, iters=8, seed=2))


def test_run_mechanics_may_change_between_sessions(tmp_path):
    (tmp_path / "resnet20").mkdir()
    member(tmp_path, iters=8, device="cpu", precision="fp32").save(tmp_path / "resnet20" / "config.json")
    (tmp_path / "resnet20" / "last.pt").write_bytes(b"")
    check_agrees(member(tmp_path, data="elsewhere", iters=8, device="cuda", precision="bf16"))
