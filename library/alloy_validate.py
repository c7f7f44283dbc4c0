#!/usr/bin/python
"""Ansible module: validate a Grafana Alloy configuration before it is applied."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: alloy_validate
short_description: Validate a Grafana Alloy configuration offline
description:
  - Checks an Alloy configuration the way C(alloy fmt) (syntax) and C(alloy validate) (unknown components,
    unknown or missing arguments, references out of scope, duplicate blocks, cycles) would, without needing
    the Alloy binary.
  - A directory is one configuration made of its C(*.alloy) files (not recursive), as C(alloy run DIR)
    loads it.
  - When an C(alloy) binary is on the PATH, it also runs C(alloy fmt) on every file and, unless
    I(syntax_only), C(alloy validate) on I(path), and reports both in C(alloy_binary).
  - With I(path) it is read-only, runs in check mode too and never reports a change.
  - With I(content) (the files in memory) it validates them the same way and, with I(dest), installs them
    in that directory only once they validate, as a module's C(validate) option does - files that differ
    are rewritten (mode 0644), C(*.alloy) files that are not part of the configuration are removed, other
    files are left alone. It reports a change, and the diff, only when a file is written or removed;
    check mode reports the same without writing.
options:
  path:
    description: An Alloy file, or a directory of C(*.alloy) files forming one configuration.
    type: path
  content:
    description:
      - The configuration's files by name (plain C(*.alloy) file names), instead of I(path).
      - Errors name the file in a temporary directory the module validates them in.
    type: dict
  dest:
    description: With I(content), the directory to install the validated configuration in (created 0755).
    type: path
  syntax_only:
    description: Only parse the files, as C(alloy fmt) does.
    type: bool
    default: false
  stability_level:
    description: Minimum stability level allowed, as Alloy's C(--stability.level) flag.
    type: str
    choices: [experimental, public-preview, generally-available]
    default: generally-available
  alloy_timeout:
    description: Seconds allowed for each run of the C(alloy) binary, when there is one.
    type: int
    default: 30
author:
  - alloy-migration maintainers
"""

EXAMPLES = r"""
- name: Validate the rendered Alloy configuration directory
  alloy_validate:
    path: "{{ __alloy_render_dir }}"

- name: Validate the rendered files, then install them in the configuration directory
  alloy_validate:
    content: "{{ {'main.alloy': lookup('ansible.builtin.template', 'main.alloy.j2')} }}"
    dest: /srv/alloy/config

- name: Check the syntax of one file only
  alloy_validate:
    path: /tmp/alloy/config.alloy
    syntax_only: true
"""

RETURN = r"""
files:
  description: The files validated, in the order Alloy loads them.
  returned: always
  type: list
  elements: str
errors:
  description: Every error found, located as Alloy locates it (line and column are 1-based).
  returned: always
  type: list
  elements: dict
  sample: [{"file": "main.alloy", "line": 3, "column": 5, "message": "missing required attribute \"url\""}]
written:
  description: With I(dest), the files written (or, in check mode, that would be), by name.
  returned: when dest is given
  type: list
  elements: str
removed:
  description: With I(dest), the C(*.alloy) files removed because the configuration no longer has them.
  returned: when dest is given
  type: list
  elements: str
alloy_warnings:
  description: Problems that do not make Alloy reject the configuration (deprecated functions, components
    the validator does not check).
  returned: always
  type: list
  elements: dict
alloy_binary:
  description: Results of the real C(alloy fmt) and C(alloy validate), or null without C(alloy) on the PATH.
  returned: always
  type: dict
  sample: {"path": "/usr/bin/alloy", "fmt": {"rc": 0, "stderr": ""}, "validate": {"rc": 0, "stderr": ""}}
"""

import os
import re
import subprocess
import tempfile

from ansible.module_utils.alloy_syntax import Diagnostic
from ansible.module_utils.alloy_validator import (
    DEFAULT_STABILITY,
    STABILITY_LEVELS,
    format_diagnostic,
    validate_path,
)
from ansible.module_utils.basic import AnsibleModule


def as_dict(diagnostic: Diagnostic) -> dict[str, object]:
    return {
        "file": diagnostic.filename,
        "line": diagnostic.line,
        "column": diagnostic.column,
        "message": diagnostic.message,
    }


def run_binary(command: list[str], timeout: int) -> dict[str, object]:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"rc": None, "stderr": f"timed out after {timeout}s"}
    return {"rc": completed.returncode, "stderr": completed.stderr.strip()}


def run_alloy_binary(binary: str, path: str, files: list[str], syntax_only: bool, timeout: int) -> dict[str, object]:
    """Run the real alloy fmt on every file (stopping at the first failure) and alloy validate on path."""
    fmt: dict[str, object] = {"rc": 0, "stderr": ""}
    for name in files:
        fmt = run_binary([binary, "fmt", name], timeout)
        if fmt["rc"] != 0:
            break
    report: dict[str, object] = {"path": binary, "fmt": fmt, "validate": None}
    if not syntax_only:
        report["validate"] = run_binary([binary, "validate", path], timeout)
    return report


def binary_failed(report: dict[str, object] | None) -> bool:
    if report is None:
        return False
    return any(isinstance(run, dict) and run["rc"] != 0 for run in (report["fmt"], report["validate"]))


FILE_NAME = re.compile(r"[A-Za-z0-9_.-]+\.alloy")


def write_files(directory: str, content: dict[str, str]) -> None:
    for name, text in content.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
            handle.write(text)


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def install(module: AnsibleModule, source: str, dest: str, content: dict[str, str]) -> dict[str, object]:
    """Make dest hold exactly the configuration's *.alloy files; return what was (or would be) done."""
    present = sorted(n for n in os.listdir(dest) if n.endswith(".alloy")) if os.path.isdir(dest) else []
    before = {name: read_text(os.path.join(dest, name)) for name in sorted(set(content) | set(present))}
    written = [name for name in sorted(content) if before[name] != content[name]]
    removed = [name for name in present if name not in content]
    diff = [
        {
            "before_header": os.path.join(dest, name),
            "after_header": os.path.join(dest, name),
            "before": before[name] or "",
            "after": content.get(name, ""),
        }
        for name in written + removed
    ]
    if not module.check_mode:
        os.makedirs(dest, mode=0o755, exist_ok=True)
        for name in written:
            target = os.path.join(dest, name)
            module.atomic_move(os.path.join(source, name), target)
            os.chmod(target, 0o644)
        for name in removed:
            os.remove(os.path.join(dest, name))
    return {"changed": bool(written or removed), "written": written, "removed": removed, "diff": diff}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path"},
            "content": {"type": "dict"},
            "dest": {"type": "path"},
            "syntax_only": {"type": "bool", "default": False},
            "stability_level": {
                "type": "str",
                "choices": list(STABILITY_LEVELS),
                "default": DEFAULT_STABILITY,
            },
            "alloy_timeout": {"type": "int", "default": 30},
        },
        mutually_exclusive=[("path", "content")],
        required_one_of=[("path", "content")],
        required_by={"dest": "content"},
        supports_check_mode=True,
    )
    params = module.params
    content = params["content"]
    if content is None:
        validate(module, params["path"], None)
        return
    bad = sorted(name for name in content if not FILE_NAME.fullmatch(name))
    if bad:
        module.fail_json(msg=f"content: {bad} are not plain *.alloy file names; name each file like 'discovery.alloy'")
    texts = {name: str(text) for name, text in content.items()}
    installation = (params["dest"], texts) if params["dest"] else None
    with tempfile.TemporaryDirectory(prefix="alloy-validate-") as scratch:
        write_files(scratch, texts)
        validate(module, scratch, installation)


def validate(module: AnsibleModule, path: str, installation: tuple[str, dict[str, str]] | None) -> None:
    """Validate path; exit failed on any error, else install when asked and exit with the outcome."""
    params = module.params
    result = validate_path(path, syntax_only=params["syntax_only"], stability_level=params["stability_level"])
    binary = module.get_bin_path("alloy")
    report = None
    if binary:
        report = run_alloy_binary(binary, path, result.files, params["syntax_only"], params["alloy_timeout"])
    for warning in result.warnings:
        module.warn(format_diagnostic(warning))
    outcome = {
        "changed": False,
        "files": result.files,
        "errors": [as_dict(d) for d in result.errors],
        "alloy_warnings": [as_dict(d) for d in result.warnings],
        "alloy_binary": report,
    }
    if result.errors:
        module.fail_json(msg="\n".join(format_diagnostic(d) for d in result.errors), **outcome)
    if binary_failed(report):
        module.fail_json(msg=f"{binary} rejected {path}; see alloy_binary", **outcome)
    if installation is not None:
        outcome.update(install(module, path, *installation))
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
