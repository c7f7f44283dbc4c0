"""The alloy role's public interface: defaults and argument_specs describe the same variables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "alloy"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
OPTIONS = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def test_defaults_and_argument_specs_have_the_same_keys():
    assert set(DEFAULTS) == set(OPTIONS)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_argument_spec_documents_the_default(name):
    spec = OPTIONS[name]
    assert spec["description"]
    assert spec["default"] == DEFAULTS[name]
    assert spec["required"] is False
    if "choices" in spec:
        assert DEFAULTS[name] in spec["choices"]


def test_public_variables_are_prefixed():
    assert all(name.startswith("alloy_") for name in DEFAULTS)


def test_every_default_has_a_comment():
    lines = (ROLE / "defaults" / "main.yml").read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith("alloy_"):
            assert lines[index - 1].startswith("#"), f"{line.split(':')[0]} has no comment above it"
