"""Decoding image files to uint8 RGB arrays with Pillow, in parallel worker processes."""

from __future__ import annotations

import math
import multiprocessing
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..core.errors import UserError
from ..core.runtime import leave_ctrl_c_to_the_main_process

CHUNK = 64  # files per task handed to a worker: amortises the inter-process round trip

DecodeResult = tuple[np.ndarray | None, str | None]  # (image, None) or (None, error message)


@dataclass(frozen=True)
class Decoded:
    """The K images that decoded (uint8 [3, H, W], each of its own size), their files' indices, the bad files."""

    images: list[np.ndarray]
    kept: np.ndarray
    bad: list[str]


class ImageError(ValueError):
    """A file or stream that is not a decodable image, or an image too large to take; str() is the one-line reason,
    without the file's name; `too_big` tells size refusals (HTTP 413) from unreadable data (400)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason} ({detail})")
        self.too_big, self.detail = reason in (TOO_BIG, TOO_LARGE), detail


class BadImage(UserError):
    """A file that stops the run as it cannot be decoded. Only commands that accept --skip-bad-images (train) add it
    to the advice: the others would be telling the user about a flag they do not have."""


TOO_BIG = "too big to decode safely"
TOO_LARGE = "too large for the view"  # decoded, but its view's tensors would be (evaluation.views.view_refusal)
UNREADABLE = "cannot decode image"


def read_rgb(file: Path | BinaryIO) -> np.ndarray:
    """Decode a file or binary stream to uint8 RGB [3, H, W], refusing decompression bombs; raises ImageError."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that (and raises above); refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                return rgb_array(img)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ImageError(TOO_BIG, str(e)) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # what Pillow raises for unreadable or truncated files
        raise ImageError(UNREADABLE, str(e)) from None


def rgb_array(img: Image.Image) -> np.ndarray:
    """A Pillow image (grayscale of 8 or 16 bits, CMYK, RGBA, palette, ...) as uint8 RGB [3, H, W]."""
    if img.mode.startswith("I"):
        # 16-bit grayscale (I;16, I;16B, ..., or I as older Pillows read it): Pillow's convert clips it at 255 (white),
        # so scale 0..65535 to 0..255 here.
        gray = np.asarray(img).astype(np.int32).clip(0, 65535)
        return np.ascontiguousarray(np.broadcast_to(((gray + 128) // 257).astype(np.uint8), (3, *gray.shape)))
    return np.ascontiguousarray(np.asarray(img.convert("RGB")).transpose(2, 0, 1))


def decode_image(path: Path) -> np.ndarray:
    """Decode one image file to a uint8 RGB array [3, H, W]; the format comes from the content, not the name."""
    try:
        return read_rgb(path)
    except ImageError as e:
        if e.too_big:
            raise BadImage(f"{path} is {TOO_BIG} ({e.detail}); remove it") from None
        raise BadImage(f"{UNREADABLE} {path} ({e.detail}); replace or remove it") from None


def decode_files(
    files: Sequence[Path], *, skip_bad_images: bool = False, workers: int | None = None, progress: bool = True
) -> Decoded:
    """Decode non-empty `files`, of any sizes, in `workers` processes (None: one per CPU; 0 or 1: this process, as
    `--workers 0` means in training), keeping their order."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 0:
        raise UserError(f"--workers {workers} must be 0 (decode in this process) or more")
    images: list[np.ndarray] = []
    kept: list[int] = []
    bad: list[str] = []
    processes = min(workers, math.ceil(len(files) / CHUNK))
    bar = tqdm(total=len(files), desc="decoding images", unit="img", disable=not progress)
    with _decoded_stream(files, processes) as results, bar:
        for i, (image, error) in enumerate(results):
            bar.update()
            if error is not None:
                if not skip_bad_images:
                    raise BadImage(error)
                bad.append(error)
                continue
            assert image is not None  # a result is (image, None) or (None, error)
            images.append(image)
            kept.append(i)
    if not images:
        raise UserError(f"none of the {len(files)} images could be decoded; the first error was: {bad[0]}")
    return Decoded(images, np.asarray(kept, np.int64), bad)


@contextmanager
def _decoded_stream(files: Sequence[Path], processes: int) -> Iterator[Iterator[DecodeResult]]:
    """The decode results of `files` in order, from a process pool unless one process is enough."""
    if processes <= 1:
        yield map(_decode_or_error, files)
        return
    # Workers get this process's limit, which a fresh (spawned) interpreter would not inherit.
    pool = multiprocessing.Pool(processes, initializer=_init_worker, initargs=(Image.MAX_IMAGE_PIXELS,))
    with pool:  # leaving the block terminates the workers, also when the caller stops early on an error
        yield pool.imap(_decode_or_error, files, chunksize=CHUNK)


def _decode_or_error(path: Path) -> DecodeResult:
    """decode_image with its UserError turned into a value, so a worker reports it instead of dying."""
    try:
        return decode_image(path), None
    except UserError as e:
        return None, str(e)


def _init_worker(limit: int | None) -> None:
    Image.MAX_IMAGE_PIXELS = limit
    leave_ctrl_c_to_the_main_process()
