"""A hostile image folder: every fault is converted, skipped and counted, or stopped with a clear error."""

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnets.core.checkpoints import load_checkpoint
from resnets.data import load_split

from .helpers import train_command


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels: enough for Pillow to refuse it before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def noise(mode: str) -> Image.Image:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return rgb.convert(mode)


@pytest.fixture
def hostile(cifar_small, tmp_path) -> Path:
    """Two real classes of 40 JPEGs, plus every fault of the issue in the first class and beside it."""
    root = tmp_path / "hostile"
    for name in ("airplane", "automobile"):
        shutil.copytree(cifar_small / "train" / name, root / "train" / name)
    odd = root / "train" / "airplane"
    first = sorted(odd.glob("*.jpg"))[0]
    jpeg = first.read_bytes()
    (odd / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (odd / "zero.jpg").write_bytes(b"")
    noise("CMYK").save(odd / "cmyk.jpg", "JPEG")
    noise("RGBA").save(odd / "rgba.png")
    noise("L").save(odd / "gray.png")
    noise("RGB").save(odd / "png_named.JPEG", "PNG")
    (odd / "notes.txt").write_text("not an image")
    (root / "train" / ".hidden").mkdir()
    shutil.copy(first, root / "train" / ".hidden" / "x.jpg")
    (odd / ".ipynb_checkpoints").mkdir()
    shutil.copy(first, odd / ".ipynb_checkpoints" / "y.jpg")
    return root


def train(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = train_command(data, out, 2, *extra)
    command[command.index("--val-split") + 1] = "10"
    command[command.index("--batch-size") + 1] = "16"
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_skip_bad_images_converts_skips_and_counts(hostile, tmp_path):
    proc = train(hostile, tmp_path / "run", "--skip-bad-images")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipped 2 unreadable images, ignored 1 non-image files" in proc.stdout
    assert load_checkpoint(tmp_path / "run" / "last.pt")["classes"] == ["airplane", "automobile"]


def test_class_indices_never_shift(hostile):
    images = load_split(hostile, skip_bad_images=True, progress=False)
    assert images.classes == ["airplane", "automobile"]  # hidden folders are not classes
    assert (images.labels == 0).sum() == 40 + 4 and (images.labels == 1).sum() == 40
    assert (images.skipped, images.ignored) == (2, 1)
    with Image.open(sorted((hostile / "train" / "automobile").glob("*.jpg"))[0]) as first:
        expected = np.asarray(first.convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(images.images[images.labels == 1][0].numpy(), expected)


def test_a_bad_image_without_skip_is_a_one_line_error_naming_it(hostile, tmp_path):
    proc = train(hostile, tmp_path / "run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # above it: only the progress bar of decoding
    assert last.startswith("resnets train: error: ") and "truncated.jpg" in last and "--skip-bad-images" in last


def test_an_empty_class_folder_stops_with_a_clear_error(hostile, tmp_path):
    (hostile / "train" / "bird").mkdir()
    proc = train(hostile, tmp_path / "run", "--skip-bad-images")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(hostile / "train" / "bird") in proc.stderr


def test_decompression_bomb_is_rejected(hostile, tmp_path):
    (hostile / "train" / "airplane" / "bomb.png").write_bytes(png_header_claiming(20000, 20000))
    proc = train(hostile, tmp_path / "run")
    assert proc.returncode == 2 and "bomb.png is too big to decode safely" in proc.stderr
    images = load_split(hostile, skip_bad_images=True, progress=False, cache_dir=tmp_path / "cache")
    assert images.skipped == 3
