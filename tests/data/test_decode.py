from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnets.core.errors import UserError
from resnets.data.decode import CHUNK, BadImage, decode_files, decode_image

from .conftest import save_image


def pixels(path: Path) -> np.ndarray:
    """What decode_image should give: Pillow's own RGB conversion, as [3, H, W]."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).transpose(2, 0, 1)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "CMYK", "P", "1"])  # 16-bit modes: test_high_bit_depth.py
def test_any_mode_becomes_uint8_rgb(tmp_path: Path, mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    path = save_image(tmp_path / f"img.{fmt.lower()}", size=(6, 5), mode=mode, fmt=fmt)
    with Image.open(path) as img:
        assert img.mode == mode
    image = decode_image(path)
    assert image.dtype == np.uint8 and image.shape == (3, 5, 6) and image.flags.c_contiguous
    np.testing.assert_array_equal(image, pixels(path))


def test_grayscale_gives_three_equal_channels(tmp_path: Path) -> None:
    image = decode_image(save_image(tmp_path / "g.png", mode="L"))
    assert np.array_equal(image[0], image[1]) and np.array_equal(image[1], image[2])
    assert image.std() > 0


def test_rgba_keeps_the_colour_channels(tmp_path: Path) -> None:
    rgba = np.random.default_rng(1).integers(0, 256, (4, 4, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "a.png"), rgba[..., :3].transpose(2, 0, 1))


def test_content_decides_the_format_png_named_jpeg(tmp_path: Path) -> None:
    path = save_image(tmp_path / "really_png.JPEG", fmt="PNG")
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)  # what save_image drew
    np.testing.assert_array_equal(decode_image(path), rgb.transpose(2, 0, 1))  # lossless: it was read as PNG


def truncated_jpeg(path: Path) -> Path:
    save_image(path, size=(32, 32), fmt="JPEG")
    path.write_bytes(path.read_bytes()[:300])
    return path


@pytest.mark.parametrize("make", [truncated_jpeg, lambda p: (p.write_bytes(b""), p)[1]], ids=["truncated", "zero-byte"])
def test_unreadable_file_is_an_error_naming_it(tmp_path: Path, make) -> None:
    path = make(tmp_path / "bad.jpg")
    with pytest.raises(BadImage, match=re.escape(str(path)) + r".*; replace or remove it$") as info:
        decode_image(path)
    assert "\n" not in str(info.value) and "--skip-bad-images" not in str(info.value)  # train adds it, not all can


def test_bad_files_fail_decode_files_unless_skipped(tmp_path: Path) -> None:
    files = [save_image(tmp_path / f"{i}.png", seed=i) for i in range(4)]
    files.insert(1, truncated_jpeg(tmp_path / "t.jpg"))
    files.insert(3, tmp_path / "empty.png")
    files[3].write_bytes(b"")
    with pytest.raises(UserError, match=re.escape(str(files[1]))):
        decode_files(files, workers=1, progress=False)
    decoded = decode_files(files, skip_bad_images=True, workers=1, progress=False)
    assert decoded.kept.tolist() == [0, 2, 4, 5]
    assert len(decoded.bad) == 2 and str(files[3]) in decoded.bad[1]
    np.testing.assert_array_equal(np.stack(decoded.images), np.stack([pixels(files[i]) for i in (0, 2, 4, 5)]))


@pytest.mark.parametrize("side", [12, 16], ids=["warning-range", "error-range"])
def test_decompression_bomb_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    # Pillow warns between MAX_IMAGE_PIXELS and twice that (12x12 = 144) and raises above (16x16 = 256).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = save_image(tmp_path / "bomb.png", size=(side, side))
    with pytest.raises(UserError, match=re.escape(f"{path} is too big to decode safely")):
        decode_image(path)


def test_images_of_different_sizes_keep_their_own_sizes(tmp_path: Path) -> None:
    sizes = [(8, 8), (9, 8), (7, 11)]
    files = [save_image(tmp_path / f"{i}.png", size=size, seed=i) for i, size in enumerate(sizes)]
    decoded = decode_files(files, workers=1, progress=False)
    assert [image.shape for image in decoded.images] == [(3, h, w) for w, h in sizes]
    for image, path in zip(decoded.images, files):
        np.testing.assert_array_equal(image, pixels(path))


def test_worker_processes_give_the_same_result_in_order(tmp_path: Path) -> None:
    files = [save_image(tmp_path / f"{i:03d}.png", seed=i) for i in range(2 * CHUNK + 5)]  # enough for 2 workers
    files[CHUNK + 3].write_bytes(b"broken")
    serial = decode_files(files, skip_bad_images=True, workers=1, progress=False)
    parallel = decode_files(files, skip_bad_images=True, workers=2, progress=False)
    np.testing.assert_array_equal(np.stack(parallel.images), np.stack(serial.images))
    assert parallel.kept.tolist() == serial.kept.tolist() == [i for i in range(len(files)) if i != CHUNK + 3]
    assert parallel.bad == serial.bad and len(parallel.bad) == 1
    with pytest.raises(UserError, match=re.escape(str(files[CHUNK + 3]))):
        decode_files(files, workers=2, progress=False)


def test_no_workers_decodes_in_this_process_and_a_negative_count_is_an_error(tmp_path: Path) -> None:
    files = [save_image(tmp_path / "a.png"), save_image(tmp_path / "b.png", seed=1)]
    here = decode_files(files, workers=0, progress=False)  # --workers 0 with --decode-cache: no process pool
    np.testing.assert_array_equal(
        np.stack(here.images), np.stack(decode_files(files, workers=1, progress=False).images)
    )
    with pytest.raises(UserError, match="--workers -1 must be 0"):
        decode_files(files, workers=-1, progress=False)


def test_all_files_bad_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 1 images could be decoded"):
        decode_files([tmp_path / "a.png"], skip_bad_images=True, workers=1, progress=False)


CTRL_C_DURING_DECODING = """
import os, signal, sys, threading
from pathlib import Path
from resnets.data.decode import decode_files

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job starts with it ignored)
files = sorted(Path(sys.argv[1]).rglob("*.JPEG")) * 1000  # far more than a second's work for two processes
threading.Timer(1.0, os.killpg, (0, signal.SIGINT)).start()  # a terminal's Ctrl-C: the whole group, pool included
try:
    decode_files(files, workers=2, progress=False)
    print("decoded everything")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_while_decoding_stops_the_main_process_and_no_worker_prints_a_traceback(imagenette, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_DURING_DECODING)
    command = [sys.executable, str(script), str(imagenette)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, start_new_session=True)
    assert run.stdout.strip() == "interrupted", run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
