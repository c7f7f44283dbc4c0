"""A loopback HTTP server that answers each request with the next step of a script, to put a Kubernetes API
client through timeouts, transient errors and silent watches that the lab cannot time exactly."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

# Steps: ("json", body) answers 200 with body; ("status", code) answers code with a Status body;
# ("events", [event, ...]) streams watch events then ends; "hang" answers nothing until the test ends.
Step = tuple[str, object] | str


class ScriptedApi:
    def __init__(self, script: list[Step]) -> None:
        self.script = list(script)
        self.requests: list[str] = []
        self.methods: list[str] = []
        self.released = threading.Event()
        self._lock = threading.Lock()

    def next_step(self, method: str, path: str) -> Step:
        with self._lock:
            self.requests.append(path)
            self.methods.append(method)
            if not self.script:
                raise AssertionError(f"request beyond the script: {path}")
            return self.script.pop(0)


def _handler(api: ScriptedApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            step = api.next_step(self.command, self.path)
            if step == "hang":
                api.released.wait()
                return
            kind, value = step
            if kind == "json":
                self._send(200, json.dumps(value).encode())
            elif kind == "status":
                status = {"kind": "Status", "status": "Failure", "code": value, "message": f"scripted {value}"}
                self._send(int(value), json.dumps(status).encode())
            elif kind == "events":
                self._send(200, b"".join(json.dumps(event).encode() + b"\n" for event in value))

        def do_PATCH(self) -> None:
            self.do_GET()

        def do_POST(self) -> None:
            self.do_GET()

        def do_DELETE(self) -> None:
            self.do_GET()

    return Handler


@contextmanager
def scripted_api(tmp_path: Path, script: list[Step]) -> Iterator[tuple[ScriptedApi, str]]:
    """(the script's state, a kubeconfig that points at it)."""
    api = ScriptedApi(script)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "scripted",
                "contexts": [{"name": "scripted", "context": {"cluster": "scripted", "user": "ops"}}],
                "clusters": [{"name": "scripted", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "ops", "user": {"token": "t"}}],
            }
        )
    )
    try:
        yield api, str(kubeconfig)
    finally:
        api.released.set()
        server.shutdown()
        server.server_close()
