"""Fixtures shared by every test folder: small slices of real data shipped in tests/fixtures, and a private cache."""

from __future__ import annotations

import os
import tarfile
from collections import Counter
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(os.environ.get("RESNETS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
# Shipped slices of the archives in ../shared/data: the first files of each class in the archive's own order, as
# extract_members takes them, so a clean clone tests the same images as a machine with the full archives.
CIFAR_JPEG_ARCHIVE = FIXTURES / "cifar10-train-jpeg-40-per-class.tar.gz"  # of cifar10-train-jpeg.tar.gz
IMAGENETTE_ARCHIVE = FIXTURES / "imagenette-224-val-6-per-class.tar.gz"  # of imagenette-224-val.tar.gz, 3 classes
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS = 4  # real JPEGs per class in the tiny image folder


def shared_archive(name: str) -> Path:
    """A full archive of ../shared/data, for the few tests that need more than a shipped slice: skipped where it is
    absent (a clone on a user's machine), a failure under CI, which has it."""
    archive = SHARED / name
    if not archive.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{archive} is missing; CI needs the shared data beside the checkout")
        pytest.skip(f"{archive} is not available; this test needs the full archive, not a slice in tests/fixtures")
    return archive


def extract_members(archive: Path, dest: Path, per_folder: int, folders: int) -> Path:
    """Extract the first `per_folder` files of each of `folders` class folders, reading the tar stream once."""
    counts: Counter[str] = Counter()
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and counts[parts[1]] < per_folder:
                counts[parts[1]] += 1
                path = dest.joinpath(*parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tar.extractfile(member).read())
                if len(counts) == folders and min(counts.values()) == per_folder:
                    return dest
    raise AssertionError(f"{archive} holds fewer than {per_folder} files in each of {folders} folders: {dict(counts)}")


@pytest.fixture(autouse=True)
def _private_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the real ~/.cache: the default cache folder is per test."""
    monkeypatch.setenv("RESNETS_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture(scope="session")
def cifar_jpegs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared, read-only: ROOT/train/<class>/ with PER_CLASS real CIFAR-10 JPEGs (32x32) per class."""
    return extract_members(CIFAR_JPEG_ARCHIVE, tmp_path_factory.mktemp("cifar-jpeg"), PER_CLASS, len(CIFAR_CLASSES))


@pytest.fixture(scope="session")
def cifar_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared, read-only: ROOT/train/<class>/ with 40 real CIFAR-10 JPEGs per class, for short training runs."""
    return extract_members(CIFAR_JPEG_ARCHIVE, tmp_path_factory.mktemp("cifar-small"), 40, len(CIFAR_CLASSES))


@pytest.fixture(scope="session")
def imagenette_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared, read-only: ROOT/train/<wnid>/ (4 each) and ROOT/val/<wnid>/ (2 each): 3 classes of real 224x224
    Imagenette photos (all from the val archive, the smaller one)."""
    root = tmp_path_factory.mktemp("imagenette-small")
    extract_members(IMAGENETTE_ARCHIVE, root / "raw", 6, 3)
    for class_dir in sorted((root / "raw" / "val").iterdir()):
        for i, image in enumerate(sorted(class_dir.iterdir())):
            dest = root / ("train" if i < 4 else "val") / class_dir.name / image.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            image.rename(dest)
    return root


@pytest.fixture(scope="session")
def cifar_png() -> Path:
    """Shipped, read-only: the real, lossless CIFAR-10, 12 training and 6 test PNGs per class (fixtures/README.md)."""
    return FIXTURES / "cifar10-png"
