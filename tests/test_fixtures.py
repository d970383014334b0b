"""The data slices shipped in tests/fixtures hold the very files the fixtures took from the full shared archives."""

from pathlib import Path

import pytest

from .conftest import CIFAR_JPEG_ARCHIVE, IMAGENETTE_ARCHIVE, extract_members, shared_archive

# (shipped slice, the archive it is cut from, [(files per class, classes), ...] as the fixtures take them): the
# first files of a class depend on the archive's order, so each size is checked, not only the largest.
SLICES = [
    (CIFAR_JPEG_ARCHIVE, "cifar10-train-jpeg.tar.gz", [(40, 10), (4, 10)]),  # cifar_small, cifar_jpegs
    (IMAGENETTE_ARCHIVE, "imagenette-224-val.tar.gz", [(6, 3), (4, 3), (2, 3), (3, 1)]),  # imagenette fixtures
]


def contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_each_shipped_slice_is_the_start_of_its_shared_archive(tmp_path):
    full = {name: shared_archive(name) for _, name, _ in SLICES}
    for shipped, name, sizes in SLICES:
        for per_folder, folders in sizes:
            out = tmp_path / f"{name}-{per_folder}-{folders}"
            expected = contents(extract_members(full[name], out / "full", per_folder, folders))
            assert len(expected) == per_folder * folders
            assert contents(extract_members(shipped, out / "shipped", per_folder, folders)) == expected, shipped


def test_a_slice_too_small_for_a_fixture_is_an_error_not_fewer_images(tmp_path):
    with pytest.raises(AssertionError, match="fewer than 41 files in each of 10 folders"):
        extract_members(CIFAR_JPEG_ARCHIVE, tmp_path, 41, 10)
