"""Threaded HTTP(S) endpoints that can be closed and reopened on the same address."""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    raw_query: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


def text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode() if message else b"")


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    handle_request: Handler  # set on the per-endpoint subclass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=parts.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            raw_query=parts.query,
        )
        response = type(self).handle_request(request)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_HEAD = _serve  # noqa: N815 - BaseHTTPRequestHandler's dispatch names

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging."""


class _Server(ThreadingHTTPServer):
    # Real exporters listen with a deep backlog (Go's net: the kernel's somaxconn); socketserver's
    # default of 5 refuses connections as soon as a rollout batch's calls arrive together.
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[_RequestHandler], tls: ssl.SSLContext | None):
        self._tls = tls
        super().__init__(address, handler)

    def get_request(self):  # type: ignore[override]
        connection, address = super().get_request()
        if self._tls is not None:
            # Handshake in the worker thread, so a slow client cannot block the accept loop.
            connection = self._tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def handle_error(self, request, client_address) -> None:  # type: ignore[override]
        """Scrapers hanging up after their timeout are routine here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def finish_request(self, request, client_address) -> None:  # type: ignore[override]
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


class Endpoint:
    """An HTTP server for one address; `close()` refuses connections, `open()` listens again."""

    def __init__(self, host: str, port: int, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self._handler_class = type("BoundHandler", (_RequestHandler,), {"handle_request": staticmethod(handler)})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def is_open(self) -> bool:
        return self._server is not None

    def open(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            self._server = _Server((self.host, self.port), self._handler_class, self.tls)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        with self._lock:
            if self._server is None:
                return
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None
