"""The Alloy scanner and parser: every construct, every error kind with Alloy's wording and position."""

from __future__ import annotations

import pytest
from ansible.module_utils.alloy_syntax import (
    ADD,
    AND,
    BOOL,
    FLOAT,
    MUL,
    NULL,
    NUMBER,
    OR,
    POW,
    STRING,
    AccessExpr,
    ArrayExpr,
    Attribute,
    BinaryExpr,
    Block,
    CallExpr,
    Ident,
    IndexExpr,
    Literal,
    ObjectExpr,
    ParenExpr,
    UnaryExpr,
    go_quote,
    is_valid_identifier,
    parse_file,
)


def errors(text: str) -> list[str]:
    return [f"{d.line}:{d.column}: {d.message}" for d in parse_file("t.alloy", text).diagnostics]


def value_of(expression: str):
    file = parse_file("t.alloy", f"x = {expression}\n")
    assert file.diagnostics == []
    (attribute,) = file.body
    return attribute.value


def test_block_with_dotted_name_label_and_nested_blocks() -> None:
    file = parse_file(
        "t.alloy",
        'prometheus.remote_write "mimir" {\n  endpoint {\n    url = "http://m/push"\n  }\n}\n',
    )
    assert file.diagnostics == []
    (block,) = file.body
    assert isinstance(block, Block)
    assert (block.name, block.label, block.id) == (
        ["prometheus", "remote_write"],
        "mimir",
        "prometheus.remote_write.mimir",
    )
    assert file.source.position(block.offset) == (1, 1)
    assert file.source.position(block.label_offset) == (1, 25)
    (endpoint,) = block.body
    assert endpoint.full_name == "endpoint" and endpoint.label == ""
    (url,) = endpoint.body
    assert isinstance(url, Attribute) and url.name == "url"
    assert file.source.position(url.offset) == (3, 5)


def test_one_line_blocks_and_empty_file_parse() -> None:
    assert parse_file("t.alloy", 'a { b = 1 }\nc "l" { }\n').diagnostics == []
    assert parse_file("t.alloy", "").body == []
    assert parse_file("t.alloy", "// only a comment").body == []


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("10", NUMBER, "10"),
        ("15.0", FLOAT, "15.0"),
        (".5", FLOAT, ".5"),
        ("1e3", FLOAT, "1e3"),
        ("true", BOOL, "true"),
        ("false", BOOL, "false"),
        ("null", NULL, "null"),
        ('"a\\n\\"b\\u00e9"', STRING, '"a\\n\\"b\\u00e9"'),
        ("`raw \\n no escapes`", STRING, "`raw \\n no escapes`"),
    ],
)
def test_literals(text: str, kind: str, value: str) -> None:
    literal = value_of(text)
    assert isinstance(literal, Literal)
    assert (literal.kind, literal.value) == (kind, value)


def test_raw_string_spans_lines_and_keeps_backslashes() -> None:
    file = parse_file("t.alloy", 'a = `line one\\q\n"two"`\nb = 1\n')
    assert file.diagnostics == []
    assert [s.name for s in file.body] == ["a", "b"]
    assert file.body[0].value.value == '`line one\\q\n"two"`'


def test_arrays_and_objects_with_identifier_and_string_keys() -> None:
    array = value_of("[1, [2], {}, ]")
    assert isinstance(array, ArrayExpr) and len(array.elements) == 3
    obj = value_of('{ plain = 1, "__path__" = "/x", }')
    assert isinstance(obj, ObjectExpr)
    assert [(f.name, f.quoted) for f in obj.fields] == [("plain", False), ("__path__", True)]
    assert value_of("[]").elements == [] and value_of("{}").fields == []


def test_multiline_collections_with_trailing_commas() -> None:
    text = "a = [\n  1,\n  2,\n]\nb = {\n  k = 1,\n}\nc = f(\n  1,\n)\n"
    assert errors(text) == []


def test_multiplication_binds_tighter_than_addition() -> None:
    tree = value_of("1 + 2 * 3")
    assert isinstance(tree, BinaryExpr) and tree.op == ADD
    assert isinstance(tree.right, BinaryExpr) and tree.right.op == MUL


def test_power_is_right_associative_and_binds_tightest() -> None:
    tree = value_of("2 * 3 ^ 2 ^ 1")
    assert tree.op == MUL
    assert tree.right.op == POW and tree.right.right.op == POW


def test_and_binds_tighter_than_or_and_comparisons_tighter_than_and() -> None:
    tree = value_of("a || b && 1 < 2")
    assert tree.op == OR
    assert tree.right.op == AND and tree.right.right.op == "<"


def test_same_precedence_is_left_associative() -> None:
    tree = value_of("10 - 2 - 3")
    assert tree.op == "-" and isinstance(tree.left, BinaryExpr) and tree.left.op == "-"


def test_unary_operators_nest() -> None:
    tree = value_of("-!x")
    assert isinstance(tree, UnaryExpr) and tree.op == "-"
    assert isinstance(tree.value, UnaryExpr) and tree.value.op == "!"


def test_calls_index_access_and_parentheses_chain() -> None:
    tree = value_of("(a.b)(1, 2)[0].field")
    assert isinstance(tree, AccessExpr) and tree.name.name == "field"
    index = tree.value
    assert isinstance(index, IndexExpr)
    call = index.value
    assert isinstance(call, CallExpr) and len(call.args) == 2
    assert isinstance(call.value, ParenExpr) and isinstance(call.value.inner, AccessExpr)
    assert value_of('sys.env("HOME")').value.name.name == "env"
    assert value_of("f()").args == []
    assert isinstance(value_of("a"), Ident)


def test_comments_are_skipped_and_end_statements() -> None:
    text = "/* head\n */ a = 1 // trailing\nb = 2 /* trailing */\nc = [ /* in list */ 1, // x\n 2, ]\n"
    file = parse_file("t.alloy", text)
    assert file.diagnostics == []
    assert [s.name for s in file.body] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = [\n  1,\n  2\n]\n", ["3:4: missing ',' in expression list"]),
        ("a = {\n  k = 1\n}\n", ["2:8: missing ',' in field list"]),
        ("a = 1 b = 2\n", ["1:7: expected TERMINATOR, got IDENT"]),
        ("a = 1 /* c */ b = 2\n", ["1:15: expected TERMINATOR, got IDENT"]),
        ("# comment\n", ["1:1: illegal character U+0023 '#'", "1:1: expected identifier, got ILLEGAL"]),
        (
            "a = 'x'\n",
            ["1:5: illegal single-quoted string; use double quotes", "1:5: expected expression, got ILLEGAL"],
        ),
        ('a = "open\n', ["1:5: string literal not terminated"]),
        ('a = "\\q"\n', ["1:7: unknown escape sequence"]),
        ('a = "\\xZZ"\n', ["1:7: illegal character U+005A 'Z' in escape sequence"]),
        ('a = "\\uD800"\n', ["1:7: escape sequence is invalid Unicode code point"]),
        ("a = 1 /* never closed\n", ["1:7: block comment not terminated"]),
        ("a = 1e\n", ["1:5: exponent has no digits"]),
        ("a = b | c\n", ["1:8: missing second | in ||"]),
        ("a = b & c\n", ["1:8: missing second & in &&"]),
        ("a = 1 + + 2\n", ["1:9: expected expression, got +"]),
        ("a = x.true\n", ["1:7: expected IDENT, got BOOL"]),
        ("a = f(()\n", ["1:8: expected expression, got )", "2:1: expected ), got EOF"]),
        ("a = { 1 = 2 }\n", ["1:7: expected field name (string or identifier), got NUMBER"]),
        ("a.b = 1\n", ['1:1: attribute names may only consist of a single identifier with no "."']),
        ('a "l" = 1\n', ["1:3: attribute names may not have labels"]),
        ("blk name {}\n", ["1:5: expected block label, got IDENT"]),
        ('blk "a b" {}\n', ['1:5: expected block label to be a valid identifier, but got "a b"']),
        ("blk `l` {}\n", ['1:5: expected block label to be a double quoted string, but got "`l`"']),
        (
            "blk\n",
            [
                "1:4: expected block label, got TERMINATOR",
                "2:1: expected attribute assignment or block body, got EOF",
            ],
        ),
        ("blk = \n", ["2:1: expected expression, got EOF"]),
        ("blk =\n  5\n", []),
        ('blk "l"\n', ["1:8: expected block body, got TERMINATOR"]),
        ("= 1\n", ["1:1: expected identifier, got ="]),
        ("a = [1, 2\n", ["1:10: missing ',' in expression list", "2:1: expected ], got EOF"]),
        ('rw = p.remote_write "x" {\n  url = "u"\n}\n', ["1:6: cannot use a block as an expression"]),
        ('rw = p.w "x" "y" 1\n', ["1:14: expected {, got STRING"]),
    ],
)
def test_errors_have_alloy_wording_and_position(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_columns_count_bytes_as_alloy_does() -> None:
    assert errors('a = "é" b\n') == ["1:10: expected TERMINATOR, got IDENT"]


def test_only_one_parser_error_per_line() -> None:
    assert errors("a = 1 + + + 2 + +\n") == ["1:9: expected expression, got +"]


def test_recovery_reports_errors_on_several_lines_and_keeps_parsing() -> None:
    text = 'a = [1\n2]\nblk bad {\n}\nc = )\nok "fine" {\n  x = 1\n}\n'
    file = parse_file("t.alloy", text)
    assert [f"{d.line}:{d.column}: {d.message}" for d in file.diagnostics] == [
        "1:7: missing ',' in expression list",
        "3:5: expected block label, got IDENT",
        "5:5: expected expression, got )",
    ]
    # As in Alloy, a block whose label is malformed is still parsed, without its label.
    assert [s.id for s in file.body if isinstance(s, Block)] == ["blk", "ok.fine"]


def test_diagnostic_prints_as_alloy_fmt() -> None:
    (diagnostic,) = parse_file("dir/main.alloy", "a = [1\n2]\n").diagnostics
    assert str(diagnostic) == "dir/main.alloy:1:7: missing ',' in expression list"


def test_invalid_utf8_and_nul_are_reported() -> None:
    file = parse_file("t.alloy", b'a = "\xff"\nb = "\x00"\n')
    assert [d.message for d in file.diagnostics] == ["illegal UTF-8 encoding", "illegal character NUL"]
    assert parse_file("t.alloy", "\ufeffa = 1\n").diagnostics == []
    assert [str(d) for d in parse_file("t.alloy", b"a = \xff\n").diagnostics] == [
        "t.alloy:1:5: illegal UTF-8 encoding",
        "t.alloy:1:5: illegal character U+FFFD '\ufffd'",
        "t.alloy:1:5: expected expression, got ILLEGAL",
    ]


@pytest.mark.parametrize(
    ("text", "valid"),
    [("abc", True), ("_x1", True), ("é", True), ("a b", False), ("1a", False), ("true", False), ("", False)],
)
def test_label_identifier_rule(text: str, valid: bool) -> None:
    assert is_valid_identifier(text) is valid


def test_go_quote_matches_strconv_quote() -> None:
    assert go_quote('a"b\\c\n\t') == '"a\\"b\\\\c\\n\\t"'
    assert go_quote("é\x01") == '"é\\x01"'
