#!/usr/bin/env python3
"""Write each role's variables table from its meta/argument_specs.yml, so the docs cannot drift.

A Markdown file asks for a table with a pair of markers:

    <!-- variables:alloy -->
    (generated table)
    <!-- /variables:alloy -->

`python scripts/role_docs.py` rewrites every such block in README.md and roles/*/README.md;
`--check` changes nothing and exits 1 naming the blocks that are out of date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"(<!-- variables:(?P<role>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /variables:(?P=role) -->)", re.DOTALL
)


def options(role: str) -> dict[str, dict]:
    """Options of every entry point of the role, main first (entry points repeat shared options)."""
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    merged: dict[str, dict] = {}
    for entry in sorted(specs, key=lambda name: name != "main"):
        for name, spec in (specs[entry].get("options") or {}).items():
            merged.setdefault(name, spec)
    return merged


_MARKUP = re.compile(r"\b[CIV]\(([^)]*)\)")


def cell(text: str) -> str:
    """One table cell: a single line, Ansible's C()/I()/V() markup as code, pipes escaped."""
    return _MARKUP.sub(r"`\1`", " ".join(str(text).split())).replace("|", "\\|")


def describe(spec: dict) -> str:
    description = spec.get("description", "")
    text = " ".join(description) if isinstance(description, list) else str(description)
    if spec.get("choices"):
        text += " Choices: " + ", ".join(f"`{choice}`" for choice in spec["choices"]) + "."
    return cell(text)


def default(spec: dict) -> str:
    if spec.get("required"):
        return "**required**"
    if "default" not in spec:
        return ""
    value = spec["default"]
    rendered = yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()
    return f"`{cell(rendered)}`"


def kind(spec: dict) -> str:
    kind = spec.get("type", "str")
    return f"list of {spec['elements']}" if kind == "list" and spec.get("elements") else kind


def table(role: str) -> str:
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, spec in options(role).items():
        rows.append(f"| `{name}` | {kind(spec)} | {default(spec)} | {describe(spec)} |")
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + table(m.group("role")) + m.group(4), text)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(ROOT.glob("roles/*/README.md"))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        if not path.exists():
            continue
        text = path.read_text()
        wanted = render(text)
        if wanted == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.write_text(wanted)
    if args.check and stale:
        print("out of date (run `python scripts/role_docs.py`): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    for path in stale:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
