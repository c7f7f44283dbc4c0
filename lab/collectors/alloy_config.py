"""An Alloy configuration as the lab runs it: parsed, validated and evaluated per replica.

Files are parsed and validated with the toolkit's own parser and validator (the messages are
Alloy's). Evaluation then turns every component's block into plain values, as Alloy's controller
does before it builds a component: literals, arrays, objects, `sys.env`, the stdlib functions the
lab knows, and references to other components' exports. Exports that stand for a live stream
(`targets`, `output`, `receiver`) evaluate to markers the translator follows; `local.file`'s
`content` evaluates to the file's text as the pod would read it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.collectors.toolkit import alloy_syntax as syntax
from lab.collectors.toolkit import alloy_validator as validator


class ConfigError(Exception):
    """The configuration cannot be run; `component` names the block at fault (empty: the whole file)."""

    def __init__(self, component: str, message: str) -> None:
        super().__init__(f"{component}: {message}" if component else message)
        self.component = component
        self.message = message


class LabLimitError(ConfigError):
    """Valid for Alloy (or the collector), but beyond what the lab emulates."""


@dataclass(frozen=True)
class TargetsRef:
    """The `targets` (or `output`) export of a discovery component."""

    component: str


@dataclass(frozen=True)
class ReceiverRef:
    """The `receiver` export of a metrics component."""

    component: str


@dataclass(frozen=True)
class RulesRef:
    """The `rules` export of a relabel component."""

    component: str


_STREAM_EXPORTS = {"targets": TargetsRef, "output": TargetsRef, "receiver": ReceiverRef, "rules": RulesRef}


class PodContext:
    """What evaluation reads from the pod that runs the configuration."""

    def __init__(self, env: Mapping[str, str], read_file: Callable[[str], str], hostname: str) -> None:
        self.env = env
        self.read_file = read_file
        self.hostname = hostname


@dataclass
class Component:
    """One top-level component block with its evaluated arguments."""

    kind: str
    label: str
    node: syntax.Block
    filename: str
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.label}" if self.label else self.kind

    def blocks(self, name: str) -> list[dict[str, Any]]:
        value = self.arguments.get(name)
        return value if isinstance(value, list) and all(isinstance(item, dict) for item in value) else []

    def block(self, name: str) -> dict[str, Any]:
        found = self.blocks(name)
        return found[0] if found else {}


@dataclass
class AlloyConfig:
    """Every component of the configuration, in file order."""

    components: dict[str, Component]
    config_blocks: list[str]

    def of_kind(self, kind: str) -> list[Component]:
        return [c for c in self.components.values() if c.kind == kind]


# --- loading ------------------------------------------------------------------------------------------------


def load(sources: Mapping[str, str], context: PodContext) -> AlloyConfig:
    """Validate then evaluate the files of one configuration (`alloy run <dir>` semantics)."""
    if not sources:
        raise ConfigError("", "no *.alloy files in the configuration directory")
    diagnostics = validator.validate_sources(dict(sources))
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise ConfigError("", "; ".join(str(d) for d in errors))
    parsed = [syntax.parse_file(name, sources[name]) for name in sorted(sources)]
    components: dict[str, Component] = {}
    config_blocks: list[str] = []
    for file in parsed:
        for statement in file.body:
            if not isinstance(statement, syntax.Block):
                continue
            if statement.full_name in validator.CONFIG_BLOCKS:
                config_blocks.append(statement.full_name)
                continue
            component = Component(statement.full_name, statement.label, statement, file.source.filename)
            components[component.id] = component
    config = AlloyConfig(components, config_blocks)
    _Evaluator(config, context).evaluate_all()
    return config


# --- evaluation ---------------------------------------------------------------------------------------------


class _Evaluator:
    def __init__(self, config: AlloyConfig, context: PodContext) -> None:
        self.config = config
        self.context = context
        self._done: set[str] = set()
        self._current = ""

    def evaluate_all(self) -> None:
        for component_id in self.config.components:
            self._evaluate_component(component_id)

    def _evaluate_component(self, component_id: str) -> Component:
        component = self.config.components[component_id]
        if component_id in self._done:
            return component
        outer, self._current = self._current, component_id
        try:
            component.arguments = self._body(component.node.body)
        finally:
            self._current = outer
        self._done.add(component_id)
        return component

    def _body(self, body: list[syntax.Statement]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for statement in body:
            if isinstance(statement, syntax.Attribute):
                values[statement.name] = self.expr(statement.value)
            else:
                values.setdefault(statement.full_name, []).append(self._body(statement.body))
        return values

    def error(self, message: str) -> ConfigError:
        return ConfigError(self._current, message)

    # --- expressions ----------------------------------------------------------------------------------------

    def expr(self, node: syntax.Expr) -> Any:
        if isinstance(node, syntax.Literal):
            return literal(node)
        if isinstance(node, syntax.ArrayExpr):
            return [self.expr(element) for element in node.elements]
        if isinstance(node, syntax.ObjectExpr):
            return {item.name: self.expr(item.value) for item in node.fields}
        if isinstance(node, syntax.ParenExpr):
            return self.expr(node.inner)
        if isinstance(node, syntax.UnaryExpr):
            value = self.expr(node.value)
            return (not value) if node.op == "!" else -value
        if isinstance(node, syntax.BinaryExpr):
            return self._binary(node)
        if isinstance(node, syntax.IndexExpr):
            return self.expr(node.value)[self.expr(node.index)]
        if isinstance(node, syntax.CallExpr):
            return self._call(node)
        if isinstance(node, syntax.Ident | syntax.AccessExpr):
            return self._reference(_path(node))
        raise LabLimitError(self._current, f"the lab cannot evaluate a {type(node).__name__}")

    def _binary(self, node: syntax.BinaryExpr) -> Any:
        left, right = self.expr(node.left), self.expr(node.right)
        operations: dict[str, Callable[[Any, Any], Any]] = {
            "+": lambda a, b: a + b,
            "-": lambda a, b: a - b,
            "*": lambda a, b: a * b,
            "/": lambda a, b: a / b,
            "%": lambda a, b: a % b,
            "^": lambda a, b: a**b,
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "&&": lambda a, b: bool(a and b),
            "||": lambda a, b: bool(a or b),
        }
        return operations[node.op](left, right)

    def _reference(self, path: list[str]) -> Any:
        if len(path) == 2 and path[0] == "constants" and path[1] in ("hostname", "os", "arch"):
            return {"hostname": self.context.hostname, "os": "linux", "arch": "amd64"}[path[1]]
        for size in range(len(path), 0, -1):
            component_id = ".".join(path[:size])
            if component_id in self.config.components:
                return self._export(component_id, path[size:])
        raise self.error(f"the lab cannot resolve {'.'.join(path)}")

    def _export(self, component_id: str, rest: list[str]) -> Any:
        if not rest:
            raise self.error(f"{component_id} is a component, not a value")
        name = rest[0]
        if name in _STREAM_EXPORTS:
            ref = _STREAM_EXPORTS[name](component_id)
            return [ref] if isinstance(ref, TargetsRef) else ref
        component = self._evaluate_component(component_id)
        if component.kind == "local.file" and name == "content":
            return self._read_local_file(component)
        raise LabLimitError(self._current, f"the lab does not emulate the export {name!r} of {component_id}")

    def _read_local_file(self, component: Component) -> str:
        filename = str(component.arguments.get("filename", ""))
        try:
            return self.context.read_file(filename)
        except OSError as exc:
            raise ConfigError(component.id, f"failed to read file {filename}: {exc.strerror or exc}") from exc

    def _call(self, node: syntax.CallExpr) -> Any:
        name = ".".join(_path(node.value))
        args = [self.expr(arg) for arg in node.args]
        function = _FUNCTIONS.get(name)
        if function is None:
            raise LabLimitError(self._current, f"the lab does not emulate the function {name}")
        return function(self.context, args)


def _path(node: syntax.Expr) -> list[str]:
    if isinstance(node, syntax.Ident):
        return [node.name]
    if isinstance(node, syntax.AccessExpr):
        return [*_path(node.value), node.name.name]
    raise ConfigError("", f"not a reference: {type(node).__name__}")


def literal(node: syntax.Literal) -> Any:
    if node.kind == syntax.STRING:
        return unquote(node.value)
    if node.kind == syntax.NUMBER:
        return int(node.value, 0) if node.value[:2].lower() in ("0x", "0o", "0b") else int(node.value)
    if node.kind == syntax.FLOAT:
        return float(node.value)
    if node.kind == syntax.BOOL:
        return node.value == "true"
    return None


_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


def unquote(text: str) -> str:
    """A string literal's value: backtick strings are raw, double-quoted ones take Go's escapes."""
    if text.startswith("`"):
        return text[1:-1].replace("\r", "")
    body, out, index = text[1:-1], [], 0
    while index < len(body):
        ch = body[index]
        if ch != "\\":
            out.append(ch)
            index += 1
            continue
        code = body[index + 1]
        if code in _SIMPLE:
            out.append(_SIMPLE[code])
            index += 2
        elif code in "01234567":
            out.append(chr(int(body[index + 1 : index + 4], 8)))
            index += 4
        else:
            width = {"x": 2, "u": 4, "U": 8}[code]
            out.append(chr(int(body[index + 2 : index + 2 + width], 16)))
            index += 2 + width
    return "".join(out)


# --- the stdlib functions the lab evaluates -----------------------------------------------------------------


def _env(context: PodContext, args: list[Any]) -> str:
    return context.env.get(str(args[0]), "")


def _concat(_context: PodContext, args: list[Any]) -> list[Any]:
    return [item for arg in args for item in arg]


def _format(_context: PodContext, args: list[Any]) -> str:
    template, values = str(args[0]), list(args[1:])

    def substitute(match: re.Match[str]) -> str:
        verb = match.group(1)
        if verb == "%":
            return "%"
        value = values.pop(0)
        if verb == "q":
            return syntax.go_quote(str(value))
        if verb == "d":
            return str(int(value))
        return str(value).lower() if isinstance(value, bool) else str(value)

    return re.sub(r"%([sdvqt%])", substitute, template)


def _coalesce(_context: PodContext, args: list[Any]) -> Any:
    return next((arg for arg in args if arg not in (None, "", [], {}, 0, False)), args[-1] if args else None)


_FUNCTIONS: dict[str, Callable[[PodContext, list[Any]], Any]] = {
    "sys.env": _env,
    "env": _env,
    "array.concat": _concat,
    "concat": _concat,
    "string.format": _format,
    "format": _format,
    "string.join": lambda _c, args: str(args[1]).join(str(item) for item in args[0]),
    "string.to_lower": lambda _c, args: str(args[0]).lower(),
    "string.to_upper": lambda _c, args: str(args[0]).upper(),
    "string.trim": lambda _c, args: str(args[0]).strip(str(args[1])),
    "string.trim_space": lambda _c, args: str(args[0]).strip(),
    "string.trim_prefix": lambda _c, args: str(args[0]).removeprefix(str(args[1])),
    "string.trim_suffix": lambda _c, args: str(args[0]).removesuffix(str(args[1])),
    "encoding.from_base64": lambda _c, args: base64.b64decode(str(args[0])).decode(),
    "coalesce": _coalesce,
}
