"""Every module's DOCUMENTATION, EXAMPLES and RETURN is YAML without a key given twice.

A key repeated in a mapping is silently last-one-wins for PyYAML and ansible-doc, so a misplaced block
(say, a new return value pasted between another one's description and its type) loses documentation
without any error.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted([*ROOT.glob("library/*.py"), *ROOT.glob("roles/*/library/*.py"), *ROOT.glob("doc_fragments/*.py")])
SECTIONS = ("DOCUMENTATION", "EXAMPLES", "RETURN")


class UniqueKeyLoader(yaml.SafeLoader):
    pass


def _mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    repeated = sorted({key for key in keys if keys.count(key) > 1}, key=str)
    if repeated:
        raise yaml.constructor.ConstructorError(None, None, f"keys given twice: {repeated}", node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def sections(path: Path) -> dict[str, str]:
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in SECTIONS:
                    found[target.id] = node.value.value
    return found


@pytest.mark.parametrize("path", MODULES, ids=[str(path.relative_to(ROOT)) for path in MODULES])
def test_module_documentation_is_yaml_without_repeated_keys(path: Path) -> None:
    texts = sections(path)
    assert "DOCUMENTATION" in texts, f"{path.name} has no DOCUMENTATION"
    for name, text in texts.items():
        try:
            yaml.load(text, Loader=UniqueKeyLoader)
        except yaml.YAMLError as error:
            pytest.fail(f"{path.name} {name}: {error}")


def test_the_check_catches_a_repeated_key() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="given twice"):
        yaml.load("errors:\n  type: list\n  type: dict\n", Loader=UniqueKeyLoader)
