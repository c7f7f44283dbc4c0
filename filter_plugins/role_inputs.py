"""Catch misspelt role variables: a name in a role's namespace that its argument_specs do not declare.

Ansible ignores a variable nobody reads, so `alloy_scrape_intervall: 30s` in an inventory would leave
the default in place without a word. Every role here prefixes its public variables with its own
name, so any variable with that prefix that the role's argument_specs do not list is a mistake.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping


def unknown_role_variables(names: Iterable[str], argument_specs: Mapping, role: str) -> list[str]:
    """One message per name under `<role>_` that no entry point of the role's argument_specs declares.

    `argument_specs` is the parsed meta/argument_specs.yml. Internal variables (`_<role>_...`,
    `__<role>_...`) never start with the role's name, so they are out of the check by construction.
    A role's published outcome (`<role>_result`, `<role>_<action>_result`, set by the role for the
    playbook) is an output, not an input: site.yml runs the phases in one play run, so a later phase
    sees the facts an earlier one set.
    """
    output = re.compile(rf"{re.escape(role)}_(?:[a-z0-9]+_)?result")
    declared = sorted(
        {
            option
            for entry in (argument_specs.get("argument_specs") or {}).values()
            for option in entry.get("options") or {}
        }
    )
    messages = []
    for name in sorted(set(names)):
        if not name.startswith(f"{role}_") or name in declared or output.fullmatch(name):
            continue
        # Compare what follows the shared prefix, or every name would look close to every other.
        prefix = f"{role}_"
        suffixes = {option.removeprefix(prefix): option for option in declared}
        close = difflib.get_close_matches(name.removeprefix(prefix), list(suffixes), n=1)
        hint = f" Did you mean {suffixes[close[0]]}?" if close else f" The role {role} declares: {', '.join(declared)}."
        messages.append(f"{name} is not a variable of the role {role}, so it would be ignored.{hint}")
    return messages


class FilterModule:
    def filters(self) -> dict:
        return {"unknown_role_variables": unknown_role_variables}
