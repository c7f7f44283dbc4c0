"""Offline validation of an Alloy configuration, as `alloy fmt` and `alloy validate` would report it.

One configuration is one file, or one directory whose `*.alloy` files (not recursive) load together, as
`alloy run <dir>` does. Syntax comes first: when any file fails to parse, only syntax errors are reported.
Then the checks of grafana/alloy internal/validator, in its order: block labels and duplicates, unknown
components, unknown or missing arguments (against module_utils/alloy_components), references to components
that are not declared in scope (with Alloy's dotted-prefix resolution), cycles and self references.

Beyond `alloy validate`, two mistakes that `alloy run` only finds while evaluating are reported with the
evaluator's wording: a missing export of a checked component and a missing member of a stdlib namespace
(`field "x" does not exist`). A real component missing from the table is a warning that it was not checked.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ansible.module_utils.alloy_components import (
    COMPONENTS,
    CONFIG_BLOCK_SPECS,
    CONFIG_BLOCKS,
    CONFIGURABLE_SERVICES,
    KNOWN_COMPONENTS,
    STDLIB_DEPRECATED,
    STDLIB_EXPERIMENTAL,
    STDLIB_IDENTIFIERS,
    STDLIB_NAMESPACES,
    UNCONFIGURABLE_SERVICES,
    BlockSpec,
)
from ansible.module_utils.alloy_syntax import (
    AccessExpr,
    ArrayExpr,
    Attribute,
    BinaryExpr,
    Block,
    CallExpr,
    Diagnostic,
    Expr,
    File,
    Ident,
    IndexExpr,
    ObjectExpr,
    ParenExpr,
    Source,
    UnaryExpr,
    go_quote,
    parse_file,
)

STABILITY_LEVELS = ("experimental", "public-preview", "generally-available")
DEFAULT_STABILITY = "generally-available"
DEPRECATED_STDLIB_MESSAGE = (
    "this stdlib function is deprecated; please refer to the documentation for updated usage and alternatives"
)


@dataclass
class ValidationResult:
    """The outcome of validating one configuration (a file or a directory)."""

    path: str
    files: list[str]
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]


def config_files(path: str) -> list[str]:
    """The files `alloy run PATH` loads: the file itself, or the directory's *.alloy files, sorted."""
    if not os.path.isdir(path):
        return [path]
    names = sorted(name for name in os.listdir(path) if name.endswith(".alloy"))
    return [os.path.join(path, name) for name in names if os.path.isfile(os.path.join(path, name))]


def validate_path(
    path: str, *, syntax_only: bool = False, stability_level: str = DEFAULT_STABILITY
) -> ValidationResult:
    files = config_files(path)
    result = ValidationResult(path, files)
    if not os.path.exists(path):
        result.diagnostics.append(Diagnostic(path, 0, 0, "no such file or directory"))
        return result
    if not files:
        result.diagnostics.append(Diagnostic(path, 0, 0, "no *.alloy files in directory"))
        return result
    sources: dict[str, bytes] = {}
    for name in files:
        try:
            with open(name, "rb") as handle:
                sources[name] = handle.read()
        except OSError as exc:
            result.diagnostics.append(Diagnostic(name, 0, 0, exc.strerror or str(exc)))
    if not result.diagnostics:
        result.diagnostics = validate_sources(sources, syntax_only=syntax_only, stability_level=stability_level)
    return result


def validate_sources(
    sources: Mapping[str, str | bytes], *, syntax_only: bool = False, stability_level: str = DEFAULT_STABILITY
) -> list[Diagnostic]:
    """Validate files that form one configuration, keyed by the name used in messages."""
    parsed = [parse_file(name, sources[name]) for name in sorted(sources)]
    syntax_errors = [d for file in parsed for d in file.diagnostics]
    if syntax_errors or syntax_only:
        return syntax_errors
    return _Validator(stability_level).validate(parsed)


# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Node:
    """A top-level block of one module level, with the file it came from."""

    block: Block
    source: Source
    kind: str  # "declare", "config", "component" or "service"
    id: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, offset: int, message: str) -> None:
        self.diagnostics.append(self.source.diagnostic(offset, message))


@dataclass
class _Level:
    """One module: the root configuration or the body of a declare block."""

    root: bool
    custom: frozenset[str]
    nodes: dict[str, _Node] = field(default_factory=dict)
    edges: dict[str, list[str]] = field(default_factory=dict)


class _Validator:
    def __init__(self, stability_level: str) -> None:
        self.min_stability = STABILITY_LEVELS.index(stability_level)

    def validate(self, files: list[File]) -> list[Diagnostic]:
        diagnostics: list[Diagnostic] = []
        blocks: list[tuple[Block, Source]] = []
        for file in files:
            stray = next((s for s in file.body if isinstance(s, Attribute)), None)
            if stray is not None:
                diagnostics.append(file.source.diagnostic(stray.offset, f"unrecognized attribute {stray.name}"))
                continue
            blocks.extend((block, file.source) for block in file.body if isinstance(block, Block))
        if diagnostics:
            return diagnostics
        return self._validate_level(blocks, root=True, inherited_custom=frozenset())

    def _validate_level(
        self, blocks: list[tuple[Block, Source]], *, root: bool, inherited_custom: frozenset[str]
    ) -> list[Diagnostic]:
        kinds: dict[str, list[tuple[Block, Source]]] = {
            "declare": [],
            "config": [],
            "component": [],
            "service": [],
        }
        for block, source in blocks:
            kinds[_kind_of(block)].append((block, source))
        declares, configs = kinds["declare"], kinds["config"]
        custom = inherited_custom | {b.label for b, _ in declares if b.label}
        custom |= {b.label for b, _ in configs if b.name[0] == "import" and b.label}
        level = _Level(root, custom)
        nested: dict[str, list[Diagnostic]] = {}
        for block, source in declares:
            node = self._add_node(level, block, source, "declare")
            if not block.label:
                node.error(block.offset, "declare block must have a label")
            nested[node.id] = self._validate_declare_body(node, custom)
        for block, source in configs:
            self._add_config(level, block, source)
        for block, source in kinds["component"]:
            node = self._add_node(level, block, source, "component")
            if not block.label:
                node.error(block.offset, f"component {go_quote(block.full_name)} must have a label")
        for block, source in kinds["service"]:
            self._add_service(level, block, source)
        return self._check_graph(level, nested)

    def _validate_declare_body(self, node: _Node, custom: frozenset[str]) -> list[Diagnostic]:
        inner: list[tuple[Block, Source]] = []
        for statement in node.block.body:
            if isinstance(statement, Block):
                inner.append((statement, node.source))
            else:
                node.error(statement.offset, "unsupported statement type *ast.AttributeStmt")
        return self._validate_level(inner, root=False, inherited_custom=custom)

    def _add_node(self, level: _Level, block: Block, source: Source, kind: str) -> _Node:
        node = _Node(block, source, kind, block.id)
        original = level.nodes.get(block.id)
        if original is not None:
            line, column = original.source.position(original.block.offset)
            node.error(
                block.offset,
                f"block {block.id} already declared at {original.source.filename}:{line}:{column}",
            )
            node.id = f"{block.id}-{len(level.nodes)}"
        level.nodes[node.id] = node
        return node

    def _add_config(self, level: _Level, block: Block, source: Source) -> None:
        node = self._add_node(level, block, source, "config")
        name = block.full_name
        if name not in ("logging", "tracing") and not block.label:
            node.error(block.offset, f"{name} block must have a label")
        if name in ("logging", "tracing"):
            self._check_allowed_in_level(level, node)
        elif name in ("argument", "export") and level.root:
            node.error(block.offset, f"{name} blocks only allowed inside a module")
        elif name == "foreach":
            message = self._stability_error("experimental", f"foreach block {go_quote(name)}")
            if message:
                node.error(block.offset, message)

    def _add_service(self, level: _Level, block: Block, source: Source) -> None:
        node = self._add_node(level, block, source, "service")
        self._check_allowed_in_level(level, node)
        if block.id in UNCONFIGURABLE_SERVICES:
            node.error(block.offset, f"service {go_quote(block.id)} does not support being configured")

    @staticmethod
    def _check_allowed_in_level(level: _Level, node: _Node) -> None:
        if not level.root:
            node.error(node.block.offset, f"{node.block.id} not allowed in module")

    def _stability_error(self, stability: str, feature: str) -> str | None:
        if STABILITY_LEVELS.index(stability) >= self.min_stability:
            return None
        level, minimum = go_quote(stability), go_quote(STABILITY_LEVELS[self.min_stability])
        return (
            f"{feature} is at stability level {level}, which is below the minimum allowed stability level"
            f" {minimum}. Use --stability.level command-line flag to enable {level} features"
        )

    # -- graph -------------------------------------------------------------------------------------------

    def _check_graph(self, level: _Level, nested: dict[str, list[Diagnostic]]) -> list[Diagnostic]:
        diagnostics: list[Diagnostic] = []
        for node in level.nodes.values():
            # Like alloy validate: an unknown component's references and a template's are not followed.
            follow_references = node.kind != "declare" and node.block.full_name != "foreach"
            if node.kind == "component":
                follow_references = self._check_component(level, node)
            elif node.kind == "config" and node.block.full_name in CONFIG_BLOCK_SPECS:
                spec = CONFIG_BLOCK_SPECS[node.block.full_name]
                node.diagnostics.extend(check_block(node.block, spec, node.source))
            diagnostics.extend(node.diagnostics)
            diagnostics.extend(nested.get(node.id, []))
            if follow_references:
                diagnostics.extend(self._wire_references(level, node))
        diagnostics.extend(_cycle_diagnostics(level))
        return diagnostics

    def _check_component(self, level: _Level, node: _Node) -> bool:
        """Check a component's arguments; return False when Alloy does not know the component at all."""
        block = node.block
        name = block.full_name
        if name in COMPONENTS:
            node.diagnostics.extend(check_block(block, COMPONENTS[name].arguments, node.source))
        elif name in KNOWN_COMPONENTS:
            node.diagnostics.append(
                node.source.diagnostic(
                    block.offset,
                    f"component {go_quote(name)} is not in the validator's table: not checked",
                    "warning",
                )
            )
        elif block.name[0] not in level.custom:
            node.error(block.offset, f"cannot find the definition of component name {go_quote(name)}")
            return False
        return True

    def _wire_references(self, level: _Level, node: _Node) -> list[Diagnostic]:
        diagnostics: list[Diagnostic] = []
        source = node.source
        for traversal in traversals(node.block.body):
            target, rest = resolve_traversal(traversal, level.nodes)
            first = traversal[0]
            if target is not None:
                if first.name in STDLIB_IDENTIFIERS:
                    diagnostics.append(
                        source.diagnostic(first.offset, "a component is shadowing an existing stdlib name", "warning")
                    )
                level.edges.setdefault(node.id, []).append(target.id)
                diagnostics.extend(_export_diagnostics(target, rest, source))
            elif first.name in STDLIB_IDENTIFIERS:
                diagnostics.extend(self._stdlib_diagnostics(traversal, source))
            else:
                partial = ".".join(ident.name for ident in traversal)
                diagnostics.append(
                    source.diagnostic(first.offset, f"component {go_quote(partial)} does not exist or is out of scope")
                )
        return diagnostics

    def _stdlib_diagnostics(self, traversal: list[Ident], source: Source) -> list[Diagnostic]:
        first = traversal[0]
        if first.name in STDLIB_DEPRECATED:
            return [source.diagnostic(first.offset, DEPRECATED_STDLIB_MESSAGE, "warning")]
        members = STDLIB_NAMESPACES.get(first.name)
        if members is None or len(traversal) < 2:
            return []
        member = traversal[1]
        if member.name not in members:
            return [source.diagnostic(member.offset, f"field {go_quote(member.name)} does not exist")]
        full_name = f"{first.name}.{member.name}"
        message = self._stability_error("experimental", full_name) if full_name in STDLIB_EXPERIMENTAL else None
        return [source.diagnostic(first.offset, message)] if message else []


def _kind_of(block: Block) -> str:
    if block.full_name == "declare":
        return "declare"
    if block.full_name in CONFIG_BLOCKS:
        return "config"
    if block.id in CONFIGURABLE_SERVICES or block.id in UNCONFIGURABLE_SERVICES:
        return "service"
    return "component"


def _export_diagnostics(target: _Node, rest: list[Ident], source: Source) -> list[Diagnostic]:
    spec = COMPONENTS.get(target.block.full_name) if target.kind == "component" else None
    if spec is None or not spec.exports or not rest or rest[0].name in spec.exports:
        return []
    return [source.diagnostic(rest[0].offset, f"field {go_quote(rest[0].name)} does not exist")]


def _cycle_diagnostics(level: _Level) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for component in strongly_connected_components(list(level.nodes), level.edges):
        if len(component) < 2:
            continue
        ids = sorted(component)
        message = f"cycle detected: {', '.join(ids)}"
        for node_id in ids:
            node = level.nodes[node_id]
            diagnostics.append(node.source.diagnostic(node.block.offset, message))
    for node_id, targets in level.edges.items():
        if node_id in targets:
            node = level.nodes[node_id]
            diagnostics.append(node.source.diagnostic(node.block.offset, "cannot reference self"))
    return diagnostics


def strongly_connected_components(order: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative, visiting nodes in declaration order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    for start in order:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(edges.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(edges.get(successor, ()))))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
    return result


# -- references ----------------------------------------------------------------------------------------


def traversals(body: list[Attribute | Block]) -> list[list[Ident]]:
    """Every reference chain (a.b.c) in body, cut at indexing and calls, as Alloy's traversal walker."""
    collector = _TraversalCollector()
    collector.body(body)
    collector.flush()
    return collector.found


class _TraversalCollector:
    def __init__(self) -> None:
        self.found: list[list[Ident]] = []
        self.current: list[Ident] | None = None

    def flush(self) -> None:
        if self.current:
            self.found.append(self.current)
        self.current = None

    def body(self, statements: list[Attribute | Block]) -> None:
        for statement in statements:
            if isinstance(statement, Block):
                self.body(statement.body)
            else:
                self.expression(statement.value)

    def expression(self, expr: Expr) -> None:
        if isinstance(expr, Ident):
            self.flush()
            self.current = [expr]
        elif isinstance(expr, AccessExpr):
            self.expression(expr.value)
            if self.current is not None:
                self.current.append(expr.name)
        elif isinstance(expr, IndexExpr):
            self.expression(expr.value)
            self.flush()
            self.expression(expr.index)
        elif isinstance(expr, CallExpr):
            self.expression(expr.value)
            self.flush()
            for argument in expr.args:
                self.expression(argument)
        else:
            for child in _children(expr):
                self.expression(child)


def _children(expr: Expr) -> list[Expr]:
    if isinstance(expr, ArrayExpr):
        return expr.elements
    if isinstance(expr, ObjectExpr):
        return [f.value for f in expr.fields]
    if isinstance(expr, UnaryExpr):
        return [expr.value]
    if isinstance(expr, BinaryExpr):
        return [expr.left, expr.right]
    if isinstance(expr, ParenExpr):
        return [expr.inner]
    return []


def resolve_traversal(traversal: list[Ident], nodes: Mapping[str, _Node]) -> tuple[_Node | None, list[Ident]]:
    """Find the declared block a chain names by growing its dotted prefix; return it and what follows."""
    partial = traversal[0].name
    for position in range(1, len(traversal) + 1):
        node = nodes.get(partial)
        if node is not None:
            return node, traversal[position:]
        if position < len(traversal):
            partial = f"{partial}.{traversal[position].name}"
    return None, []


# -- arguments -----------------------------------------------------------------------------------------


def check_block(block: Block, spec: BlockSpec, source: Source) -> list[Diagnostic]:
    """Check a block body against its argument table, with the messages of Alloy's typecheck package."""
    if not spec.checked:
        return []
    diagnostics: list[Diagnostic] = []
    counts = Counter(s.full_name for s in block.body if isinstance(s, Block))
    seen: set[str] = set()
    for statement in block.body:
        if isinstance(statement, Block):
            diagnostics.extend(_check_nested_block(statement, spec, counts, source))
            continue
        name = statement.name
        if name not in spec.attributes:
            message = (
                f"{go_quote(name)} must be a block, but is used as an attribute"
                if name in spec.blocks
                else f"unrecognized attribute name {go_quote(name)}"
            )
            diagnostics.append(source.diagnostic(statement.offset, message))
        elif name in seen:
            diagnostics.append(
                source.diagnostic(statement.offset, f"attribute {go_quote(name)} may only be provided once")
            )
        seen.add(name)
    for name in spec.required_attributes:
        if name not in seen:
            diagnostics.append(source.diagnostic(block.offset, f"missing required attribute {go_quote(name)}"))
    for name, child in spec.blocks.items():
        if child.required and counts[name] == 0:
            diagnostics.append(source.diagnostic(block.offset, f"missing required block {go_quote(name)}"))
    return diagnostics


def _check_nested_block(block: Block, spec: BlockSpec, counts: Counter[str], source: Source) -> list[Diagnostic]:
    name = block.full_name
    child = spec.blocks.get(name)
    if child is None:
        message = (
            f"{go_quote(name)} must be an attribute, but is used as a block"
            if name in spec.attributes
            else f"unrecognized block name {go_quote(name)}"
        )
        return [source.diagnostic(block.offset, message)]
    if not child.repeatable and counts[name] > 1:
        return [source.diagnostic(block.offset, f"block {go_quote(name)} may only be specified once")]
    return check_block(block, child, source)


def format_diagnostic(diagnostic: Diagnostic) -> str:
    """One line as `alloy fmt` prints an error; warnings say so, problems without a position show the path."""
    where = diagnostic.filename
    if diagnostic.line:
        where = f"{where}:{diagnostic.line}:{diagnostic.column}"
    prefix = "warning: " if diagnostic.severity == "warning" else ""
    return f"{where}: {prefix}{diagnostic.message}"
