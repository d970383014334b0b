"""`resnets serve`: a trained model as an HTTP service with a web page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..core.errors import UserError
from .flags import add_config_flags, field_default, given_values
from .predict import add_model_source, predict_options, predictor_from
from .registry import command, int_list, model_options, normalization

# The argument groups of `resnets serve --help`, after the model's, in this order.
GROUPS = {
    "network": "where the service listens (no authentication: keep it on this machine, or behind a proxy)",
    "limits": "what a request may hold: past a limit, a 413 naming the flag",
    "batching": "how images of concurrent requests share forward passes",
    "processes": "server processes, connections and timeouts",
}


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Serve a trained model over HTTP: GET / (a web page: drop images, see their top-5), POST /predict (a raw "
        "image body or multipart files; the JSON of `predict --json`), GET /health, GET /info. There is no "
        "authentication: it binds this machine only unless --host says otherwise. Stops on SIGTERM or Ctrl-C, "
        "waiting at most --shutdown-timeout for the requests in flight."
    )
    from ..serve.options import ServeOptions

    add_model_source(p)
    add_config_flags(p, ServeOptions, GROUPS, field_default)


def serve_options(args: argparse.Namespace):
    """The ServeOptions of the flags, each checked by type and range (a bad one is one line)."""
    from ..serve.options import ServeOptions

    return ServeOptions(**given_values(args, ServeOptions))


@command("serve", _add_serve)
def run_serve(args: argparse.Namespace) -> None:
    """Serve a model over HTTP with a web page (GET /, POST /predict, GET /health, GET /info)."""
    try:
        import uvicorn  # noqa: F401 (only whether it is installed)
    except ImportError:
        raise UserError("serve needs FastAPI and uvicorn: pip install 'resnets[deploy]'") from None
    from ..serve.app import SETTINGS_ENV, create_app
    from ..serve.server import ServeConfig, bind, reachable_from_elsewhere, serve

    options = serve_options(args)
    settings = options.settings()
    predictor = predictor_from(args)  # loaded here first, so a bad checkpoint is one line before anything binds
    sock = bind(options.host, options.port)
    server = dict(
        workers=options.workers,
        log_level="warning",
        timeout_graceful_shutdown=options.shutdown_timeout,
        limit_concurrency=options.max_connections + 1,  # uvicorn counts the connection it answers 503 among them
    )
    if options.workers == 1:
        config = ServeConfig(create_app(predictor, settings), settings.read_timeout_s, **server)
    else:
        os.environ[SETTINGS_ENV] = json.dumps(_worker_spec(args, settings))  # inherited by the worker processes
        config = ServeConfig("resnets.serve.app:app_from_environment", settings.read_timeout_s, factory=True, **server)
    if reachable_from_elsewhere(sock):
        print(
            f"resnets serve: warning: --host {options.host} lets other machines reach this service, which has no "
            "authentication; put it behind an authenticating proxy, or bind 127.0.0.1",
            file=sys.stderr,
        )
    host = (
        f"[{options.host}]" if ":" in options.host else options.host
    )  # an IPv6 address is bracketed in a URL (RFC 3986)
    print(f"serving {predictor.info()['model']} on http://{host}:{sock.getsockname()[1]}/", flush=True)
    serve(config, sock)
    print("resnets serve: stopped", file=sys.stderr)


def _worker_spec(args: argparse.Namespace, settings) -> dict:
    """What each `--workers N` process needs to load the predictor and build the app."""
    o = predict_options(args)
    return {
        "predictor": {
            "checkpoint": args.checkpoint,
            "model": args.model,
            "weights": args.weights,
            "onnx": args.onnx,
            "options": model_options(args),
            "view": o.views,
            "resize": o.resize,
            "crop": o.crop,
            "scales": list(int_list(o.scales, "--scales")),
            "batch_size": o.batch_size,
            "device": o.device,
            "precision": o.precision,
            "backend": o.backend,
            "normalization": _json(normalization(args)),
            "calibration": o.calibration,
            "calibration_images": o.calibration_images,
        },
        "settings": vars(settings),
    }


def _json(value):
    """A Normalization as its plain values (None stays None), for the workers' JSON."""
    return None if value is None else value.to_json()
