"""The toolkit's own shared code (module_utils), imported the way Ansible serves it.

The lab reads Alloy configurations with the project's parser and validator and writes the Talos
containerd-metrics patch with the same planner the role uses, so the lab and the toolkit never
disagree about a file's meaning.
"""

from __future__ import annotations

from pathlib import Path

import ansible.module_utils

_MODULE_UTILS = str(Path(__file__).resolve().parents[2] / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils import alloy_syntax, alloy_validator, talos  # noqa: E402

__all__ = ["alloy_syntax", "alloy_validator", "talos"]
