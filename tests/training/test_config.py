import json

import pytest

from resnets.core.errors import UserError
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
        ({"lr": -0.1}, "--lr -0.1 must be positive"),
        ({"batch_size": 0}, "--batch-size 0 must be positive"),
        ({"batch_size": "128"}, "--batch-size '128' has the wrong type"),
        ({"iters": 1.5}, "--iters 1.5 has the wrong type"),
        ({"milestones": [0.75, 0.5]}, "--milestones 0.75,0.5 must be increasing"),
        ({"device": "tpu"}, "--device 'tpu' is not one of auto, cpu, cuda"),
        ({"momentum": 1.0}, "--momentum 1.0 must be below 1"),
        ({"flip": "yes"}, "--flip 'yes' has the wrong type"),
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


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('batch_size = "128"', "batch_size = '128' has the wrong type; expected int"),
        ("iters = 1.5", "iters = 1.5 has the wrong type; expected int"),
        ('lr = "0.1"', "lr = '0.1' has the wrong type; expected float"),
        ('eval_every = "50"', "eval_every = '50' has the wrong type; expected int"),
        ('[warmup]\nmodels = ["resnet20"]\nlr = "0.01"', "[warmup] lr = '0.01' has the wrong type"),
    ],
)
@pytest.mark.parametrize("given", [{}, {"batch_size": 64}, {"iters": 100}])
def test_a_mistyped_recipe_value_names_the_file_and_the_key(tmp_path, line, message, given):
    # Before the rescaling does arithmetic on it: a string batch_size under --batch-size was a TypeError traceback,
    # and iters = 1.5 under --batch-size 64 became a silent iters = 3.
    recipe = tmp_path / "mine.toml"
    recipe.write_text(line + "\n")
    with pytest.raises(UserError) as info:
        resolve_config({"recipe": str(recipe), **given})
    assert str(info.value).startswith(f"recipe {recipe}: {message}"), str(info.value)


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(UserError, match="cifar10-paper"):
        resolve_config({"recipe": "imagenet-fast"})


def test_config_round_trips_through_json(tmp_path):
    c = resolve_config({"model": "resnet110", "iters": 100})
    c.save(tmp_path / "config.json")
    assert TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == c


def test_imagenet_recipe_is_sec_3_4():
    c = resolve_config({"recipe": "imagenet-paper"})
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay, c.iters) == (256, 0.1, 0.9, 1e-4, 600000)
    assert (c.lr_schedule, c.lr_decay, c.augmentation, c.scale_range, c.crop_size) == (
        "plateau",
        0.1,
        "imagenet",
        (256, 480),
        224,
    )
    assert c.lighting_std == 0.1 and c.val_split == 0


def test_fixed_epoch_variant_divides_at_epochs_30_60_90_of_120():
    c = resolve_config({"recipe": "imagenet-paper-epochs"})
    assert c.epochs == 120 and c.lr_schedule == "step"
    assert [m * c.epochs for m in c.milestones] == [30, 60, 90]
    assert c.eval_interval(steps_per_epoch=5004) == 5004  # one validation an epoch


def test_batch_size_rescales_lr_and_iterations_linearly():
    c = resolve_config({"recipe": "imagenet-paper", "batch_size": 64})
    assert (c.lr, c.iters, c.eval_every) == (0.025, 2_400_000, 20000)
    c = resolve_config({"batch_size": 256})  # CIFAR: twice the batch, half the iterations
    assert (c.lr, c.iters, c.milestone_iters) == (0.2, 32000, [16000, 24000])
    c = resolve_config({"model": "resnet110", "batch_size": 64})
    assert (c.lr, c.warmup_lr) == (0.05, 0.005)


def test_given_values_are_not_rescaled():
    c = resolve_config({"recipe": "imagenet-paper", "batch_size": 64, "lr": 0.1, "iters": 1000, "eval_every": 7})
    assert (c.lr, c.iters, c.eval_every) == (0.1, 1000, 7)


def test_iters_rescale_a_recipes_validation_interval_and_replace_epochs():
    assert resolve_config({"recipe": "imagenet-paper", "iters": 6000}).eval_every == 50
    c = resolve_config({"recipe": "imagenet-paper-epochs", "iters": 1000})
    assert c.epochs is None and c.milestone_iters == [250, 500, 750]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"scale_range": [480, 256]}, "--scale-range 480,256 must be"),
        ({"scale_range": [200, 480]}, "--crop-size 224 <= LOW"),
        ({"lr_schedule": "cosine"}, "--lr-schedule 'cosine' is not one of step, plateau"),
        ({"augmentation": "autoaugment"}, "--augmentation 'autoaugment'"),
        ({"epochs": 0}, "--epochs 0.0 must be positive"),
        ({"workers": -1}, "--workers -1 must be 0"),
        ({"weights": "torchvision-v1", "shortcut": "A"}, "--shortcut A conflicts with --weights torchvision-v1"),
    ],
)
def test_bad_imagenet_values_are_rejected_by_name(values, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**values)


def test_named_weights_set_the_architecture_they_were_trained_with():
    options = TrainConfig(model="resnet50", weights="torchvision-v1").model_options()
    assert (options["stride_on"], options["shortcut"]) == ("3x3", "B")


@pytest.mark.parametrize(
    "given, steps_per_epoch, interval",
    [
        ({"recipe": "imagenet-paper"}, 5004, 5000),  # the recipe's own interval at its full length
        ({"recipe": "imagenet-paper", "iters": 30, "batch_size": 32, "val_split": 0}, 296, 50),  # issue 19's run
        ({"recipe": "imagenet-paper", "iters": 30}, 5004, 50),
        ({"recipe": "imagenet-paper", "iters": 120_000}, 5004, 1000),  # scaled in proportion above the floor
        ({"recipe": "imagenet-paper", "batch_size": 64}, 20016, 20000),  # 4x the iterations, 4x the interval
        ({}, 352, 1000),  # CIFAR at 64k: iters/20, at most 1000
        ({"iters": 30}, 352, 50),  # not after every iteration
        ({"iters": 3000}, 352, 150),
        ({"iters": 30, "batch_size": 256}, 176, 50),
        ({"iters": 400}, 9, 20),  # a tiny data set: an epoch is shorter than the floor
        ({"iters": 30, "eval_every": 1}, 352, 1),  # asked for: kept
    ],
)
def test_validation_interval_of_short_and_long_runs(given, steps_per_epoch, interval):
    assert resolve_config(given).eval_interval(steps_per_epoch) == interval


def test_cifar_without_data_resolves_to_the_download_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETS_DATA", str(tmp_path))
    assert resolve_config({}).data == str(tmp_path / "cifar-10-batches-py")  # what config.json records
    assert resolve_config({"data": "mine"}).data == "mine"
    assert resolve_config({"recipe": "imagenet-paper"}).data == ""  # no default: the CLI asks for --data


def test_a_recipe_file_is_parsed_once_per_process_and_callers_get_copies(tmp_path, monkeypatch):
    from resnets.training import config

    recipe = tmp_path / "mine.toml"
    recipe.write_text('description = "x"\nlr = 0.05\nmilestones = [0.5, 0.75]\n')
    parsed = []
    loads = config.tomllib.loads
    monkeypatch.setattr(config.tomllib, "loads", lambda text: (parsed.append(1), loads(text))[1])
    first = config.recipe_values(str(recipe))
    first["milestones"].append(0.9)
    resolved = config.resolve_config({"recipe": str(recipe), "out": str(tmp_path / "run"), "data": str(tmp_path)})
    assert resolved.lr == 0.05 and resolved.milestones == (0.5, 0.75) and len(parsed) == 1
