"""The on-disk cache of decoded image-folder splits, rebuilt whenever a split's files change.

Images of any sizes are stored ragged: one flat uint8 array of every image's pixels, one after another, and an
index of each image's file and shape. Reading memory-maps the pixels, so a split larger than memory can be cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_write
from ..core.errors import UserError, parse_json
from ..core.paths import default_cache_dir
from .decode import BadImage, decode_files
from .folder import FolderScan
from .imageset import ImageSet

CACHE_VERSION = 2  # part of the fingerprint: bumping it invalidates caches written in an older layout


@dataclass(frozen=True)
class CachePaths:
    """The three files that cache one split."""

    images: Path  # uint8 [total pixels]: every image's [3, H, W] pixels, flattened, one after another
    index: Path  # int64 [K, 4]: per cached image, its file's position in the scan and its shape (3, H, W)
    meta: Path


@dataclass(frozen=True)
class CachedPixels:
    """Where the K decoded images of a split lie in a cache file, and which files they came from."""

    path: Path  # the flat uint8 pixel file, to memory-map
    kept: np.ndarray  # int64 [K]: the position of each image's file in the scan
    offsets: np.ndarray  # int64 [K]: where each image starts in the flat pixels
    shapes: np.ndarray  # int64 [K, 3]: each image's (3, H, W)
    bad: list[str]  # one message per bad file left out

    def read(self, pixels: np.ndarray, i: int) -> np.ndarray:
        """Image i as a uint8 [3, H, W] array copied out of the memory-mapped `pixels`."""
        start, shape = int(self.offsets[i]), tuple(int(d) for d in self.shapes[i])
        return np.array(pixels[start : start + int(np.prod(shape))]).reshape(shape)


def cache_paths(split_dir: Path, cache_dir: Path) -> CachePaths:
    """Where the cache of `split_dir` lives: named by the split and a hash of its absolute path."""
    stem = f"{split_dir.name}-{hashlib.sha256(str(split_dir.resolve()).encode()).hexdigest()[:16]}"
    return CachePaths(*(cache_dir / f"{stem}.{kind}" for kind in ("images.npy", "index.npy", "json")))


def fingerprint(scan: FolderScan) -> str:
    """A hash of the class list and of every file's (relative path, size, mtime_ns): it changes when the split does."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, scan.classes]).encode())
    ignored = set(scan.ignored)
    for path in scan.files + scan.ignored:
        st = path.lstat() if path in ignored else path.stat()  # an ignored entry may be a dangling link
        record = f"{path.relative_to(scan.split_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n"
        h.update(record.encode(errors="surrogateescape"))  # surrogateescape: file names need not be valid UTF-8
    return h.hexdigest()


def cached_pixels(
    scan: FolderScan,
    *,
    cache_dir: Path | None = None,
    skip_bad_images: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> CachedPixels:
    """The decoded images of `scan` in the cache: read when it is up to date, else decoded once and written."""
    paths = cache_paths(scan.split_dir, cache_dir or default_cache_dir())
    key = fingerprint(scan)
    cached = _read(paths, key)
    if cached is None:
        cached = _build(scan, paths, key, skip_bad_images=skip_bad_images, workers=workers, progress=progress)
    if cached.bad and not skip_bad_images:  # cached by a run that skipped them; this run asked not to
        raise BadImage(cached.bad[0])
    return cached


def load_cached(
    scan: FolderScan,
    *,
    cache_dir: Path | None = None,
    skip_bad_images: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImageSet:
    """The decoded images of `scan`, all of one size, as an in-memory ImageSet (through the cache)."""
    cached = cached_pixels(
        scan, cache_dir=cache_dir, skip_bad_images=skip_bad_images, workers=workers, progress=progress
    )
    odd = np.flatnonzero((cached.shapes != cached.shapes[0]).any(1))
    if len(odd):
        first, other = scan.files[cached.kept[0]], scan.files[cached.kept[odd[0]]]
        raise UserError(
            f"image {other} is {_size(cached.shapes[odd[0]])} but {first} is {_size(cached.shapes[0])}; all images "
            "of a split must have one size for this CIFAR-style loader; open_split (the ImageNet recipe) takes any"
        )
    pixels = np.load(cached.path, mmap_mode="r")
    images = torch.from_numpy(np.array(pixels).reshape(len(cached.kept), *cached.shapes[0]))  # a copy in memory
    labels = torch.from_numpy(np.asarray(scan.labels, np.int64)[cached.kept])
    return ImageSet(images, labels, scan.classes, skipped=len(cached.bad), ignored=len(scan.ignored))


def _read(paths: CachePaths, key: str) -> CachedPixels | None:
    """The cached split if it exists, is intact and has fingerprint `key`; otherwise None."""
    try:
        meta = parse_json(paths.meta.read_text())
        if meta.get("fingerprint") != key:
            return None
        index = np.load(paths.index)
        pixels = np.load(paths.images, mmap_mode="r")  # maps the header and size only; fails if truncated
    except (OSError, ValueError):  # missing or damaged: rebuild it
        return None
    if index.ndim != 2 or index.shape[1] != 4 or len(index) != meta["count"]:
        return None
    cached = _located(paths.images, index, meta["bad"])
    if pixels.ndim != 1 or len(pixels) != cached.offsets[-1] + np.prod(cached.shapes[-1]):
        return None
    return cached


def _located(path: Path, index: np.ndarray, bad: list[str]) -> CachedPixels:
    """CachedPixels from an index [K, 4] of (file position, 3, H, W): each image starts where the one before ends."""
    sizes = index[:, 1:].prod(1)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return CachedPixels(path, index[:, 0].copy(), offsets, index[:, 1:].copy(), bad)


def _build(
    scan: FolderScan, paths: CachePaths, key: str, *, skip_bad_images: bool, workers: int | None, progress: bool
) -> CachedPixels:
    """Decode the split and write its cache; the metadata goes last, so it marks a complete cache."""
    try:
        paths.meta.parent.mkdir(parents=True, exist_ok=True)  # fail before decoding, not after
        paths.meta.unlink(missing_ok=True)  # no metadata means no valid cache, whatever happens next
    except OSError as e:
        raise _unwritable(paths, e) from None
    decoded = decode_files(scan.files, skip_bad_images=skip_bad_images, workers=workers, progress=progress)
    shapes = np.array([image.shape for image in decoded.images], np.int64)
    index = np.concatenate([decoded.kept[:, None], shapes], axis=1)
    meta = {
        "fingerprint": key,
        "split_dir": str(scan.split_dir.resolve()),
        "classes": scan.classes,
        "count": len(index),
        "ignored": len(scan.ignored),
        "bad": decoded.bad,
    }
    try:
        with atomic_write(paths.images) as f:  # written image by image: no second copy of the split in memory
            header = {"descr": "|u1", "fortran_order": False, "shape": (int(shapes.prod(1).sum()),)}
            np.lib.format.write_array_header_1_0(f, header)
            for image in decoded.images:
                f.write(image.tobytes())
        with atomic_write(paths.index) as f:
            np.save(f, index)
        with atomic_write(paths.meta) as f:
            f.write(json.dumps(meta, indent=1).encode())
    except OSError as e:
        raise _unwritable(paths, e) from None
    return _located(paths.images, index, decoded.bad)


def _unwritable(paths: CachePaths, error: OSError) -> UserError:
    fix = "set RESNETS_CACHE (or cache_dir) to a writable folder"
    return UserError(f"cannot write the data cache in {paths.meta.parent} ({error}); {fix}")


def _size(shape: np.ndarray) -> str:
    return f"{shape[2]}x{shape[1]}"
