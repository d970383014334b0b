"""Which member folders an experiment may continue: the settings must agree once something was trained."""

import json

import pytest

from resnets.core.errors import UserError
from resnets.experiments.runner import Experiment


def member(tmp_path, data="data", **overrides):
    """The config of the experiment's one member, ResNet-20 in tmp_path/resnet20."""
    experiment = Experiment("t", "cifar", [20], ["resnet20"], "cifar10-paper", data, tmp_path, overrides)
    return experiment.member_config("resnet20")


def test_settings_must_agree_once_a_checkpoint_exists(tmp_path):
    started = member(tmp_path, iters=8, seed=1)
    (tmp_path / "resnet20").mkdir()
    started.save(tmp_path / "resnet20" / "config.json")
    assert member(tmp_path, iters=9, seed=1).iters == 9  # nothing trained yet: it starts over
    (tmp_path / "resnet20" / "last.pt").write_bytes(b"")
    message = r"--seed 2 differs from 1, with which the run in .*resnet20 was trained; keep the run's --seed 1"
    with pytest.raises(UserError, match=message):
        member(tmp_path, iters=8, seed=2)


def test_run_mechanics_may_change_between_sessions(tmp_path):
    (tmp_path / "resnet20").mkdir()
    member(tmp_path, iters=8, device="cpu", precision="fp32").save(tmp_path / "resnet20" / "config.json")
    (tmp_path / "resnet20" / "final.safetensors").write_bytes(b"")  # a finished member counts as trained too
    config = member(tmp_path, data="elsewhere", iters=8, device="cuda", precision="bf16")
    assert (config.data, config.device, config.precision, config.iters) == ("elsewhere", "cuda", "bf16", 8)


def test_a_config_json_saved_before_newer_fields_still_continues(tmp_path):
    # Runs started before `depth` and `checkpoint_minutes` existed (the committed Table 6 run) lack those keys.
    run = tmp_path / "resnet20"
    run.mkdir()
    saved = member(tmp_path, iters=8).to_dict()
    del saved["depth"], saved["checkpoint_minutes"]
    (run / "config.json").write_text(json.dumps({**saved, "data": "/old/place"}))
    (run / "last.pt").write_bytes(b"")
    assert member(tmp_path, data="/new/place", iters=8).data == "/new/place"


def test_an_unreadable_member_config_names_the_file(tmp_path):
    (tmp_path / "resnet20").mkdir()
    (tmp_path / "resnet20" / "config.json").write_text("{")
    (tmp_path / "resnet20" / "last.pt").write_bytes(b"")
    with pytest.raises(UserError, match=r"resnet20/config.json is not valid JSON .*delete that member folder"):
        member(tmp_path, iters=8)
