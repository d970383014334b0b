"""`resnets experiment`, `analyze` and `report`: the paper's experiments and their outputs."""

from __future__ import annotations

import argparse
import dataclasses

from ..core.errors import UserError
from .flags import add_config_flag
from .registry import command

# Recipe fields an experiment's flags override; a recipe file of your own (--recipe FILE.toml) sets any other.
EXPERIMENT_OVERRIDES = ("iters", "seed", "batch_size", "val_split", "eval_every", "device", "precision")


def _depth_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of depths such as 20,32,44") from None


def _add_experiment(p: argparse.ArgumentParser) -> None:
    from ..experiments.family import FAMILIES
    from ..training.config import RECIPES_DIR, TrainConfig, recipe_values

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    in_recipes = {key for path in RECIPES_DIR.glob("*.toml") for key in recipe_values(str(path))}
    p.description = "Reproduce an experiment of the paper: train its nets (resumable), write its figure and table."
    sub = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    experiments = {
        "degradation": "Fig. 6 (CIFAR-10) or Fig. 4 (ImageNet): the plain and the residual net of each depth",
        "table6": "Table 6: the CIFAR-10 ResNets, their parameters and error next to the paper's",
    }
    for name, about in experiments.items():
        resumable = "Finished nets are skipped, interrupted ones resume."
        e = sub.add_parser(name, help=about, description=f"{about}. {resumable}")
        if name == "degradation":
            e.add_argument("--family", choices=tuple(FAMILIES), default="cifar", help="data set and recipe")
        e.add_argument("--depths", type=_depth_list, metavar="D,D,...", help="depths to train (default: the paper's)")
        e.add_argument("--data", required=True, help="data folder (CIFAR-10 python format or image folders)")
        e.add_argument("--out", required=True, help="experiment folder: OUT/<model>/ per net, results.md, figures")
        e.add_argument("--recipe", help="recipe name or .toml file (default: the family's)")
        e.add_argument(
            "--reuse",
            metavar="DIR",
            help="another experiment's folder: nets started there go on there, not trained twice "
            "(e.g. Fig. 6's ResNets from the table6 folder)",
        )
        for name in EXPERIMENT_OVERRIDES:  # the same for every net, with train's help
            field = fields[name]
            add_config_flag(e, TrainConfig, field, "the recipe's" if name in in_recipes else str(field.default))


@command("experiment", _add_experiment)
def run_experiment(args: argparse.Namespace) -> None:
    """Reproduce an experiment of the paper (degradation: Fig. 6/4; table6: Table 6); resumable."""
    from pathlib import Path

    from ..experiments import degradation, table6

    overrides = {k: getattr(args, k) for k in EXPERIMENT_OVERRIDES if getattr(args, k) is not None}
    reuse = Path(args.reuse) if args.reuse else None
    if reuse is not None and not (reuse / "experiment.json").is_file():
        raise UserError(f"--reuse {args.reuse} holds no experiment.json; pass an earlier experiment's --out")
    settings = dict(data=args.data, out=Path(args.out), recipe=args.recipe, reuse=reuse, **overrides)
    if args.experiment == "degradation":
        results = degradation(args.family, args.depths, **settings)
    else:
        results = table6(args.depths, **settings)
    print(f"wrote {results}")


def _add_analyze(p: argparse.ArgumentParser) -> None:
    from ..training.config import DEVICES

    p.description = "Analyses of trained models."
    sub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    about = "Fig. 7: std of each 3x3 layer's output (after BN, before the addition and ReLU), per model"
    r = sub.add_parser("responses", help=about, description=about + ".")
    r.add_argument("--checkpoint", action="append", required=True, help="run folder, .pt or .safetensors; repeat")
    r.add_argument("--data", required=True, help="data folder (CIFAR-10 python format or image folders)")
    r.add_argument(
        "--split", default="val", choices=("val", "test"), help="val: each run's held-out split (default); test"
    )
    r.add_argument("--out", required=True, help="folder for responses.csv, responses.png and results.md")
    r.add_argument("--batch-size", type=int, default=500, help="images per forward pass (default 500)")
    r.add_argument("--device", default="auto", choices=DEVICES, help="where to run; auto: cuda if there is a GPU")
    r.add_argument("--force", action="store_true", help="replace an earlier analysis (or other files) in --out")


@command("analyze", _add_analyze)
def run_analyze(args: argparse.Namespace) -> None:
    """Analyse trained models (responses: Fig. 7's layer responses)."""
    from pathlib import Path

    from ..analysis.responses import WRITES, checkpoint_responses, save_responses
    from ..core.atomic import check_output_folder, check_outside, check_writable

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size} must be a positive number of images")
    out = Path(args.out)
    check_writable(out, f"--out {args.out}")  # before the forward passes it would waste
    check_outside(out, [Path(args.data)])
    if not args.force:
        check_output_folder(out, WRITES, ours=False, fix="pass --force to replace them")
    responses = checkpoint_responses(
        args.checkpoint, args.data, args.split, batch_size=args.batch_size, device=args.device
    )
    for path in save_responses(responses, out, args.split):
        print(f"wrote {path}")


def _add_report(p: argparse.ArgumentParser) -> None:
    p.description = "One markdown report of runs and experiments: Fig. 4-style curves, tables, links to the figures."
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, experiment folders or `analyze` folders")
    p.add_argument("--out", required=True, help="the report (markdown); its curves go beside it as OUT-curves.png")
    p.add_argument("--force", action="store_true", help="replace --out even if it is not an earlier report")


@command("report", _add_report)
def run_report(args: argparse.Namespace) -> None:
    """Write a markdown report of runs and experiments, with training curves."""
    from pathlib import Path

    from ..core.atomic import check_output
    from ..experiments.report import is_report, write_report

    check_output(Path(args.out), force=args.force, ours=is_report)
    for path in write_report([Path(r) for r in args.runs], Path(args.out)):
        print(f"wrote {path}")
