"""`resnets serve`: a trained model as an HTTP service with a web page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

from ..core.errors import UserError
from .predict import add_model_source, predictor_from
from .registry import command, int_list, model_options, normalization

UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def byte_size(text: str) -> int:
    """'10MB' -> 10_000_000, '512KiB' -> 524_288, '1000' -> 1000."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS or float(match.group(1)) <= 0:
        raise UserError(f"--max-bytes {text!r} is not a size such as 10MB, 512KiB or 1000000")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


# Each numeric flag's range (None: no upper bound): a value outside it, NaN or infinity is refused in one line.
RANGES = {
    "port": (0, 65535),
    "max_pixels": (1, None),
    "max_images": (1, 1000),
    "max_decoded_pixels": (1, None),
    "max_batch": (1, 4096),
    "batch_wait_ms": (0, 1000),
    "top_k": (1, None),
    "workers": (1, 256),
    "max_connections": (1, 100_000),
    "read_timeout": (0.1, 3600),
    "shutdown_timeout": (0, 3600),
}


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Serve a trained model over HTTP: GET / (a web page: drop images, see their top-5), POST /predict (a raw "
        "image body or multipart files; the JSON of `predict --json`), GET /health, GET /info. There is no "
        "authentication: it binds this machine only unless --host says otherwise. Stops on SIGTERM or Ctrl-C, "
        "waiting at most --shutdown-timeout for the requests in flight."
    )
    add_model_source(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free one)")
    p.add_argument("--max-bytes", default="10MB", help="largest request body (413 past it), e.g. 10MB or 512KiB")
    p.add_argument("--max-pixels", type=int, default=50_000_000, help="largest image, in pixels, read from its header")
    p.add_argument("--max-images", type=int, default=64, help="images in one request (413 past it)")
    p.add_argument(
        "--max-decoded-pixels",
        type=int,
        default=50_000_000,
        help="decoded pixels held at once over all requests: requests wait their turn; one with more is a 413",
    )
    p.add_argument("--max-batch", type=int, default=32, help="images per forward pass when requests arrive together")
    p.add_argument("--batch-wait-ms", type=float, default=2.0, help="wait after a batch's first image for more, in ms")
    p.add_argument("--top-k", type=int, default=5, help="classes per image unless a request asks ?top_k=N")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own copy of the model")
    p.add_argument("--max-connections", type=int, default=64, help="open connections a process serves; past them, 503")
    p.add_argument("--read-timeout", type=float, default=30.0, help="seconds for a request's head, then its body")
    p.add_argument(
        "--shutdown-timeout", type=float, default=5.0, help="seconds SIGTERM waits for requests in flight, then ends"
    )


def serve_settings(args: argparse.Namespace):
    """The ServeSettings of the flags, each checked against RANGES (and --max-pixels against --max-decoded-pixels)."""
    from ..serve.app import ServeSettings

    for name, (low, high) in RANGES.items():
        value = getattr(args, name)
        if not (math.isfinite(value) and low <= value and (high is None or value <= high)):
            within = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise UserError(f"--{name.replace('_', '-')} {value} must be a number {within}")
    if args.max_pixels > args.max_decoded_pixels:
        limit = args.max_decoded_pixels
        raise UserError(f"--max-pixels {args.max_pixels} must not exceed --max-decoded-pixels {limit}")
    return ServeSettings(
        max_bytes=byte_size(args.max_bytes),
        max_pixels=args.max_pixels,
        max_images=args.max_images,
        max_decoded_pixels=args.max_decoded_pixels,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        top_k=args.top_k,
        read_timeout_s=args.read_timeout,
    )


@command("serve", _add_serve)
def run_serve(args: argparse.Namespace) -> None:
    """Serve a model over HTTP with a web page (GET /, POST /predict, GET /health, GET /info)."""
    try:
        import uvicorn  # noqa: F401 (only whether it is installed)
    except ImportError:
        raise UserError("serve needs FastAPI and uvicorn: pip install 'resnets[deploy]'") from None
    from ..serve.app import SETTINGS_ENV, create_app
    from ..serve.server import ServeConfig, bind, reachable_from_elsewhere, serve

    settings = serve_settings(args)
    predictor = predictor_from(args)  # loaded here first, so a bad checkpoint is one line before anything binds
    sock = bind(args.host, args.port)
    options = dict(
        workers=args.workers,
        log_level="warning",
        timeout_graceful_shutdown=args.shutdown_timeout,
        limit_concurrency=args.max_connections + 1,  # uvicorn counts the connection it answers 503 among them
    )
    if args.workers == 1:
        config = ServeConfig(create_app(predictor, settings), settings.read_timeout_s, **options)
    else:
        os.environ[SETTINGS_ENV] = json.dumps(_worker_spec(args, settings))  # inherited by the worker processes
        config = ServeConfig("resnets.serve.app:app_from_environment", settings.read_timeout_s, factory=True, **options)
    if reachable_from_elsewhere(sock):
        print(
            f"resnets serve: warning: --host {args.host} lets other machines reach this service, which has no "
            "authentication; put it behind an authenticating proxy, or bind 127.0.0.1",
            file=sys.stderr,
        )
    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address is bracketed in a URL (RFC 3986)
    print(f"serving {predictor.info()['model']} on http://{host}:{sock.getsockname()[1]}/", flush=True)
    serve(config, sock)
    print("resnets serve: stopped", file=sys.stderr)


def _worker_spec(args: argparse.Namespace, settings) -> dict:
    """What each `--workers N` process needs to load the predictor and build the app."""
    return {
        "predictor": {
            "checkpoint": args.checkpoint,
            "model": args.model,
            "weights": args.weights,
            "onnx": args.onnx,
            "options": model_options(args),
            "view": args.views,
            "resize": args.resize,
            "crop": args.crop,
            "scales": list(int_list(args.scales, "--scales")),
            "batch_size": args.batch_size,
            "device": args.device,
            "precision": args.precision,
            "backend": args.backend,
            "normalization": _json(normalization(args)),
            "calibration": args.calibration,
            "calibration_images": args.calibration_images,
        },
        "settings": vars(settings),
    }


def _json(value):
    """A Normalization as its plain values (None stays None), for the workers' JSON."""
    return None if value is None else value.to_json()
