"""Real Imagenette photos for the ImageNet-size views (from the slice shipped in tests/fixtures: tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..conftest import IMAGENETTE_ARCHIVE, extract_members

IMAGENETTE_CLASSES = 3


@pytest.fixture(scope="session")
def imagenette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared, read-only: ROOT/val/<wnid>/ with 2 real Imagenette val JPEGs (224x224) for each of 3 classes, and
    ROOT/train/<wnid>/ with a copy of them (a split takes its class list from train)."""
    root = extract_members(IMAGENETTE_ARCHIVE, tmp_path_factory.mktemp("imagenette"), 2, IMAGENETTE_CLASSES)
    shutil.copytree(root / "val", root / "train")
    return root
