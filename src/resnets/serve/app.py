"""The HTTP service: GET / (the page), POST /predict, GET /health and GET /info, on FastAPI.

Bodies are counted while they stream in and refused with 413 past `max_bytes` (408 when they take longer than
`read_timeout_s`). Each image's size is read from its header, and refused (413) past `max_pixels` or where the
model's view would not take it, before its pixels are decoded; a request's images are decoded only once the server
holds fewer than `max_decoded_pixels` decoded pixels (a request with more is refused), so decoded images never take
more than that. They wait in a Batcher so that concurrent requests share forward passes; an image that fails its
batch fails only its own request.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.formparsers import MultiPartException, MultiPartParser

from ..core.errors import UserError
from ..data.decode import ImageError, read_rgb
from ..evaluation.views import View, view_refusal
from ..inference import Predictor
from .batching import Batcher
from .budget import PixelBudget
from .options import ServeSettings

LOG = logging.getLogger("uvicorn.error")  # the server's own log (stderr)
SETTINGS_ENV = "RESNETS_SERVE_SETTINGS"  # how `resnets serve --workers N` hands its settings to each worker process
Upload = tuple[str, bytes]  # (file name, encoded image)


def refusal(status: int, reason: str) -> HTTPException:
    """An HTTP error that also closes the connection, so that the rest of a refused body is not read."""
    return HTTPException(status, reason, {"Connection": "close"})


def create_app(predictor: Predictor, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The FastAPI application serving `predictor` under `settings`."""
    batcher = Batcher(lambda images: predictor.scores(images), settings.max_batch, settings.batch_wait_ms / 1000)
    budget = PixelBudget(settings.max_decoded_pixels)
    # One decoding thread: the memory a large image's decoding leaves in the allocator's per-thread arenas is then
    # reused by the next, instead of piling up in each of a thread pool's many threads (a peak of 1.7 GB instead of
    # 2.3 GB in benchmarks/serve_memory.py).
    decoder = ThreadPoolExecutor(1, thread_name_prefix="decode")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # _pixels checks each image against --max-pixels from its header before read_rgb decodes it; Pillow's own
        # limit (its default, or twice its setting) would refuse some with a message naming another limit.
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            decoder.shutdown(wait=True)
            Image.MAX_IMAGE_PIXELS = pillow_limit

    app = FastAPI(title="resnets", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    page = resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
    public = public_info(predictor.info())

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", **asdict(batcher.stats)}

    @app.get("/info")
    async def info() -> dict:
        return {**public, "limits": asdict(settings)}

    @app.post("/predict")
    async def predict(request: Request, top_k: int | None = None, name: str = "body") -> JSONResponse:
        k = settings.top_k if top_k is None else top_k
        if k < 1:
            raise HTTPException(400, f"top_k {k} must be at least 1")
        uploads = await _uploads(request, settings, name)
        pixels = [_pixels(file, data, settings.max_pixels, predictor.view) for file, data in uploads]
        if sum(pixels) > settings.max_decoded_pixels:
            over = f"{sum(pixels)} pixels, over --max-decoded-pixels {settings.max_decoded_pixels}"
            raise HTTPException(413, f"the request's images hold {over}")
        async with budget.hold(sum(pixels)):
            scores = await _scores(uploads, decoder, batcher)  # its decoded images are gone once it returns
        return JSONResponse([{"file": file, "top": top} for (file, _), top in zip(uploads, predictor.top(scores, k))])

    return app


def public_info(info: dict) -> dict:
    """`info` with its source (a checkpoint's or weights file's path) reduced to the file or folder's name: /info
    tells anyone who can reach the service which model it runs, not where this machine keeps it."""
    return {**info, "source": os.path.basename(os.path.abspath(info["source"]))}


async def _limited(request: Request, settings: ServeSettings) -> AsyncGenerator[bytes, None]:
    """The body's chunks as they arrive; 413 as soon as more than `max_bytes` came (or were announced), 408 when it
    has not all come within `read_timeout_s`."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > settings.max_bytes:
        raise refusal(413, f"request body exceeds {settings.max_bytes} bytes (--max-bytes)")
    deadline = asyncio.get_running_loop().time() + settings.read_timeout_s
    chunks, seen = aiter(request.stream()), 0
    while True:
        try:
            async with asyncio.timeout_at(deadline):  # around the read only: the consumer's work is not timed
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise refusal(408, f"the body took longer than {settings.read_timeout_s:g} s (--read-timeout)") from None
        seen += len(chunk)
        if seen > settings.max_bytes:
            raise refusal(413, f"request body exceeds {settings.max_bytes} bytes (--max-bytes)")
        yield chunk


async def _uploads(request: Request, settings: ServeSettings, name: str) -> list[Upload]:
    """(file name, bytes) of each image: the raw body, or every file of a multipart form; at least one, at most
    `max_images`."""
    stream = _limited(request, settings)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = b"".join([chunk async for chunk in stream])
        uploads = [(name, body)] if body else []
    else:
        limits = dict(max_files=settings.max_images, max_part_size=settings.max_bytes)
        try:
            form = await MultiPartParser(request.headers, stream, **limits).parse()
        except MultiPartException as e:
            if e.message.startswith("Too many files"):  # starlette's own words for max_files
                raise refusal(413, f"more than {settings.max_images} images in one request (--max-images)") from None
            raise HTTPException(400, f"bad multipart body: {e.message}") from None
        files = [value for _, value in form.multi_items() if not isinstance(value, str)]
        uploads = [(f.filename or f"file{i}", await f.read()) for i, f in enumerate(files)]
        await form.close()
    if not uploads:
        raise HTTPException(400, "no image in the request: send the image as the body, or multipart files")
    return uploads


def _pixels(name: str, data: bytes, max_pixels: int, view: View) -> int:
    """The image's width x height, read from its header without decoding it; 400 if it is not an image, 413 if it is
    over `max_pixels` or of a size or shape that `view` does not take."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # what Pillow raises for what is not an image
        raise HTTPException(400, f"{name}: cannot decode image ({_one_line(e)})") from None
    if width * height > max_pixels:
        reason = f"{width}x{height} is {width * height} pixels, over --max-pixels {max_pixels}"
        raise HTTPException(413, f"{name}: too big to decode safely ({reason})")
    too_large = view_refusal(view, height, width)
    if too_large is not None:
        raise HTTPException(413, f"{name}: too large for the view ({too_large})")
    return width * height


def _decode(name: str, data: bytes) -> torch.Tensor:
    """The upload as a uint8 image; 400 naming it if it is not a decodable image."""
    try:
        return torch.from_numpy(read_rgb(io.BytesIO(data)))
    except ImageError as e:
        raise HTTPException(400, f"{name}: {_one_line(e)}") from None


async def _scores(uploads: list[Upload], decoder: ThreadPoolExecutor, batcher: Batcher) -> torch.Tensor:
    """The uploads' class scores [N, classes]: decoded by `decoder`, run in batches with other requests' images. An
    image the model refuses is a 400 naming it, and outputs that are not finite are a 500 that says so."""
    loop = asyncio.get_running_loop()
    images = [await loop.run_in_executor(decoder, _decode, file, data) for file, data in uploads]
    results = await batcher.submit(images)
    del images  # and a failure's traceback, which holds them, below: the pixel budget counts them as given back
    failures = [f for f in (_failure(name, r) for (name, _), r in zip(uploads, results)) if f is not None]
    if failures:
        del results
        raise failures[0]
    return torch.stack(results)


def _failure(name: str, result: torch.Tensor | BaseException) -> HTTPException | None:
    """The HTTP error for the image `name`'s result, if it is an exception or a row that is not finite."""
    if isinstance(result, (UserError, ValueError)):  # this image's own: a failed batch is retried image by image
        return HTTPException(400, f"{name}: cannot classify it: {_one_line(result)}")
    if isinstance(result, BaseException):  # a fault of the service's, not the image's: its traceback goes to the log
        LOG.error("cannot classify %s", name, exc_info=result)
        return HTTPException(500, f"{name}: cannot classify it: {type(result).__name__}: {_one_line(result)}")
    if not torch.isfinite(result).all():
        reason = "the model's outputs are not finite (NaN or infinite): its weights are broken"
        return HTTPException(500, f"{name}: {reason}")
    return None


def _one_line(error: BaseException) -> str:
    """The error's message on one line, without the repr of an in-memory stream that Pillow puts in."""
    return re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(error)).replace("\n", " ")


def app_from_environment() -> FastAPI:
    """The app of one `resnets serve --workers N` worker process, built from the settings in $RESNETS_SERVE_SETTINGS."""
    from ..inference import load_predictor

    spec = json.loads(os.environ[SETTINGS_ENV])
    return create_app(load_predictor(**spec["predictor"]), ServeSettings(**spec["settings"]))
