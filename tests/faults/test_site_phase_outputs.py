"""site.yml runs every phase in one ansible-playbook run, so a later phase's input check sees the facts an
earlier phase published. Found by the fault suite's interrupted site.yml (the collectors phase refused
`migration_baseline_result` as a misspelt input); these keep it fixed for every role's published result."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from filter_plugins.role_inputs import unknown_role_variables

ROLES = Path(__file__).resolve().parents[2] / "roles"


def specs(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())


def _set_fact_names(tasks: object) -> set[str]:
    names: set[str] = set()
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        for nested in ("block", "rescue", "always"):
            names |= _set_fact_names(task.get(nested))
        facts = task.get("ansible.builtin.set_fact") or task.get("set_fact")
        if isinstance(facts, dict):
            names |= {name for name in facts if name != "cacheable"}
    return names


def published_facts(role: str) -> set[str]:
    """The facts a role sets under its own public prefix: what it hands to the playbook."""
    names: set[str] = set()
    for path in (ROLES / role / "tasks").glob("*.yml"):
        names |= _set_fact_names(yaml.safe_load(path.read_text()))
    return {name for name in names if name.startswith(f"{role}_")}


PHASE_ROLES = sorted(
    path.parent.parent.name
    for path in ROLES.glob("*/meta/argument_specs.yml")
    if any(published_facts(path.parent.parent.name))
)


def test_the_phase_roles_publish_results():
    assert {"migration_baseline", "migration_validation", "prometheus_decommission"} <= set(PHASE_ROLES)


@pytest.mark.parametrize("role", PHASE_ROLES)
def test_a_published_result_is_not_taken_for_a_misspelt_input(role: str):
    assert unknown_role_variables(published_facts(role), specs(role), role) == []


def test_a_misspelt_input_next_to_a_result_is_still_refused():
    names = ["migration_baseline_result", "migration_baseline_windw"]
    [message] = unknown_role_variables(names, specs("migration_baseline"), "migration_baseline")
    assert message.startswith("migration_baseline_windw is not a variable of the role migration_baseline")
    assert "Did you mean migration_baseline_window?" in message
