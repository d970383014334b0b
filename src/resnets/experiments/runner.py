"""Resumable experiments: several runs with one recipe and seed, each in OUT/<model>/, finished ones skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.output import write_text
from ..checkpoints import FINAL, LAST, latest_checkpoint
from ..errors import UserError
from ..training.config import TrainConfig, flag, resolve_config
from ..training.loop import train
from ..weights import export_safetensors, load_trained

# Run mechanics, which may differ between the sessions or machines one experiment spans (a GPU here, a CPU
# there, the data in another folder). Every other field of a member's config.json must match the experiment.
MECHANICS = frozenset(
    {
        "data",
        "out",
        "device",
        "precision",
        "compile",
        "deterministic",
        "channels_last",
        "eval_batch_size",
        "log_every",
        "tensorboard",
        "skip_bad_images",
        "checkpoint_minutes",
    }
)
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
        """The resolved training configuration of one member, training into OUT/<model>/."""
        values = {**self.overrides, "recipe": self.recipe, "model": model, "data": self.data}
        return resolve_config({**values, "out": str(self.out / model)})


def check_agrees(config: TrainConfig) -> None:
    """Refuse to continue a member that was trained with other settings (one without a checkpoint starts over)."""
    path = Path(config.out) / "config.json"
    if not path.is_file() or not (any(path.parent.glob("*.pt")) or (path.parent / FINAL).is_file()):
        return
    try:
        saved = TrainConfig.from_dict(json.loads(path.read_text()), source=str(path)).to_dict()
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}); delete that member folder to retrain it") from None
    for key, wanted in config.to_dict().items():
        if key not in MECHANICS and saved[key] != wanted:
            raise UserError(
                f"{path} was trained with {flag(key)} {saved[key]} but this experiment asks for {flag(key)} {wanted}; "
                "rerun with the same settings or choose another --out"
            )


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
    configs = [experiment.member_config(model) for model in experiment.members]
    for config in configs:  # every member is checked before any trains: a mismatch wastes no time
        check_agrees(config)
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
