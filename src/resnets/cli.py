"""The `resnets` command line: one subcommand per job, each a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from .errors import UserError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}


def command(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `run(args)` as the subcommand `name`, with `add_arguments(parser)` declaring its options."""

    def register(run: Callable[[argparse.Namespace], None]):
        COMMANDS[name] = (add_arguments, run)
        return run

    return register


def _model_options(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("shortcut", "stride_on") if getattr(args, k, None) is not None}


def _add_list(p: argparse.ArgumentParser) -> None:
    p.description = "Print every model name, one per line."


@command("list", _add_list)
def run_list(args: argparse.Namespace) -> None:
    from .models import list_models

    print("\n".join(list_models()))


def _add_summary(p: argparse.ArgumentParser) -> None:
    p.description = "Parameters and multiply-adds per stage, as the paper counts them."
    p.add_argument("model", nargs="?", help="model name (see `resnets list`)")
    p.add_argument("--all", action="store_true", help="every network of the paper next to its reported figures")
    p.add_argument("--input-size", type=int, help="image side in pixels (default: 224 ImageNet, 32 CIFAR)")
    p.add_argument("--shortcut", choices=("A", "B", "C"), help="shortcut option of Sec. 3.3")
    p.add_argument("--stride-on", choices=("1x1", "3x3"), help="bottleneck conv that subsamples")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--markdown", action="store_true", help="with --all: a markdown table")


@command("summary", _add_summary)
def run_summary(args: argparse.Namespace) -> None:
    from .analysis.complexity import model_complexity
    from .analysis.summary import format_stages, paper_table

    if args.all:
        print(paper_table(_model_options(args), markdown=args.markdown))
        return
    if not args.model:
        raise UserError("summary needs a MODEL name (see `resnets list`) or --all")
    if args.input_size is not None and args.input_size < 1:
        raise UserError(f"--input-size {args.input_size} must be a positive number of pixels")
    try:
        c = model_complexity(args.model, args.input_size, **_model_options(args))
    except ValueError as e:
        raise UserError(str(e)) from None
    print(json.dumps(c.to_dict(), indent=2) if args.json else format_stages(c))


def _add_train(p: argparse.ArgumentParser) -> None:
    import dataclasses
    import types
    import typing

    from .training.config import TrainConfig

    p.description = "Train a model with a recipe of the paper; every recipe field can be overridden."
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag, hint = "--" + f.name.replace("_", "-"), hints[f.name]
        union = isinstance(hint, types.UnionType)
        kind = [a for a in typing.get_args(hint) if a is not type(None)][0] if union else hint
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            p.add_argument(
                flag,
                type=lambda text, item=item: [item(v) for v in text.split(",") if v],
                default=None,
                metavar="A,B,...",
            )
        else:
            p.add_argument(flag, type=kind, default=None)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest valid checkpoint")


@command("train", _add_train)
def run_train(args: argparse.Namespace) -> None:
    """Train (or resume) a run; writes checkpoints and metrics.csv into --out."""
    import json
    from pathlib import Path

    from .data import download_cifar10
    from .training.config import TrainConfig, resolve_config
    from .training.distributed import process_group
    from .training.loop import train

    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("command", "run", "resume")}
    if not given.get("out"):
        raise UserError("train needs --out RUN, the folder for checkpoints and metrics")
    saved = Path(given["out"]) / "config.json"
    if args.resume and saved.is_file():
        config = TrainConfig.from_dict({**json.loads(saved.read_text()), **given}, source=str(saved))
    else:
        config = resolve_config(given)
    with process_group(config.device) as group:  # under torchrun; a no-op for a single process
        if not config.data and config.augmentation == "imagenet":
            raise UserError(f"recipe {config.recipe} needs --data DIR holding DIR/train/<class>/<image> (as ImageNet)")
        if not config.data:
            with group.main_first():  # one download per node; the other processes find it there
                config.data = str(download_cifar10(default_data_root(), progress=group.is_main))
        train(config, resume=args.resume)


def default_data_root():
    """Where downloaded data sets go: $RESNETS_DATA, else ~/.cache/resnets/data."""
    import os
    from pathlib import Path

    return Path(os.environ.get("RESNETS_DATA", Path.home() / ".cache" / "resnets" / "data"))


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Top-1 and top-5 error of a trained model, or of an ensemble (softmax averaged, Table 5), under the test "
        "views of Sec. 3.4; architecture and normalisation come from the files."
    )
    p.add_argument(
        "--checkpoint", action="append", default=[], help="run folder, .pt or resnets .safetensors; repeat: ensemble"
    )
    p.add_argument("--weights", help="weights to evaluate: a .pth/.safetensors file or torchvision-v1 (with --model)")
    p.add_argument("--model", help="with --weights: the network to build (see `resnets list`)")
    p.add_argument("--shortcut", choices=("A", "B", "C"), help="with --weights: shortcut option of Sec. 3.3")
    p.add_argument("--stride-on", choices=("1x1", "3x3"), help="with --weights: bottleneck conv that subsamples")
    p.add_argument("--data", required=True, help="data folder (CIFAR-10 python format or image folders)")
    p.add_argument(
        "--split",
        default="val",
        choices=("val", "test", "train"),
        help="val: the run's held-out split of train, else DATA/val (default); test; train: the rest of train",
    )
    p.add_argument("--val-labels", help="labels file of a flat DATA/val folder (`<file> <class>` lines or Kaggle csv)")
    p.add_argument(
        "--views",
        help="comma-separated: full, center, 10crop, multiscale (default: full for CIFAR runs, center otherwise)",
    )
    p.add_argument("--resize", type=int, help="center/10crop: shorter side before cropping (default: the run's, 256)")
    p.add_argument("--crop", type=int, help="center/10crop: crop side (default: the run's, 224)")
    p.add_argument("--scales", default="224,256,384,480,640", help="multiscale: shorter sides, comma-separated")
    p.add_argument("--limit", type=int, help="evaluate only N images, always the same ones, spread over the split")
    p.add_argument("--batch-size", type=int, default=256, help="crops per forward pass")
    p.add_argument("--workers", type=int, help="decoding processes (default: one per CPU core, at most 8)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--json", action="store_true", help="print one JSON object with every view's errors and seconds")


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag} {text!r} is not a comma-separated list of integers such as 224,256,384") from None


@command("evaluate", _add_evaluate)
def run_evaluate(args: argparse.Namespace) -> None:
    """Evaluate checkpoints (an ensemble) or weights on a split under test views; prints errors in percent."""
    from pathlib import Path

    from .evaluation.protocol import default_views, evaluate_models, format_result, load_models

    scales = _int_list(args.scales, "--scales")
    views = [v.strip() for v in args.views.split(",") if v.strip()] if args.views is not None else None
    if views == []:
        raise UserError("--views is empty; pass e.g. --views center,10crop,multiscale")
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers {args.workers} must be 0 (decode here) or more")
    models = load_models(args.checkpoint, args.weights, args.model, **_model_options(args))
    names = [*args.checkpoint, *([f"{args.weights} ({args.model})"] if args.weights else [])]
    result = evaluate_models(
        models,
        names,
        args.data,
        args.split,
        views or default_views(models),
        resize=args.resize,
        crop=args.crop,
        scales=scales,
        limit=args.limit,
        labels_file=Path(args.val_labels) if args.val_labels else None,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        progress=True,  # on stderr: --json output on stdout stays clean
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        name = (
            models[0].name if len(models) == 1 else f"ensemble of {len(models)} ({', '.join(m.name for m in models)})"
        )
        print(format_result(result, name))


def _add_export(p: argparse.ArgumentParser) -> None:
    p.description = "Export a trained model's weights (torchvision key names) with its metadata."
    p.add_argument("--checkpoint", required=True, help="run folder or .pt checkpoint")
    p.add_argument("--format", default="safetensors", choices=("safetensors",))
    p.add_argument("--out", required=True, help="output file")


@command("export", _add_export)
def run_export(args: argparse.Namespace) -> None:
    """Export weights to safetensors."""
    from pathlib import Path

    from .weights import export_safetensors, load_trained

    export_safetensors(load_trained(args.checkpoint), Path(args.out))
    print(f"wrote {args.out}")


# Recipe fields an experiment's flags override; a recipe file of your own (--recipe FILE.toml) sets any other.
EXPERIMENT_OVERRIDES = ("iters", "seed", "batch_size", "val_split", "eval_every", "device", "precision")


def _depth_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of depths such as 20,32,44") from None


def _add_experiment(p: argparse.ArgumentParser) -> None:
    from .experiments.family import FAMILIES

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
        e.add_argument("--iters", type=int, help="iterations per net (default: the recipe's)")
        e.add_argument("--seed", type=int, help="the same seed for every net (default: the recipe's)")
        e.add_argument("--batch-size", type=int)
        e.add_argument("--val-split", type=int, help="held-out validation images (0: validate on test)")
        e.add_argument("--eval-every", type=int, help="iterations between validations (the curves' points)")
        e.add_argument("--device", choices=("auto", "cpu", "cuda"))
        e.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"))


@command("experiment", _add_experiment)
def run_experiment(args: argparse.Namespace) -> None:
    """Reproduce an experiment of the paper (degradation: Fig. 6/4; table6: Table 6); resumable."""
    from pathlib import Path

    from .experiments import degradation, table6

    overrides = {k: getattr(args, k) for k in EXPERIMENT_OVERRIDES if getattr(args, k) is not None}
    settings = dict(data=args.data, out=Path(args.out), recipe=args.recipe, **overrides)
    if args.experiment == "degradation":
        results = degradation(args.family, args.depths, **settings)
    else:
        results = table6(args.depths, **settings)
    print(f"wrote {results}")


def _add_analyze(p: argparse.ArgumentParser) -> None:
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
    r.add_argument("--batch-size", type=int, default=500)
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


@command("analyze", _add_analyze)
def run_analyze(args: argparse.Namespace) -> None:
    """Analyse trained models (responses: Fig. 7's layer responses)."""
    from pathlib import Path

    from .analysis.responses import checkpoint_responses, save_responses

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size} must be a positive number of images")
    responses = checkpoint_responses(
        args.checkpoint, args.data, args.split, batch_size=args.batch_size, device=args.device
    )
    for path in save_responses(responses, Path(args.out), args.split):
        print(f"wrote {path}")


def _add_report(p: argparse.ArgumentParser) -> None:
    p.description = "One markdown report of runs and experiments: Fig. 4-style curves, tables, links to the figures."
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, experiment folders or `analyze` folders")
    p.add_argument("--out", required=True, help="the report (markdown); its curves go beside it as OUT-curves.png")


@command("report", _add_report)
def run_report(args: argparse.Namespace) -> None:
    """Write a markdown report of runs and experiments, with training curves."""
    from pathlib import Path

    from .experiments.report import write_report

    for path in write_report([Path(r) for r in args.runs], Path(args.out)):
        print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per registered command."""
    parser = argparse.ArgumentParser(prog="resnets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=(run.__doc__ or "").strip() or None)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `resnets` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as e:
        print(f"resnets {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`; not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"resnets {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
