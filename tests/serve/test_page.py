"""The page at GET /, driven in headless Chromium: choose images, read the rendered top-1, keep a screenshot."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ..inference.conftest import CIFAR_PNG
from .browser import CHROMIUM
from .conftest import httpx

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium); the page test needs a browser"
)
pytest.importorskip("websockets", reason="driving Chromium needs websockets (pip install 'resnets[test]')")

SCREENSHOT_ENV = "RESNETS_SCREENSHOT"  # also save the screenshot there (how docs/serve.png is made)


def test_the_page_shows_each_images_top_classes_and_a_clear_error(server, tmp_path):
    from .browser import Browser

    images = [sorted((CIFAR_PNG / "test" / c).iterdir())[0] for c in ("cat", "ship", "horse")]
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not an image")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(f"{server.url}/")
        browser.wait_for("document.getElementById('model').textContent.includes('classes')")
        browser.choose_files("#files", [*images, not_image])
        browser.wait_for("document.querySelectorAll('.card[data-state=done], .card[data-state=error]').length === 4")
        shown = browser.evaluate(
            "Array.from(document.querySelectorAll('.card')).map(c => [c.querySelector('.name').textContent, "
            "c.dataset.state, c.dataset.top1 || c.querySelector('.status')?.textContent, c.querySelectorAll('.row')"
            ".length])"
        )
        png = browser.screenshot()
    finally:
        browser.close()
    by_name = {name: (state, text, rows) for name, state, text, rows in shown}
    for image in images:
        expected = httpx.post(f"{server.url}/predict", content=image.read_bytes()).json()[0]["top"][0]["label"]
        assert by_name[image.name] == ("done", expected, 5)  # top-1 as the API gives it, and five bars
    state, text, rows = by_name["notes.txt"]
    assert state == "error" and "Not a usable image" in text and "cannot decode image" in text and rows == 0
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert picture.shape[0] > 300 and picture.shape[1] > 500
    assert picture.std() > 20 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 100  # not blank
    (tmp_path / "serve.png").write_bytes(png)
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(tmp_path / "serve.png", os.environ[SCREENSHOT_ENV])
