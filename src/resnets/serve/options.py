"""Every setting of `resnets serve` as a typed field: its flag, help, default and range declared once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.errors import UserError
from ..core.settings import check_fields, setting
from ..inference.predictor import TOP_K

UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def byte_size(text: str) -> int:
    """'10MB' -> 10_000_000, '512KiB' -> 524_288, '1000' -> 1000."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS or float(match.group(1)) <= 0:
        raise UserError(f"--max-bytes {text!r} is not a size such as 10MB, 512KiB or 1000000")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


@dataclass(frozen=True)
class ServeSettings:
    """Limits, timeouts and batching of the service."""

    max_bytes: int = 10 * 1024 * 1024  # request body limit (413 past it)
    max_pixels: int = 50_000_000  # pixels of one image, from its header: larger ones are refused before decoding
    max_images: int = 64  # images in one request (413 past it)
    max_decoded_pixels: int = 50_000_000  # decoded pixels held at once, over all requests (413 for a request past it)
    max_batch: int = 32  # images per forward pass
    batch_wait_ms: float = 2.0  # after the first image of a batch, how long to wait for more
    top_k: int = TOP_K  # default classes per image (?top_k= overrides)
    read_timeout_s: float = 30.0  # a request's head, and then its body, must arrive within it (408 for a body)


@dataclass
class ServeOptions:
    """Where the service listens, what it refuses, how it batches, and its processes."""

    host: str = setting("127.0.0.1", "network", "address to bind (default: this machine only)")
    port: int = setting(8000, "network", "TCP port (0: any free one)", within=(0, 65535))
    max_bytes: str = setting("10MB", "limits", "largest request body (413 past it), e.g. 10MB or 512KiB")
    max_pixels: int = setting(50_000_000, "limits", "largest image, in pixels, read from its header", within=(1, None))
    max_images: int = setting(64, "limits", "images in one request (413 past it)", within=(1, 1000))
    max_decoded_pixels: int = setting(
        50_000_000,
        "limits",
        "decoded pixels held at once over all requests: requests wait their turn; one with more is a 413",
        within=(1, None),
    )
    max_batch: int = setting(32, "batching", "images per forward pass when requests arrive together", within=(1, 4096))
    batch_wait_ms: float = setting(
        2.0, "batching", "wait after a batch's first image for more, in ms", within=(0, 1000)
    )
    top_k: int = setting(TOP_K, "batching", "classes per image unless a request asks ?top_k=N", within=(1, None))
    workers: int = setting(1, "processes", "server processes, each with its own copy of the model", within=(1, 256))
    max_connections: int = setting(
        64, "processes", "open connections a process serves; past them, 503", within=(1, 100_000)
    )
    read_timeout: float = setting(30.0, "processes", "seconds for a request's head, then its body", within=(0.1, 3600))
    shutdown_timeout: float = setting(
        5.0, "processes", "seconds SIGTERM waits for requests in flight, then ends", within=(0, 3600)
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.max_pixels > self.max_decoded_pixels:
            limit = self.max_decoded_pixels
            raise UserError(f"--max-pixels {self.max_pixels} must not exceed --max-decoded-pixels {limit}")

    def settings(self) -> ServeSettings:
        """The app's limits, timeouts and batching."""
        return ServeSettings(
            max_bytes=byte_size(self.max_bytes),
            max_pixels=self.max_pixels,
            max_images=self.max_images,
            max_decoded_pixels=self.max_decoded_pixels,
            max_batch=self.max_batch,
            batch_wait_ms=self.batch_wait_ms,
            top_k=self.top_k,
            read_timeout_s=self.read_timeout,
        )
