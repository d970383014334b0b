"""`resnets serve` over real HTTP: every endpoint, every limit, concurrent clients, and SIGTERM."""

from __future__ import annotations

import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnets.cli import main

from ..conftest import CIFAR_CLASSES
from ..inference.conftest import CIFAR_PNG
from .conftest import MAX_BYTES, MAX_PIXELS, httpx, running_server

IMAGES = sorted((CIFAR_PNG / "test").rglob("*.png"))[::7]  # a few of every class


def flat_png(width: int, height: int) -> bytes:
    """One colour: it compresses to almost nothing, and decodes to width * height pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, "PNG")
    return buffer.getvalue()


def test_health_info_and_the_page(server):
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok"
    info = httpx.get(f"{server.url}/info").json()
    assert info["classes"] == CIFAR_CLASSES and info["input_size"] == [32, 32] and info["view"] == "full"
    assert info["device"] == "cpu" and info["limits"]["max_bytes"] == MAX_BYTES
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<input" in page.text and 'type="file"' in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # no external assets: works offline


def test_a_raw_body_gets_the_json_of_predict(server, cifar_model, capsys):
    file = IMAGES[0]
    response = httpx.post(f"{server.url}/predict", content=file.read_bytes(), params={"name": file.name})
    assert response.status_code == 200
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(cifar_model), str(file), "--json"]) == 0
    (expected,) = json.loads(capsys.readouterr().out)
    (got,) = response.json()
    assert got["file"] == file.name
    assert [t["index"] for t in got["top"]] == [t["index"] for t in expected["top"]]
    assert [t["label"] for t in got["top"]] == [t["label"] for t in expected["top"]]
    probabilities = [[t["probability"] for t in entry["top"]] for entry in (got, expected)]
    np.testing.assert_allclose(*probabilities, rtol=1e-5)


def test_multipart_files_are_answered_in_order(server):
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in IMAGES[:3]]
    response = httpx.post(f"{server.url}/predict", files=files, params={"top_k": 2})
    assert response.status_code == 200, response.text
    assert [e["file"] for e in response.json()] == [p.name for p in IMAGES[:3]]
    assert all(len(e["top"]) == 2 for e in response.json())


@pytest.mark.parametrize(
    "body, status, reason",
    [
        (b"hello, this is text", 400, "cannot decode image"),
        (IMAGES[1].read_bytes()[:200], 400, "cannot decode image"),  # truncated PNG
        (flat_png(400, 400), 413, "too big to decode safely"),  # 160k pixels > MAX_PIXELS in 1.3 kB: a small bomb
        (b"", 400, "no image in the request"),
    ],
    ids=["text", "truncated", "bomb", "empty"],
)
def test_a_bad_image_is_a_4xx_with_a_one_line_reason(server, body, status, reason):
    assert 400 * 400 > MAX_PIXELS
    response = httpx.post(f"{server.url}/predict", content=body, params={"name": "upload.png"})
    assert response.status_code == status
    detail = response.json()["detail"]
    assert reason in detail and "\n" not in detail


def test_a_body_over_max_bytes_is_413_whether_announced_or_streamed(server):
    announced = httpx.post(f"{server.url}/predict", content=b"\0" * (MAX_BYTES + 1))
    assert announced.status_code == 413 and "exceeds" in announced.json()["detail"]
    sent = []

    def endless():  # chunked, no Content-Length: only counting while reading can stop it
        while len(sent) < 10_000:  # 640 MB if the server buffered everything
            sent.append(1)
            yield b"\0" * 65536

    try:
        streamed = httpx.post(f"{server.url}/predict", content=endless(), timeout=30)
        assert streamed.status_code == 413
    except (httpx.RemoteProtocolError, httpx.WriteError):
        pass  # the server answered 413 and closed the connection while the client was still sending
    assert len(sent) < 1000  # it stopped reading early: well under 64 MB went out
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_concurrent_clients_are_batched_and_all_answered(server):
    before = httpx.get(f"{server.url}/health").json()
    bodies = [p.read_bytes() for p in IMAGES]
    with httpx.Client() as single:
        alone = [single.post(f"{server.url}/predict", content=b).json()[0]["top"] for b in bodies]

    def client(n: int) -> list:
        with httpx.Client(timeout=60) as c:
            return [(i, c.post(f"{server.url}/predict", content=bodies[i % len(bodies)])) for i in range(n, n + 6)]

    with ThreadPoolExecutor(8) as pool:
        answers = [a for batch in pool.map(client, range(8)) for a in batch]
    assert len(answers) == 48 and all(r.status_code == 200 for _, r in answers)
    for i, response in answers:
        top = response.json()[0]["top"]
        assert [t["index"] for t in top] == [t["index"] for t in alone[i % len(bodies)]]
    after = httpx.get(f"{server.url}/health").json()
    assert after["images"] - before["images"] == len(bodies) + 48
    assert after["largest"] > 1  # several requests' images shared a forward pass


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_it_cleanly(cifar_model, tmp_path, workers):
    log = tmp_path / "server.log"
    with running_server(log, "--checkpoint", str(cifar_model), "--workers", str(workers)) as server:
        for image in IMAGES[:4]:  # with 2 workers, connections go to either process: each has loaded the model
            response = httpx.post(f"{server.url}/predict", content=image.read_bytes())
            assert response.status_code == 200 and len(response.json()[0]["top"]) == 5
        assert server.stop() == 0
    text = log.read_text()
    assert f"on {server.url}/" in text and "127.0.0.1" in server.url and "Traceback" not in text


def test_bad_serve_arguments_are_one_line_errors(cifar_model, capsys):
    assert main(["serve", "--checkpoint", str(cifar_model), "--max-bytes", "lots"]) == 2
    assert "--max-bytes 'lots' is not a size" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(Path("missing-run"))]) == 2
    assert "does not exist" in capsys.readouterr().err
