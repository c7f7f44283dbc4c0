"""What a Job's container would observe when it fetches a URL from its node.

The lab runs no containers, but a Job that checks an endpoint from a node (`wget`/`curl` of an http URL,
with hostNetwork so that 127.0.0.1 is the node) must report what that node really serves: the lab
performs the request from the node's own loopback address and the pod exits 0 or 1 accordingly.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor

_URL = re.compile(r"https?://[^\s'\"]+")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def probe_url(pod: dict) -> str | None:
    """The URL a probe Job's first container fetches, or None for any other container."""
    container = (pod.get("spec") or {}).get("containers", [{}])[0]
    words = " ".join([*(container.get("command") or []), *(container.get("args") or [])])
    if not re.search(r"\b(wget|curl)\b", words):
        return None
    match = _URL.search(words)
    return match.group(0) if match else None


def on_node(url: str, node_ip: str, host_network: bool) -> str:
    """Loopback means the node itself with hostNetwork (each lab node has its own loopback address)."""
    if not host_network:
        return url
    for host in _LOOPBACK_HOSTS:
        url = url.replace(f"//{host}:", f"//{node_ip}:").replace(f"//{host}/", f"//{node_ip}/")
    return url


def _fetch(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 0 if response.status < 400 else 1
    except (urllib.error.URLError, OSError):
        return 1


class Prober:
    """Runs probe requests off the controller loop; results are read back by pod uid."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe")
        self._running: dict[str, Future[int]] = {}

    def exit_code(self, uid: str, url: str, on_done) -> int | None:
        """The probe's exit code once known; starts it on the first call, calls `on_done` when it ends."""
        future = self._running.get(uid)
        if future is None:
            future = self._pool.submit(_fetch, url, self.timeout)
            future.add_done_callback(lambda _f: on_done())
            self._running[uid] = future
        return future.result() if future.done() else None
