"""`resnets serve`: a trained model as an HTTP service with a web page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys

from ..errors import UserError
from .predict import add_model_source, predictor_from
from .registry import command, int_list, model_options

UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def byte_size(text: str) -> int:
    """'10MB' -> 10_000_000, '512KiB' -> 524_288, '1000' -> 1000."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS or float(match.group(1)) <= 0:
        raise UserError(f"--max-bytes {text!r} is not a size such as 10MB, 512KiB or 1000000")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Serve a trained model over HTTP: GET / (a web page: drop images, see their top-5), POST /predict (a raw "
        "image body or multipart files; the JSON of `predict --json`), GET /health, GET /info. Stops cleanly on "
        "SIGTERM or Ctrl-C."
    )
    add_model_source(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--max-bytes", default="10MB", help="largest request body (413 past it), e.g. 10MB or 512KiB")
    p.add_argument("--max-pixels", type=int, default=50_000_000, help="largest image, in pixels (decompression bombs)")
    p.add_argument("--max-batch", type=int, default=32, help="images per forward pass when requests arrive together")
    p.add_argument("--batch-wait-ms", type=float, default=2.0, help="wait after a batch's first image for more, in ms")
    p.add_argument("--top-k", type=int, default=5, help="classes per image unless a request asks ?top_k=N")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own copy of the model")


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM or Ctrl-C ends the process with 0 after the graceful shutdown.

        uvicorn re-raises the signal once it has shut down, so the process would die of it (exit -15); a service
        stopped on purpose has not failed.
        """

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


@command("serve", _add_serve)
def run_serve(args: argparse.Namespace) -> None:
    """Serve a model over HTTP with a web page (GET /, POST /predict, GET /health, GET /info)."""
    try:
        import uvicorn
    except ImportError:
        raise UserError("serve needs FastAPI and uvicorn: pip install 'resnets[deploy]'") from None
    from ..serve.app import SETTINGS_ENV, ServeSettings, create_app

    for flag, value in (("--max-pixels", args.max_pixels), ("--max-batch", args.max_batch), ("--top-k", args.top_k)):
        if value < 1:
            raise UserError(f"{flag} {value} must be at least 1")
    if args.workers < 1 or not 0 <= args.port < 65536 or args.batch_wait_ms < 0:
        raise UserError("--workers must be at least 1, --port within 0-65535 and --batch-wait-ms not negative")
    settings = ServeSettings(
        max_bytes=byte_size(args.max_bytes),
        max_pixels=args.max_pixels,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        top_k=args.top_k,
    )
    predictor = predictor_from(args)  # loaded here first, so a bad checkpoint is one line before anything binds
    print(f"serving {predictor.info()['model']} on http://{args.host}:{args.port}/", flush=True)
    if args.workers == 1:
        config = uvicorn.Config(create_app(predictor, settings), host=args.host, port=args.port, log_level="warning")
        _server_class()(config).run()
        print("resnets serve: stopped", file=sys.stderr)
        return
    spec = {
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
        },
        "settings": vars(settings),
    }
    os.environ[SETTINGS_ENV] = json.dumps(spec)  # inherited by the worker processes uvicorn starts
    uvicorn.run(
        "resnets.serve.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
