"""16-bit images (grayscale PNG, TIFF and PGM; RGB and RGBA PNG) decode to their 8-bit values, not to white."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.data import open_split
from resnets.data.decode import decode_image, read_rgb

COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # PNG colour type of 16-bit gray, gray+alpha, RGB and RGBA by channel count


def png16(path: Path, values: np.ndarray) -> Path:
    """`values` (uint16 [H, W] or [H, W, C]) as a 16-bit PNG, written chunk by chunk (Pillow writes only gray)."""
    h, w = values.shape[:2]
    channels = values.shape[2] if values.ndim == 3 else 1
    rows = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, COLOR_TYPES[channels], 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    return path


def eight_bits(values: np.ndarray) -> np.ndarray:
    """The 8-bit value nearest each 16-bit one: v * 255 / 65535."""
    return np.round(values / 257).astype(np.uint8)


GRAY = (np.arange(12 * 10).reshape(12, 10) * 546).astype(np.uint16)  # 0 .. 64974: dark to light


def pgm16(path: Path, values: np.ndarray) -> Path:
    h, w = values.shape
    path.write_bytes(f"P5\n{w} {h}\n65535\n".encode() + values.astype(">u2").tobytes())
    return path


@pytest.mark.parametrize(
    "write",
    [
        lambda p: png16(p / "g.png", GRAY),
        lambda p: Image.fromarray(GRAY).save(p / "g.tif") or p / "g.tif",  # mode I;16
        lambda p: pgm16(p / "g.pgm", GRAY),  # mode I
    ],
    ids=["png", "tiff", "pgm"],
)
def test_16_bit_grayscale_scales_to_8_bits(tmp_path: Path, write) -> None:
    path = write(tmp_path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")  # the modes Pillow's own RGB conversion clips at 255
    image = decode_image(path)
    assert image.dtype == np.uint8 and image.shape == (3, *GRAY.shape)
    for channel in image:
        np.testing.assert_array_equal(channel, eight_bits(GRAY))
    np.testing.assert_array_equal(read_rgb(io.BytesIO(path.read_bytes())), image)  # serve's stream path


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_rgb_and_rgba_keep_their_colours(tmp_path: Path, channels: int) -> None:
    values = np.random.default_rng(0).integers(0, 65536, (6, 7, channels)).astype(np.uint16)
    image = decode_image(png16(tmp_path / "c.png", values))
    expected = eight_bits(values[..., :3]).transpose(2, 0, 1)
    assert np.abs(image.astype(int) - expected).max() <= 1  # Pillow's own rounding of 16 to 8 bits


def test_training_reads_16_bit_images_as_their_values(tmp_path: Path) -> None:
    for name, value in (("dark", 10_000), ("light", 50_000)):
        (tmp_path / "train" / name).mkdir(parents=True)
        png16(tmp_path / "train" / name / "a.png", np.full((8, 8), value, np.uint16))
    files = open_split(tmp_path, progress=False)
    means = {files.classes[int(files.labels[i])]: files.image(i).float().mean().item() for i in range(len(files))}
    assert means == {"dark": 39.0, "light": 195.0}
    assert torch.equal(files.image(0), torch.from_numpy(decode_image(files.path(0))))
