"""Resumable experiments: several runs with one recipe and seed, each in OUT/<model>/, finished ones skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.output import write_text
from ..checkpoints import FINAL, LAST, latest_checkpoint
from ..training.config import MECHANICS, TrainConfig, read_saved_config, resolve_config
from ..training.loop import train
from ..weights import export_safetensors, load_trained

EXPERIMENT_FILE = "experiment.json"


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

    def member_config(self, model: str) -> TrainConfig:
        """The resolved training configuration of one member, training into OUT/<model>/.

        A member already trained (a checkpoint or its final weights) continues under resolve_config, which refuses
        settings other than the run's (only MECHANICS, e.g. the data folder, may differ); one without starts over.
        """
        values = {**self.overrides, "recipe": self.recipe, "model": model, "data": self.data}
        config = resolve_config({**values, "out": str(self.out / model)})
        path = Path(config.out) / "config.json"
        if not path.is_file() or not (any(path.parent.glob("*.pt")) or (path.parent / FINAL).is_file()):
            return config
        saved = read_saved_config(path, "delete that member folder to retrain it")
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
        train(config, resume=found is not None)
    export_safetensors(load_trained(run / LAST), run / FINAL)
    print(f"{position} {config.model}: finished; final weights in {run / FINAL}")


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
        "recipe": experiment.recipe,
        "iters": configs[0].iters,
        "seed": configs[0].seed,
        **given,
    }
    write_text(experiment.out / EXPERIMENT_FILE, json.dumps(settings, indent=2) + "\n")
    for i, config in enumerate(configs, 1):
        train_member(config, f"[{i}/{len(configs)}]")
    return [Path(c.out) for c in configs]
