import json

import pytest

from resnets.errors import UserError
from resnets.training.config import TrainConfig, resolve_config


def test_paper_recipe_resolves_to_sec_4_2():
    c = resolve_config({"recipe": "cifar10-paper"})
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay, c.iters) == (128, 0.1, 0.9, 1e-4, 64000)
    assert c.milestone_iters == [32000, 48000]
    assert c.warmup_lr is None and c.val_split == 5000


@pytest.mark.parametrize("model", ["resnet110", "resnet1202"])
def test_deep_cifar_nets_warm_up_at_0_01(model):
    c = resolve_config({"model": model})
    assert c.warmup_lr == 0.01 and c.warmup_until_error == 0.8


def test_short_schedule_scales_milestones_to_half_and_three_quarters():
    assert resolve_config({"iters": 3000}).milestone_iters == [1500, 2250]


def test_overrides_win_over_the_recipe():
    c = resolve_config({"lr": 0.05, "milestones": [0.3, 0.6], "warmup_lr": 0.02})
    assert (c.lr, c.milestones, c.warmup_lr) == (0.05, (0.3, 0.6), 0.02)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"lr": -0.1}, "lr=-0.1 must be positive"),
        ({"batch_size": 0}, "batch_size=0 must be positive"),
        ({"batch_size": "128"}, "batch_size='128' has the wrong type"),
        ({"iters": 1.5}, "iters=1.5 has the wrong type"),
        ({"milestones": [0.75, 0.5]}, "milestones"),
        ({"device": "tpu"}, "device='tpu' is not one of auto, cpu, cuda"),
        ({"momentum": 1.0}, "momentum"),
        ({"flip": "yes"}, "flip='yes' has the wrong type"),
    ],
)
def test_bad_values_are_rejected_by_name(values, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**values)


def test_unknown_key_in_a_recipe_file_is_named(tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text("lr = 0.1\nlearning_rate = 0.2\n")
    with pytest.raises(UserError, match="unknown key 'learning_rate'"):
        resolve_config({"recipe": str(recipe)})


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(UserError, match="cifar10-paper"):
        resolve_config({"recipe": "imagenet-fast"})


def test_config_round_trips_through_json(tmp_path):
    c = resolve_config({"model": "resnet110", "iters": 100})
    c.save(tmp_path / "config.json")
    assert TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == c
