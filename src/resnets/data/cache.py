"""The on-disk cache of decoded image-folder splits, rebuilt whenever a split's files change."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import UserError
from .decode import decode_files
from .folder import FolderScan
from .imageset import ImageSet

CACHE_VERSION = 1  # part of the fingerprint: bumping it invalidates caches written in an older layout

Entry = tuple[np.ndarray, np.ndarray, list[str]]  # images, labels, messages of the bad files left out


@dataclass(frozen=True)
class CachePaths:
    """The three files that cache one split."""

    images: Path
    labels: Path
    meta: Path


def default_cache_dir() -> Path:
    """$RESNETS_CACHE if set, else ~/.cache/resnets."""
    env = os.environ.get("RESNETS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnets"


def cache_paths(split_dir: Path, cache_dir: Path) -> CachePaths:
    """Where the cache of `split_dir` lives: named by the split and a hash of its absolute path."""
    stem = f"{split_dir.name}-{hashlib.sha256(str(split_dir.resolve()).encode()).hexdigest()[:16]}"
    return CachePaths(*(cache_dir / f"{stem}.{kind}" for kind in ("images.npy", "labels.npy", "json")))


def fingerprint(scan: FolderScan) -> str:
    """A hash of the class list and of every file's (relative path, size, mtime_ns): it changes when the split does."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, scan.classes]).encode())
    for path in scan.files + scan.ignored:
        st = path.stat()
        record = f"{path.relative_to(scan.split_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n"
        h.update(record.encode(errors="surrogateescape"))  # surrogateescape: file names need not be valid UTF-8
    return h.hexdigest()


def load_cached(
    scan: FolderScan,
    *,
    cache_dir: Path | None = None,
    skip_bad_images: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImageSet:
    """The decoded images of `scan`, read from the cache when it is up to date, else decoded once and cached."""
    folder = cache_dir or default_cache_dir()
    paths = cache_paths(scan.split_dir, folder)
    key = fingerprint(scan)
    entry = _read(paths, key)
    if entry is None:
        entry = _build(scan, paths, key, skip_bad_images=skip_bad_images, workers=workers, progress=progress)
    images, labels, bad = entry
    if bad and not skip_bad_images:  # cached by a run that skipped them; this run asked not to
        raise UserError(bad[0])
    return ImageSet(
        torch.from_numpy(images), torch.from_numpy(labels), scan.classes, skipped=len(bad), ignored=len(scan.ignored)
    )


def _read(paths: CachePaths, key: str) -> Entry | None:
    """The cached entry if it exists, is intact and has fingerprint `key`; otherwise None."""
    try:
        meta = json.loads(paths.meta.read_text())
        if meta.get("fingerprint") != key:
            return None
        images, labels = np.load(paths.images), np.load(paths.labels)
    except (OSError, ValueError):  # missing or damaged: rebuild it
        return None
    if not len(images) == len(labels) == meta["count"]:
        return None
    return images, labels, meta["bad"]


def _build(
    scan: FolderScan, paths: CachePaths, key: str, *, skip_bad_images: bool, workers: int | None, progress: bool
) -> Entry:
    """Decode the split and write its cache; the metadata goes last, so it marks a complete cache."""
    try:
        paths.meta.parent.mkdir(parents=True, exist_ok=True)  # fail before decoding, not after
        paths.meta.unlink(missing_ok=True)  # no metadata means no valid cache, whatever happens next
    except OSError as e:
        raise _unwritable(paths, e) from None
    decoded = decode_files(scan.files, skip_bad_images=skip_bad_images, workers=workers, progress=progress)
    labels = np.asarray(scan.labels, np.int64)[decoded.kept]
    meta = {
        "fingerprint": key,
        "split_dir": str(scan.split_dir.resolve()),
        "classes": scan.classes,
        "count": len(labels),
        "image_shape": list(decoded.images.shape[1:]),
        "ignored": len(scan.ignored),
        "bad": decoded.bad,
    }
    try:
        for path, array in ((paths.images, decoded.images), (paths.labels, labels)):
            with atomic_write(path) as f:
                np.save(f, array)
        with atomic_write(paths.meta) as f:
            f.write(json.dumps(meta, indent=1).encode())
    except OSError as e:
        raise _unwritable(paths, e) from None
    return decoded.images, labels, decoded.bad


def _unwritable(paths: CachePaths, error: OSError) -> UserError:
    fix = "set RESNETS_CACHE (or cache_dir) to a writable folder"
    return UserError(f"cannot write the data cache in {paths.meta.parent} ({error}); {fix}")
