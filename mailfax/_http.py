"""Runs an ASGI app on a loopback or public socket inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

# Seconds an idle client connection is kept open: longer than httpx's keep-alive (5 s), so the
# client always drops an idle connection first. Were it the server, a request sent just as it
# closes fails mid-request, and for a fax send that is a lost answer (reconciled a minute later).
KEEP_ALIVE = 65


class _EmbeddedServer(uvicorn.Server):
    # The gateway owns signal handling for the whole process; uvicorn must not
    # replace SIGTERM/SIGINT handlers behind its back.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def parse_hostport(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" (IPv6 hosts in brackets) into its parts."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class ListenError(OSError):
    """A listener could not bind its address (in use, not allowed, not on this machine)."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.host = host
        self.port = port


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port so clients can connect as soon as this returns."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when
    # the listener says it is TCP; without it every response waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError as exc:
        sock.close()
        raise ListenError(host, port, exc) from exc
    sock.setblocking(False)
    return sock


class HttpServer:
    """An ASGI app served by uvicorn on an already-listening socket."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._sock: socket.socket | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._sock is not None, "server not started"
        return int(self._sock.getsockname()[1])

    @property
    def host(self) -> str:
        return self._host

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._sock = bind_listener(self._host, self._port)
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            timeout_keep_alive=KEEP_ALIVE,
        )
        self._server = _EmbeddedServer(config)
        # The socket already listens, so connections made before uvicorn's
        # accept loop runs simply wait in the backlog: no readiness polling.
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        assert self._sock is not None
        self._sock.close()
        self._server = None
        self._task = None
