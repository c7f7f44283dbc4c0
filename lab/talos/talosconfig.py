"""talosconfig files, as `talosctl config` writes them (PEM material base64-encoded)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml


def write_talosconfig(
    path: str | os.PathLike[str],
    context: str,
    endpoints: list[str],
    nodes: list[str],
    ca_pem: bytes,
    crt_pem: bytes,
    key_pem: bytes,
) -> Path:
    """Write a talosconfig whose current context is `context`; the file is private (0600)."""
    config = {
        "context": context,
        "contexts": {
            context: {
                "endpoints": list(endpoints),
                "nodes": list(nodes),
                "ca": _b64(ca_pem),
                "crt": _b64(crt_pem),
                "key": _b64(key_pem),
            }
        },
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch(mode=0o600)
    target.chmod(0o600)
    target.write_text(yaml.safe_dump(config, sort_keys=False, indent=4))
    return target


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode()
