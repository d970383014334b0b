"""`resnets serve` against careless and hostile clients: odd images among good ones, too many images or pixels, slow
clients, broken models, bad flags, a port in use, and what the service tells whoever can reach it."""

from __future__ import annotations

import asyncio
import io
import math
import os
import select
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.cli import main
from resnets.inference import Predictor
from resnets.serve.app import create_app
from resnets.serve.options import ServeSettings
from resnets.serve.server import reachable_from_elsewhere

from ..inference.conftest import CIFAR_PNG, cifar_trained
from .conftest import MAX_DECODED_PIXELS, MAX_IMAGES, MAX_PIXELS, STARTUP_S, httpx, running_server
from .test_server import flat_png

GOOD = sorted((CIFAR_PNG / "test").rglob("*.png"))[:8]


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def odd_images() -> list[bytes]:
    """Images a CIFAR model does not take as they are: a photo-sized JPEG, and long thin strips."""
    rng = np.random.default_rng(0)
    photo = encoded(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), "JPEG")
    return [photo, encoded(np.zeros((1, 3000, 3), np.uint8), "PNG"), encoded(np.zeros((3000, 1, 3), np.uint8), "PNG")]


def test_odd_images_fail_no_other_clients_request(server):
    odd = odd_images()
    bodies = [b for i in range(48) for b in ([odd[i // 6 % 3]] if i % 6 == 3 else [GOOD[i % len(GOOD)].read_bytes()])]

    def client(n: int) -> list[tuple[bool, httpx.Response]]:
        with httpx.Client(timeout=60) as c:
            return [(bodies[i] in odd, c.post(f"{server.url}/predict", content=bodies[i])) for i in range(n, 48, 8)]

    with ThreadPoolExecutor(8) as pool:
        answers = [a for part in pool.map(client, range(8)) for a in part]
    assert len(answers) == 48
    assert all(r.status_code == 200 for is_odd, r in answers if not is_odd), [r.text for _, r in answers]
    assert all(r.status_code == 200 or 400 <= r.status_code < 500 for is_odd, r in answers if is_odd)


def test_too_many_images_or_pixels_in_a_request_are_413_with_the_flag(server):
    tiny = [("files", (f"{i}.png", flat_png(8, 8), "image/png")) for i in range(MAX_IMAGES + 1)]
    response = httpx.post(f"{server.url}/predict", files=tiny)
    assert response.status_code == 413 and "--max-images" in response.json()["detail"]
    side = math.isqrt(MAX_PIXELS)  # each image within --max-pixels; together over --max-decoded-pixels
    count = MAX_DECODED_PIXELS // (side * side) + 1
    assert count <= MAX_IMAGES
    large = [("files", (f"{i}.png", flat_png(side, side), "image/png")) for i in range(count)]
    response = httpx.post(f"{server.url}/predict", files=large)
    assert response.status_code == 413 and "--max-decoded-pixels" in response.json()["detail"]
    assert httpx.post(f"{server.url}/predict", files=large[:1]).status_code != 413  # within both limits


@pytest.mark.parametrize("side", [400, 1000])  # between Pillow's warning and its error (2x its limit), and past both
def test_a_bomb_is_refused_naming_max_pixels(server, side):
    response = httpx.post(f"{server.url}/predict", content=flat_png(side, side))
    detail = response.json()["detail"]
    assert response.status_code == 413 and f"--max-pixels {MAX_PIXELS}" in detail and str(2 * MAX_PIXELS) not in detail


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def trickle(sock: socket.socket, data: bytes) -> bytes | None:
    """Send `data` a byte every 0.1 s; the server's answer (b"" if it closed the connection without one) as soon as
    there is one, or None if it let the whole of `data` trickle in."""
    for byte in data:
        if select.select([sock], [], [], 0.1)[0]:
            try:
                return sock.recv(65536)
            except ConnectionResetError:
                return b""
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return b""
    return None


HEAD = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"


def test_a_client_trickling_its_head_or_body_is_cut_off(server):
    # 300 bytes at 10 a second: 30 s, ten times --read-timeout
    with connect(server.url) as sock:
        assert trickle(sock, HEAD + b"X-Padding: " + b"a" * 300) == b""
    with connect(server.url) as sock:
        sock.sendall(HEAD + b"\r\n")
        answer = trickle(sock, b"\0" * 300)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408") and b"--read-timeout" in answer
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_sigterm_ends_a_slow_request_within_the_grace_period(cifar_model, tmp_path):
    args = ["--checkpoint", str(cifar_model), "--read-timeout", "600", "--shutdown-timeout", "1"]
    with running_server(tmp_path / "server.log", *args) as server, connect(server.url) as sock:
        sock.sendall(HEAD + b"\r\n")
        answers = []
        client = threading.Thread(target=lambda: answers.append(trickle(sock, b"\0" * 600)))  # 60 s if let
        client.start()
        time.sleep(1)  # the request is in flight, its body trickling in
        assert server.stop() == 0  # waits at most 30 s
        client.join()
    assert answers != [None]  # the server hung up on the client, long before it had sent its body


def test_connections_past_max_connections_are_503(cifar_model, tmp_path):
    args = ["--checkpoint", str(cifar_model), "--max-connections", "2"]
    with running_server(tmp_path / "server.log", *args) as server, connect(server.url):
        with connect(server.url):  # two open connections: the request's is a third
            assert httpx.get(f"{server.url}/health").status_code == 503
        for _ in range(50):  # until the server has seen the connection close
            if httpx.get(f"{server.url}/health").status_code == 200:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("a second connection was refused")
        assert server.stop() == 0


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--batch-wait-ms", "inf"),
        ("--batch-wait-ms", "nan"),
        ("--batch-wait-ms", "1e9"),
        ("--read-timeout", "0"),
        ("--read-timeout", "nan"),
        ("--shutdown-timeout", "inf"),
        ("--max-images", "0"),
        ("--max-batch", "0"),
        ("--workers", "0"),
        ("--port", "70000"),
        ("--max-decoded-pixels", "10"),
        ("--max-connections", "0"),
    ],
)
def test_serve_flags_out_of_range_are_one_line_errors(flag, value, capsys):
    # a run that does not exist: what is checked first is the flags, before a model loads or a port binds
    assert main(["serve", "--checkpoint", "no-such-run", flag, value]) == 2
    err = capsys.readouterr().err
    assert f"{flag} " in err and "no-such-run" not in err and err.count("\n") == 1


def test_a_port_in_use_is_one_line_and_nothing_is_announced(cifar_model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "resnets", "serve", "--checkpoint", str(cifar_model), "--backend", "torch"]
            + ["--port", str(port)],
            capture_output=True,
            text=True,
            timeout=STARTUP_S,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    assert result.returncode == 2 and "serving" not in result.stdout and "Traceback" not in result.stderr
    assert f"resnets serve: error: cannot serve on 127.0.0.1:{port}: " in result.stderr, result.stderr


class Bound:
    """A stand-in for a socket bound to `address`."""

    def __init__(self, address: str):
        self.address = address

    def getsockname(self) -> tuple[str, int]:
        return self.address, 8000


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("::1", False), ("0.0.0.0", True), ("::", True)])
def test_a_host_other_machines_reach_is_warned_of_once(cifar_model, monkeypatch, capsys, host, warned):
    import resnets.serve.server as server

    monkeypatch.setattr(server, "bind", lambda host, port: Bound(host))  # nothing listens: no address is opened
    monkeypatch.setattr(server, "serve", lambda config, sock: None)
    assert main(["serve", "--checkpoint", str(cifar_model), "--backend", "torch", "--host", host]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "no authentication" in line]
    url_host = f"[{host}]" if ":" in host else host  # IPv6 addresses are bracketed in a URL
    assert len(warnings) == warned and f"serving resnet8 on http://{url_host}:8000/" in captured.out


def test_a_real_loopback_socket_is_not_reachable_from_elsewhere():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert not reachable_from_elsewhere(sock)


def in_process(predictor: Predictor, requests: list[tuple[str, str, dict]], **settings) -> list[httpx.Response]:
    """The answers of the app, run without a server process (its lifespan included), to (method, path, options)."""
    app = create_app(predictor, ServeSettings(**settings))

    async def ask() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://resnets") as client:
                return [await client.request(method, path, **options) for method, path, options in requests]

    return asyncio.run(ask())


def test_info_names_the_model_but_no_path_and_there_is_no_schema():
    secret = os.path.join(os.sep, "home", "someone", "secret-project", "runs", "r8")
    paths = ["/info", "/openapi.json", "/docs", "/redoc"]
    info, *others = in_process(Predictor(cifar_trained(fit=False), source=secret), [("GET", p, {}) for p in paths])
    assert info.status_code == 200 and info.json()["model"] == "resnet8" and info.json()["source"] == "r8"
    assert "secret-project" not in info.text
    assert [response.status_code for response in others] == [404] * 3


def test_a_model_with_non_finite_outputs_is_an_error_that_says_so():
    trained = cifar_trained(fit=False)
    with torch.no_grad():
        trained.model.fc.bias.fill_(math.nan)
    request = ("POST", "/predict", {"content": GOOD[0].read_bytes(), "params": {"name": "cat.png"}})
    (response,) = in_process(Predictor(trained), [request])
    assert response.status_code == 500
    assert response.json()["detail"].startswith("cat.png: the model's outputs are not finite")


def test_pillows_own_limit_is_left_as_it_was():
    before = Image.MAX_IMAGE_PIXELS
    requests = [("POST", "/predict", {"content": flat_png(*size)}) for size in ((8, 8), (8, 9))]
    fits, bomb = in_process(Predictor(cifar_trained(fit=False)), requests, max_pixels=64)
    assert fits.json()[0]["top"] and "--max-pixels 64" in bomb.json()["detail"]
    assert Image.MAX_IMAGE_PIXELS == before
