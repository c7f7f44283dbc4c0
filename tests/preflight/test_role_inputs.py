"""Misspelt role variables are caught against the role's real argument_specs."""

from __future__ import annotations

from pathlib import Path

import yaml

from filter_plugins.role_inputs import unknown_role_variables

ROLES = Path(__file__).resolve().parents[2] / "roles"


def specs(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())


def test_declared_variables_pass():
    declared = list(specs("preflight")["argument_specs"]["main"]["options"])
    assert unknown_role_variables(declared, specs("preflight"), "preflight") == []


def test_misspelt_variable_is_named_with_the_closest_declared_one():
    messages = unknown_role_variables(["preflight_mimir_tenat"], specs("preflight"), "preflight")
    assert messages == [
        "preflight_mimir_tenat is not a variable of the role preflight, so it would be ignored. "
        "Did you mean preflight_mimir_tenant?"
    ]


def test_variables_outside_the_role_namespace_are_not_its_business():
    names = ["migration_environment", "_preflight_min_versions", "__preflight_tools", "alloy_scrape_interval"]
    assert unknown_role_variables(names, specs("preflight"), "preflight") == []


def test_a_name_nothing_resembles_lists_what_the_role_declares():
    [message] = unknown_role_variables(["preflight_qqq"], specs("preflight"), "preflight")
    assert message.startswith("preflight_qqq is not a variable of the role preflight")
    assert "preflight_kubeconfig" in message
