"""Resumable experiments: several runs with one recipe and seed, each in OUT/<model>/, finished ones skipped."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.output import RESULTS_FILE, write_text
from ..core.atomic import check_output_folder, check_outside
from ..core.checkpoints import FINAL, LAST, latest_checkpoint
from ..core.errors import UserError, parse_json
from ..engine.run import config_path, read_config
from ..training.config import MECHANICS, TrainConfig, resolve_config
from ..training.loop import train
from ..weights.files import export_safetensors, load_trained

EXPERIMENT_FILE = "experiment.json"
KEEP_HINT = "move those files away first (an experiment never replaces files it did not write)"


@dataclass
class Experiment:
    """What an experiment trains: `members` (model names) with one recipe and the same `overrides`."""

    name: str
    family: str
    depths: list[int]
    members: list[str]
    recipe: str
    data: str
    out: Path
    overrides: dict[str, Any] = field(default_factory=dict)  # recipe fields, e.g. iters, seed, batch_size
    writes: tuple[str, ...] = (RESULTS_FILE,)  # files of its own in OUT, beside experiment.json
    reuse: Path | None = None  # another experiment's folder: members started there go on there

    def member_folder(self, model: str) -> Path:
        """The folder the experiment in REUSE has for `model`, if it lists it (so no net is trained twice, e.g.
        Fig. 6's ResNets are Table 6's), else OUT/<model>/."""
        if self.reuse is not None:
            for folder in experiment_members(self.reuse):
                if folder.name == model:
                    return folder
        return self.out / model

    def member_config(self, model: str) -> TrainConfig:
        """The resolved training configuration of one member, training into its member_folder.

        A member already trained (a checkpoint or its final weights) continues under resolve_config, which refuses
        settings other than the run's (only MECHANICS, e.g. the data folder, may differ); one without starts over.
        """
        values = {**self.overrides, "recipe": self.recipe, "model": model, "data": self.data}
        config = resolve_config({**values, "out": str(self.member_folder(model))})
        path = config_path(config.out)
        if not path.is_file() or not (any(path.parent.glob("*.pt")) or (path.parent / FINAL).is_file()):
            return config
        saved = read_config(path, "delete that member folder to retrain it")
        return resolve_config(config.to_dict(), saved, source=str(path))


def train_member(config: TrainConfig, position: str) -> None:
    """Train one member: skip it if finished, resume it from its newest valid checkpoint if interrupted; a finished
    member's final weights are exported to RUN/final.safetensors (after which its checkpoints may be deleted)."""
    run = Path(config.out)
    if (run / FINAL).is_file():
        print(f"{position} {config.model}: finished ({run / FINAL}), skipped")
        return
    found = latest_checkpoint(run) if run.is_dir() else None
    if not (found and found[1]["iteration"] >= config.iters):
        print(f"{position} {config.model}: training into {run}")
        train(config, resume=found is not None, replace_hint=KEEP_HINT)
    export_safetensors(load_trained(run / LAST), run / FINAL)
    print(f"{position} {config.model}: finished; final weights in {run / FINAL}")


def experiment_members(folder: Path) -> list[Path]:
    """The member run folders that FOLDER/experiment.json lists (another experiment's, where reused); a damaged file
    is one line naming it."""
    path = folder / EXPERIMENT_FILE
    try:
        settings = parse_json(path.read_text())
        members = settings.get("folders", settings["members"])  # relative paths; older files: names in FOLDER
        if not (isinstance(members, list) and all(isinstance(m, str) and m for m in members)):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UserError(
            f"{path} is damaged (not an experiment's JSON with a list of members); rerun the experiment to rewrite "
            "it, or restore it from version control"
        ) from None
    return [folder / m for m in members]


def _is_experiment(path: Path, name: str) -> bool:
    """Whether `path` is the experiment.json of an earlier run of experiment `name`."""
    try:
        return parse_json(path.read_text()).get("experiment") == name
    except (OSError, ValueError, AttributeError):
        return False


def run_members(experiment: Experiment) -> list[Path]:
    """Train every member in turn (resumable); returns their run folders."""
    # Every member is resolved (and checked against what it was trained with) before any trains: a mismatch
    # wastes no time.
    configs = [experiment.member_config(model) for model in experiment.members]
    given = {k: v for k, v in experiment.overrides.items() if k not in MECHANICS}
    settings = {
        "experiment": experiment.name,
        "family": experiment.family,
        "depths": experiment.depths,
        "members": experiment.members,
        "folders": [os.path.relpath(c.out, experiment.out) for c in configs],
        "recipe": experiment.recipe,
        "iters": configs[0].iters,
        "seed": configs[0].seed,
        **given,
    }
    check_outside(experiment.out, [Path(experiment.data)])
    ours = _is_experiment(experiment.out / EXPERIMENT_FILE, experiment.name)
    check_output_folder(experiment.out, (EXPERIMENT_FILE, *experiment.writes), ours=ours, fix=KEEP_HINT)
    write_text(experiment.out / EXPERIMENT_FILE, json.dumps(settings, indent=2) + "\n")
    for i, config in enumerate(configs, 1):
        train_member(config, f"[{i}/{len(configs)}]")
    return [Path(c.out) for c in configs]
