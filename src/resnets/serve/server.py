"""The app on uvicorn: a socket bound before anything is announced, a deadline for each request's head, and a
shutdown that waits for the requests in flight for at most a grace period."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from ..core.errors import UserError


class HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol, but a connection whose request head has not all come within the config's
    `read_timeout_s` (of its opening, or of its last response) is closed: uvicorn's keep-alive timer restarts at
    every byte, so a client that sends a byte a second would hold the connection for as long as it likes."""

    config: ServeConfig  # ServeConfig is what installs this protocol
    deadline: asyncio.TimerHandle | None = None

    # uvicorn's own signature: it narrows asyncio.Protocol's BaseTransport, and ignores the same error
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        self._arm()  # first: uvicorn goes on to read a pipelined request, whose head disarms it
        super().on_response_complete()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's head has come; its body has the app's own deadline
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(self.config.read_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class ServeConfig(uvicorn.Config):
    """uvicorn's settings with HeadDeadline and its `read_timeout_s`."""

    def __init__(self, app: Any, read_timeout_s: float, **options: Any):
        super().__init__(app, http=HeadDeadline, **options)
        self.read_timeout_s = read_timeout_s


class Server(uvicorn.Server):
    """uvicorn's server, but a SIGTERM or Ctrl-C ends the process with 0 after the graceful shutdown.

    uvicorn re-raises the signal once it has shut down, so the process would die of it (exit -15); a service stopped
    on purpose has not failed.
    """

    @contextlib.contextmanager
    def capture_signals(self):
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` for uvicorn to listen on; a one-line UserError if it cannot be bound."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        reason = e.strerror or str(e)
        raise UserError(f"cannot serve on {host}:{port}: {reason}; pass another --port (or --host)") from None
    sock.set_inheritable(True)  # --workers N: the worker processes listen on it
    return sock


def reachable_from_elsewhere(sock: socket.socket) -> bool:
    """Whether `sock` is bound to an address other machines can reach (anything but a loopback address)."""
    return not ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def serve(config: ServeConfig, sock: socket.socket) -> None:
    """Run `config`'s app on `sock` (in `config.workers` processes) until SIGTERM or Ctrl-C."""
    if config.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        Server(config).run(sockets=[sock])
