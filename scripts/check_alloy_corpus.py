#!/usr/bin/env python3
"""Run `bin/alloy-validate --syntax-only` over Alloy's own parser test data and compare verdicts.

The corpus (default /work/shared/corpus/alloy-syntax, see its README.md) holds files from grafana/alloy's
syntax/parser and syntax/printer testdata: valid ones must pass; the others mark every expected error in
place with `/* ERROR "regex" */` (at the token before the comment) or `/* ERROR HERE "regex" */` (just
after that token), the convention of Alloy's parser/error_test.go; a `.in` file with an `.error` sibling
must fail with that message. Prints one verdict line per file and `N/N files match Alloy's verdict`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import ansible.module_utils

ROOT = Path(__file__).resolve().parent.parent
ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

from ansible.module_utils.alloy_syntax import (  # noqa: E402
    COMMENT,
    EOF,
    FLOAT,
    IDENT,
    NUMBER,
    STRING,
    TERMINATOR,
    Scanner,
    Source,
    decode_source,
)

DEFAULT_CORPUS = Path("/work/shared/corpus/alloy-syntax")
VALIDATOR = ROOT / "bin" / "alloy-validate"
ERROR_MARKER = re.compile(r'^/\* *ERROR *(HERE)? *"([^"]*)" *\*/$')
REPORTED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$")
LITERALS = frozenset({IDENT, NUMBER, FLOAT, STRING})

Position = tuple[int, int]


@dataclass
class Verdict:
    name: str
    expected: str
    found: str
    problems: list[str]

    @property
    def matches(self) -> bool:
        return not self.problems


def expected_errors(text: str) -> dict[Position, str]:
    """Where the ERROR markers say Alloy reports an error, and the regex its message matches."""
    source = Source("", text)
    scanner = Scanner(text)
    expected: dict[Position, str] = {}
    previous = after_previous = 0
    while True:
        offset, kind, literal = scanner.scan()
        if kind == EOF:
            return expected
        if kind == COMMENT:
            marker = ERROR_MARKER.match(literal)
            if marker:
                expected[source.position(after_previous if marker.group(1) else previous)] = marker.group(2)
        elif kind != TERMINATOR:
            previous = offset
            after_previous = offset + (len(literal) if kind in LITERALS else len(kind))


def reported_errors(path: Path) -> tuple[int, list[tuple[Position, str]]]:
    completed = subprocess.run(
        [sys.executable, str(VALIDATOR), "--syntax-only", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    errors = []
    for line in completed.stderr.splitlines():
        match = REPORTED.match(line)
        if match:
            errors.append(((int(match["line"]), int(match["column"])), match["message"]))
    return completed.returncode, errors


def compare_markers(expected: dict[Position, str], reported: list[tuple[Position, str]]) -> list[str]:
    problems = []
    remaining = dict(expected)
    for position, message in reported:
        pattern = remaining.pop(position, None)
        if pattern is None:
            problems.append(f"unexpected error at {position[0]}:{position[1]}: {message}")
        elif not re.search(pattern, message):
            problems.append(f"{position[0]}:{position[1]}: {message!r} does not match {pattern!r}")
    problems.extend(f"missing error at {line}:{column}: {pattern}" for (line, column), pattern in remaining.items())
    return problems


def judge(path: Path) -> Verdict:
    exit_code, reported = reported_errors(path)
    found = f"{len(reported)} error(s), exit {exit_code}"
    error_file = path.with_suffix(".error")
    if error_file.exists():
        wanted = error_file.read_text().strip()
        problems = [] if exit_code == 1 and any(m == wanted for _, m in reported) else [f"no error {wanted!r}"]
        return Verdict(path.name, "fails", found, problems)
    if path.name.startswith(("valid_", "printer_")):
        problems = [] if exit_code == 0 and not reported else [m for _, m in reported] or [f"exit {exit_code}"]
        return Verdict(path.name, "valid", found, problems)
    expected = expected_errors(decode_source(path.read_bytes()))
    problems = compare_markers(expected, reported)
    if exit_code != 1:
        problems.append(f"exit {exit_code}, expected 1")
    return Verdict(path.name, f"{len(expected)} error(s)", found, problems)


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.suffix in (".alloy", ".in", ".expect"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    corpus = parser.parse_args(argv).corpus
    verdicts = [judge(path) for path in corpus_files(corpus)]
    width = max(len(v.name) for v in verdicts)
    print(f"{'FILE':<{width}}  {'EXPECTED':<12}  {'FOUND':<22}  VERDICT")
    for verdict in verdicts:
        print(f"{verdict.name:<{width}}  {verdict.expected:<12}  {verdict.found:<22}  ", end="")
        print("match" if verdict.matches else "MISMATCH")
        for problem in verdict.problems:
            print(f"    {problem}")
    matching = sum(v.matches for v in verdicts)
    print(f"{matching}/{len(verdicts)} files match Alloy's verdict")
    return 0 if matching == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
