"""A throwaway HTTP server on 127.0.0.1 for download tests, and a URL where nothing listens."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def serve(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve `folder`; yield its base URL and the list of paths requested so far."""
    requests: list[str] = []

    class Recording(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            requests.append(self.path)

    handler = functools.partial(Recording, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)  # fast shutdown
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
        finally:
            httpd.shutdown()
            thread.join()


def closed_port_url(name: str) -> str:
    """A URL for `name` on a local port that was just closed: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"
