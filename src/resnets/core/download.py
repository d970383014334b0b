"""Downloading one file: streamed with a progress bar, checked against its published digest, written atomically."""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Generator
from contextlib import closing
from pathlib import Path

from tqdm import tqdm

from .atomic import atomic_write
from .errors import UserError

CHUNK = 1 << 20  # bytes read per step (1 MiB)
TIMEOUT = 60  # seconds without data before giving up


def download(
    url: str, dest: Path, *, digest: str, algorithm: str = "sha256", what: str, fix: str, progress: bool = True
) -> None:
    """Fetch `url` into `dest`, whose `algorithm` hex digest must start with `digest`; else no file is left.

    A prefix is enough because some publishers (torchvision) give only the first hex digits of a file's SHA-256;
    a full digest is checked the same way. `what` names the file and `fix` the manual way round, for errors.
    """
    if not digest:
        raise ValueError(f"no {algorithm} digest given for {url}; every download is checked")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(dest) as out:  # a failed, interrupted or corrupt download leaves nothing behind
            hasher = hashlib.new(algorithm, usedforsecurity=False)
            with closing(_chunks(url, what=what, fix=fix, progress=progress)) as chunks:
                for chunk in chunks:
                    out.write(chunk)
                    hasher.update(chunk)
            actual = hasher.hexdigest()
            if not actual.startswith(digest.lower()):
                raise UserError(f"{url} sent a file with {algorithm} {actual}, expected {digest}; try again or {fix}")
    except OSError as e:  # network errors are UserErrors by now: this is the local disk
        raise UserError(f"cannot write {dest} ({e}); choose a writable folder") from None


def _chunks(url: str, *, what: str, fix: str, progress: bool) -> Generator[bytes, None, None]:
    """The body of `url`, chunk by chunk, with a progress bar in bytes; a network failure is a one-line UserError."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            name = url.rsplit("/", 1)[-1]
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}", disable=not progress) as bar:
                while chunk := response.read(CHUNK):
                    bar.update(len(chunk))
                    yield chunk
    except urllib.error.HTTPError as e:
        e.close()  # the error is also the server's open response
        raise _unreachable(url, what, fix, e) from None
    except (OSError, http.client.HTTPException) as e:  # URLError and socket timeouts are OSErrors
        raise _unreachable(url, what, fix, getattr(e, "reason", e)) from None


def _unreachable(url: str, what: str, fix: str, reason: object) -> UserError:
    return UserError(f"could not download {what} from {url} ({reason}); {fix}")
