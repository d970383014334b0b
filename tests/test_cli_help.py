"""The CLI explains itself: help on every flag of every command, train's defaults and groups, errors in flag names."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from resnets.cli import build_parser, main
from resnets.cli.train import GROUPS
from resnets.training.config import TrainConfig, flag


def parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) for the parser and every subparser below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def subcommand_entries(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, help) of every subcommand's line in its parent's --help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for entry in action._choices_actions:
                yield (*path, entry.dest), entry.help
            for name, sub in action.choices.items():
                yield from subcommand_entries(sub, (*path, name))


def train_parser() -> argparse.ArgumentParser:
    return dict(parsers(build_parser()))[("train",)]


def test_every_flag_of_every_command_has_a_help_line():
    missing = [
        (" ".join(path), action.option_strings or action.dest)
        for path, parser in parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert missing == []


def test_every_subcommand_has_a_line_in_its_parents_help():
    entries = dict(subcommand_entries(build_parser()))
    names = ("train", "evaluate", "export", "experiment", "analyze", "report", "list", "summary", "predict", "serve")
    for name in (*names, "detect"):
        assert entries[(name,)], name
    assert all((help or "").strip() for help in entries.values()), entries
    # Nested ones too: experiment degradation|table6, analyze responses, detect train|evaluate|predict.
    assert {("experiment", "table6"), ("analyze", "responses"), ("detect", "train")} <= set(entries)


def test_train_flags_are_the_config_fields_with_their_help_defaults_and_groups():
    parser = train_parser()
    by_flag = {option: action for action in parser._actions for option in action.option_strings}
    groups = {action.dest: group.title for group in parser._action_groups for action in group._group_actions}
    assert list(GROUPS) == [g.title for g in parser._action_groups if g.title in GROUPS]
    for f in dataclasses.fields(TrainConfig):
        action = by_flag[flag(f.name)]
        assert action.help.startswith(f.metadata["help"].replace("%", "%%")), f.name
        assert groups[f.name] == f.metadata["group"], f.name
        if f.metadata["choices"]:
            assert tuple(action.choices) == f.metadata["choices"], f.name
        if f.default not in (None, ""):
            assert "(default: " in action.help, f.name
        else:
            assert "unset" in action.help or "required" in action.help, f.name  # what leaving it out does


@pytest.mark.parametrize(
    "command",
    [("detect", "train"), ("detect", "evaluate"), ("detect", "predict"), ("serve",), ("evaluate",), ("predict",)],
)
def test_commands_flags_are_generated_from_their_settings_fields(command):
    from resnets.cli import detect, predict, serve
    from resnets.detection.config import DetectEvaluateOptions, DetectionTrainConfig, DetectPredictOptions
    from resnets.evaluation.options import EvaluateOptions, PredictOptions
    from resnets.serve.options import ServeOptions

    cls, groups = {
        ("detect", "train"): (DetectionTrainConfig, detect.TRAIN_GROUPS),
        ("detect", "evaluate"): (DetectEvaluateOptions, {"data": "", **detect.RUN_GROUPS}),
        ("detect", "predict"): (DetectPredictOptions, {"output": "", **detect.RUN_GROUPS}),
        ("serve",): (ServeOptions, serve.GROUPS),
        ("evaluate",): (EvaluateOptions, {"data": "", **predict.VIEW_GROUPS}),
        ("predict",): (PredictOptions, predict.VIEW_GROUPS),
    }[command]
    parser = dict(parsers(build_parser()))[command]
    by_flag = {option: action for action in parser._actions for option in action.option_strings}
    group_of = {action.dest: group.title for group in parser._action_groups for action in group._group_actions}
    settings = [f for f in dataclasses.fields(cls) if "help" in f.metadata]
    assert len(settings) >= 4
    for f in settings:
        action = by_flag[flag(f.name)]
        assert action.help.startswith(f.metadata["help"].replace("%", "%%")), f.name
        assert group_of[f.name] == f.metadata["group"] and f.metadata["group"] in groups, f.name
        assert tuple(action.choices or ()) == tuple(f.metadata["choices"]), f.name


@pytest.mark.parametrize(
    ("option", "default"),
    [
        ("--lr", "(default: 0.1, the cifar10-paper recipe's)"),
        ("--batch-size", "(default: 128, the cifar10-paper recipe's)"),
        ("--iters", "(default: 64000, the cifar10-paper recipe's)"),
        ("--milestones", "(default: 0.5,0.75, the cifar10-paper recipe's)"),
        ("--val-split", "(default: 5000, the cifar10-paper recipe's)"),
        ("--flip", "(default: on, the cifar10-paper recipe's)"),
        ("--seed", "(default: 0)"),
        ("--log-every", "(default: 20)"),
        ("--precision", "(default: auto)"),
        ("--checkpoint-minutes", "(default: 10.0)"),
    ],
)
def test_train_help_shows_the_recipes_default(capsys, option, default):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    entries: dict[str, str] = {}  # first option of each entry of the printed help -> its text, unwrapped
    for line in capsys.readouterr().out.split("\n\n", 1)[1].splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif line.startswith("    ") and entries:
            entries[current] += " " + line.strip()
    assert default in " ".join(entries[option].split()), entries[option]


def test_train_help_says_how_the_batch_size_rescales_the_schedule():
    by_flag = {option: action for action in train_parser()._actions for option in action.option_strings}
    assert "multiplies --lr and --warmup-lr by k and divides --iters by k" in by_flag["--batch-size"].help
    assert all("rescaled with --batch-size" in by_flag[option].help for option in ("--lr", "--warmup-lr", "--iters"))


def test_a_choice_outside_the_fixed_ones_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--out", "x", "--device", "tpu"])
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"val_split": -1}, "--val-split -1 must be non-negative"),
        ({"lr": float("nan")}, "--lr nan is not a finite number"),
        ({"warmup_until_error": 2.0}, "--warmup-until-error 2.0 must be a fraction"),
        ({"lr_decay": 0.0}, "--lr-decay 0.0 must be in (0, 1]"),
        ({"eval_batch_size": 0}, "--eval-batch-size 0 must be positive"),
        ({"checkpoint_minutes": 0}, "--checkpoint-minutes 0.0 must be positive"),
        ({"precision": "int8"}, "--precision 'int8' is not one of auto, fp32, bf16, fp16"),
        ({"shortcut": "D"}, "--shortcut 'D' is not one of A, B, C"),
    ],
)
def test_validation_errors_name_the_flag_not_the_field(values, message):
    from resnets.core.errors import UserError

    with pytest.raises(UserError) as info:
        TrainConfig(**values)
    assert str(info.value).startswith(message), str(info.value)


def test_a_val_split_too_large_for_the_data_names_the_flag(cifar_png, tmp_path, capsys):
    # The shipped slice has 120 training images: the recipe's 5000 cannot be held out.
    argv = ["train", "--data", str(cifar_png), "--out", str(tmp_path / "run"), "--iters", "1", "--batch-size", "20"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--val-split 5000 must be at least 0 and below the 120 images" in err and "val_size" not in err, err


def test_list_parses_no_recipe_file(monkeypatch, capsys):
    from resnets.training import config

    monkeypatch.setattr(config.tomllib, "loads", lambda text: pytest.fail("a recipe was parsed"))
    assert main(["list"]) == 0
    assert "resnet20" in capsys.readouterr().out
