"""The lab's apid: one mutual-TLS HTTP endpoint that runs talosctl command lines for lab/bin/talosctl.

POST / with `{"argv": [...], "context": {"endpoints": [...], "nodes": [...], "cwd": "..."}}`
answers `{"rc": ..., "stdout": ..., "stderr": ...}`.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lab.talos.cluster import TalosCluster
from lab.talos.context import TalosContext

_MAX_BODY = 1 << 20


class TalosApiServer(ThreadingHTTPServer):
    """Serves one TalosCluster over TLS; every client must present a certificate the CA signed."""

    # Real apid listens with a deep backlog (Go's net: the kernel's somaxconn); socketserver's
    # default of 5 refuses connections as soon as a rollout batch's calls arrive together.
    request_queue_size = 128
    daemon_threads = True

    def __init__(self, address: tuple[str, int], cluster: TalosCluster, ssl_context: ssl.SSLContext) -> None:
        if ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("the Talos API requires client certificates: use verify_mode=CERT_REQUIRED")
        super().__init__(address, _Handler)
        self.cluster = cluster
        # The handshake happens in the handler thread, so a stalled client blocks nobody else.
        self.socket = ssl_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> TalosApiServer:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="talos-apid", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        super().shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve_talos_api(cluster: TalosCluster, host: str, port: int, ssl_context: ssl.SSLContext) -> TalosApiServer:
    """Start serving in a background thread; port 0 picks a free one (see `.port`)."""
    return TalosApiServer((host, port), cluster, ssl_context).start()


def server_ssl_context(ca_pem: bytes, crt_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server context for apid: our certificate, and client certificates checked against the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca_pem.decode())
    with tempfile.TemporaryDirectory() as tmp:
        crt, key = Path(tmp) / "apid.crt", Path(tmp) / "apid.key"
        crt.write_bytes(crt_pem)
        key.touch(mode=0o600)
        key.write_bytes(key_pem)
        context.load_cert_chain(crt, key)
    return context


class _Handler(BaseHTTPRequestHandler):
    server: TalosApiServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        try:
            argv, context = self._read_request()
        except ValueError as exc:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        try:
            result = self.server.cluster.run(argv, context)
        except Exception as exc:  # a lab bug or a failing hook: say so instead of dropping the connection
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})
            raise
        self._answer(HTTPStatus.OK, {"rc": result.rc, "stdout": result.stdout, "stderr": result.stderr})

    def _read_request(self) -> tuple[list[str], TalosContext]:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= _MAX_BODY:
            raise ValueError("a JSON body is required")
        body = json.loads(self.rfile.read(length))
        argv, context = body.get("argv"), body.get("context") or {}
        if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
            raise ValueError("argv must be a list of strings")
        return argv, TalosContext(
            endpoints=tuple(str(e) for e in context.get("endpoints") or ()),
            nodes=tuple(str(n) for n in context.get("nodes") or ()),
            cwd=str(context["cwd"]) if context.get("cwd") else None,
        )

    def _answer(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the lab logs commands elsewhere."""
