"""Shared pytest setup: make the project's module_utils importable as Ansible would."""

from __future__ import annotations

import sys
from pathlib import Path

import ansible.module_utils

ROOT = Path(__file__).resolve().parent.parent
# Ansible serves ./module_utils as ansible.module_utils.* (ansible.cfg); tests import them the same way.
ansible.module_utils.__path__.append(str(ROOT / "module_utils"))
for extra in (ROOT, ROOT / "library", ROOT / "filter_plugins"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
