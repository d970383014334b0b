"""The real server, started as `python -m resnets serve` on a free port of 127.0.0.1, and stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..inference.conftest import cifar_model  # noqa: F401 (the fixture)

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (pip install 'resnets[test]')")
pytest.importorskip("fastapi", reason="serve needs FastAPI and uvicorn (pip install 'resnets[deploy]')")

STARTUP_S = 90  # importing torch and loading the model on a busy 2-core machine
MAX_BYTES = 200_000
MAX_PIXELS = 100_000
MAX_IMAGES = 4
MAX_DECODED_PIXELS = 250_000
READ_TIMEOUT_S = 3


@pytest.fixture(scope="session")
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-cache")


@pytest.fixture(autouse=True)
def _shared_cache(_onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server here loads the same checkpoint: one cache for them all, so its ONNX export (seconds) runs once."""
    monkeypatch.setenv("RESNETS_CACHE", str(_onnx_cache))


@dataclass
class Server:
    """A running server: its base URL and process (its stderr goes to `log`)."""

    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> int:
        """SIGTERM, as a process manager stops it; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(log: Path, *args: str) -> Iterator[Server]:
    """`resnets serve ARGS` on a free local port (default host: 127.0.0.1), once /health answers."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "resnets", "serve", *args, "--port", str(port)],
            stdout=err,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not answer within {STARTUP_S} s: {log.read_text()}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(cifar_model, tmp_path_factory) -> Iterator[Server]:  # noqa: F811
    """The CIFAR ResNet-8 served with small limits: MAX_BYTES and MAX_IMAGES per request, MAX_PIXELS per image,
    MAX_DECODED_PIXELS at once, READ_TIMEOUT_S for a request's head and body."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    args = ["--checkpoint", str(cifar_model), "--max-bytes", str(MAX_BYTES), "--max-pixels", str(MAX_PIXELS)]
    args += ["--max-images", str(MAX_IMAGES), "--max-decoded-pixels", str(MAX_DECODED_PIXELS)]
    args += ["--read-timeout", str(READ_TIMEOUT_S)]
    with running_server(log, *args, "--batch-wait-ms", "20") as running:
        yield running
        assert running.stop() == 0, log.read_text()
