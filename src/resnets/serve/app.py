"""The HTTP service: GET / (the page), POST /predict, GET /health and GET /info, on FastAPI.

Bodies are counted while they stream in and refused with 413 past `max_bytes`; images are decoded by the data
pipeline's decoder with Pillow's pixel limit at `max_pixels` (a decompression bomb is refused from its header, before
its pixels are decoded); decoded images wait in a Batcher so that concurrent requests share forward passes.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser

from ..data.decode import ImageError, read_rgb
from ..inference import Predictor
from ..inference.predictor import TOP_K
from .batching import Batcher

MAX_FILES = 64  # files in one multipart request
SETTINGS_ENV = "RESNETS_SERVE_SETTINGS"  # how `resnets serve --workers N` hands its settings to each worker process


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the service."""

    max_bytes: int = 10 * 1024 * 1024  # request body limit (413 past it)
    max_pixels: int = 50_000_000  # decoded pixels per image: larger ones are refused as decompression bombs
    max_batch: int = 32  # images per forward pass
    batch_wait_ms: float = 2.0  # after the first image of a batch, how long to wait for more
    top_k: int = TOP_K  # default classes per image (?top_k= overrides)


class TooLarge(HTTPException):
    """413, with the connection closed: the rest of the body is not read."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body exceeds {max_bytes} bytes (--max-bytes)", {"Connection": "close"})


def create_app(predictor: Predictor, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The FastAPI application serving `predictor` under `settings`."""
    Image.MAX_IMAGE_PIXELS = settings.max_pixels  # read_rgb refuses images above it (this process serves only)
    batcher = Batcher(lambda images: predictor.scores(images), settings.max_batch, settings.batch_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="resnets", lifespan=lifespan, docs_url=None, redoc_url=None)
    page = resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", **asdict(batcher.stats)}

    @app.get("/info")
    async def info() -> dict:
        return {**predictor.info(), "limits": asdict(settings)}

    @app.post("/predict")
    async def predict(request: Request, top_k: int | None = None, name: str = "body") -> JSONResponse:
        k = settings.top_k if top_k is None else top_k
        if k < 1:
            raise HTTPException(400, f"top_k {k} must be at least 1")
        uploads = await _uploads(request, settings.max_bytes, name)
        if not uploads:
            raise HTTPException(400, "no image in the request: send the image as the body, or multipart files")
        images = [await run_in_threadpool(_decode, file, data) for file, data in uploads]
        scores = torch.stack(await batcher.submit(images)) if images else torch.zeros(0)
        tops = predictor.top(scores, k)
        return JSONResponse([{"file": file, "top": top} for (file, _), top in zip(uploads, tops)])

    return app


async def _limited(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; TooLarge as soon as more than `max_bytes` came (or were announced)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise TooLarge(max_bytes)
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > max_bytes:
            raise TooLarge(max_bytes)
        yield chunk


async def _uploads(request: Request, max_bytes: int, name: str) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each image: the raw body, or every file of a multipart form."""
    stream = _limited(request, max_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = b"".join([chunk async for chunk in stream])
        return [(name, body)] if body else []
    try:
        form = await MultiPartParser(request.headers, stream, max_files=MAX_FILES, max_part_size=max_bytes).parse()
    except MultiPartException as e:
        raise HTTPException(400, f"bad multipart body: {e.message}") from None
    files = [value for _, value in form.multi_items() if not isinstance(value, str)]
    uploads = [(f.filename or f"file{i}", await f.read()) for i, f in enumerate(files)]
    await form.close()
    return uploads


def _decode(name: str, data: bytes) -> torch.Tensor:
    """The upload as a uint8 image; 400 naming it if it is not a decodable image or is too large."""
    try:
        return torch.from_numpy(read_rgb(io.BytesIO(data)))
    except ImageError as e:
        reason = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(e)).replace("\n", " ")  # Pillow's repr
        raise HTTPException(400, f"{name}: {reason}") from None


def app_from_environment() -> FastAPI:
    """The app of one `resnets serve --workers N` worker process, built from the settings in $RESNETS_SERVE_SETTINGS."""
    from ..inference import load_predictor

    spec = json.loads(os.environ[SETTINGS_ENV])
    return create_app(load_predictor(**spec["predictor"]), ServeSettings(**spec["settings"]))
