"""Scanner and parser for the Grafana Alloy configuration syntax.

Faithful to grafana/alloy syntax/scanner and syntax/parser: the same tokens, the same newline-as-terminator
rules, the same error recovery (at most one parser error per line) and the same error wording, so a file
rejected here is rejected by `alloy fmt` with the same message at the same line:column (1-based, byte
columns as Alloy counts them).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

# Token kinds; names are Alloy's token.String() values, which appear verbatim in its error messages.
ILLEGAL = "ILLEGAL"
EOF = "EOF"
COMMENT = "COMMENT"
IDENT = "IDENT"
NUMBER = "NUMBER"
FLOAT = "FLOAT"
STRING = "STRING"
BOOL = "BOOL"
NULL = "NULL"
TERMINATOR = "TERMINATOR"
OR, AND, NOT, ASSIGN = "||", "&&", "!", "="
EQ, NEQ, LT, LTE, GT, GTE = "==", "!=", "<", "<=", ">", ">="
ADD, SUB, MUL, DIV, MOD, POW = "+", "-", "*", "/", "%", "^"
LCURLY, RCURLY, LPAREN, RPAREN, LBRACK, RBRACK, COMMA, DOT = "{", "}", "(", ")", "[", "]", ",", "."

BINARY_PRECEDENCE = {
    OR: 1,
    AND: 2,
    EQ: 3,
    NEQ: 3,
    LT: 3,
    LTE: 3,
    GT: 3,
    GTE: 3,
    ADD: 4,
    SUB: 4,
    MUL: 5,
    DIV: 5,
    MOD: 5,
    POW: 6,
}
UNARY_OPERATORS = frozenset({NOT, SUB})
KEYWORDS = {"true": BOOL, "false": BOOL, "null": NULL}
LITERAL_TOKENS = frozenset({STRING, NUMBER, FLOAT, BOOL, NULL})
STATEMENT_END = frozenset({TERMINATOR, RPAREN, RCURLY, RBRACK, COMMA})

_EOF_CHAR = ""
_BOM = "\ufeff"
_SIMPLE_ESCAPES = frozenset('abfnrtv\\"')
_SINGLE_CHAR_TOKENS = {
    "+": ADD,
    "-": SUB,
    "*": MUL,
    "%": MOD,
    "^": POW,
    "{": LCURLY,
    "}": RCURLY,
    "(": LPAREN,
    ")": RPAREN,
    "[": LBRACK,
    "]": RBRACK,
    ",": COMMA,
    ".": DOT,
}
_TWO_CHAR_TOKENS = {"!": (NOT, NEQ), "=": (ASSIGN, EQ), "<": (LT, LTE), ">": (GT, GTE)}
_TERMINATING_TOKENS = frozenset({RCURLY, RPAREN, RBRACK})

_ASCII_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASCII_IDENT_REST = re.compile(r"[A-Za-z0-9_]*")
_WHITESPACE = re.compile(r"[ \t\r]*")
_WHITESPACE_AND_NEWLINES = re.compile(r"[ \t\r\n]*")
_PLAIN_STRING = re.compile(r'"[^"\\\n\x00]*"')
_DIGITS = re.compile(r"[0-9]*")
# Characters Alloy's scanner reports wherever it reads them, even inside strings and comments.
_BAD_CHARS = re.compile("[\x00\ufeff\udc80-\udcff]")


Token = tuple[int, str, str]  # (offset, kind, literal)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a file, located as Alloy locates it."""

    filename: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}: {self.message}"


class Source:
    """The text of one file and the mapping from character offsets to Alloy's line:column."""

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        self.text = text
        self._line_starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self._line_starts, offset)

    def position(self, offset: int) -> tuple[int, int]:
        line = self.line_of(offset)
        prefix = self.text[self._line_starts[line - 1] : offset]
        column = len(prefix) if prefix.isascii() else len(prefix.encode("utf-8", "surrogateescape"))
        return line, column + 1

    def diagnostic(self, offset: int, message: str, severity: str = "error") -> Diagnostic:
        line, column = self.position(offset)
        return Diagnostic(self.filename, line, column, message, severity)


def decode_source(data: bytes) -> str:
    """Decode file bytes, keeping invalid UTF-8 visible to the scanner (as lone surrogates)."""
    return data.decode("utf-8", "surrogateescape")


def go_quote(text: str) -> str:
    """Quote text as Go's %q does (strconv.Quote), which Alloy uses in many messages."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_unicode(ch: str) -> str:
    """Format a character as Go's %#U does: U+0023 '#'."""
    code = f"U+{ord(ch):04X}"
    return f"{code} '{ch}'" if ch.isprintable() else code


def _is_decimal(ch: str) -> bool:
    return "0" <= ch <= "9"


def is_letter(ch: str) -> bool:
    if ch.isascii():
        return ch.isalpha() or ch == "_"
    return unicodedata.category(ch).startswith("L")


def is_identifier_char(ch: str) -> bool:
    if ch.isascii():
        return ch.isalnum() or ch == "_"
    category = unicodedata.category(ch)
    return category.startswith("L") or category == "Nd"


def is_valid_identifier(text: str) -> bool:
    """True when text scans as exactly one identifier (keywords excluded), as scanner.IsValidIdentifier."""
    if not text or not is_letter(text[0]) or not all(is_identifier_char(ch) for ch in text[1:]):
        return False
    return text not in KEYWORDS


class Scanner:
    """Alloy's lexical scanner: yields (offset, token, literal) and reports lexical errors."""

    def __init__(self, text: str, on_error: Callable[[int, str], None] | None = None) -> None:
        self.text = text
        self.on_error = on_error
        self.error_count = 0
        self.insert_term = False
        self.offset = 1 if text.startswith(_BOM) else 0
        self._bad_chars = [m.start() for m in _BAD_CHARS.finditer(text) if m.start() > 0 or text[0] != _BOM]
        self._bad_index = 0

    def _error(self, offset: int, message: str) -> None:
        self.error_count += 1
        if self.on_error is not None:
            self.on_error(offset, message)

    def _char(self, offset: int) -> str:
        return self.text[offset] if offset < len(self.text) else _EOF_CHAR

    def _report_bad_chars_before(self, end: int) -> None:
        bad = self._bad_chars
        while self._bad_index < len(bad) and bad[self._bad_index] < end:
            offset = bad[self._bad_index]
            ch = self.text[offset]
            if ch == "\x00":
                self._error(offset, "illegal character NUL")
            elif ch == _BOM:
                self._error(offset, "illegal byte order mark")
            else:
                self._error(offset, "illegal UTF-8 encoding")
            self._bad_index += 1

    def scan(self) -> Token:
        """Return the next token as (offset, kind, literal); comments come back as COMMENT tokens."""
        pattern = _WHITESPACE if self.insert_term else _WHITESPACE_AND_NEWLINES
        start = pattern.match(self.text, self.offset).end()
        if self._bad_chars:
            self._report_bad_chars_before(start + 1)
        ch = self._char(start)
        if ch and is_letter(ch):
            return self._scan_identifier(start)
        if _is_decimal(ch) or (ch == "." and _is_decimal(self._char(start + 1))):
            return self._scan_number(start)
        return self._scan_operator(start, ch)

    def _finish(self, start: int, end: int, kind: str, literal: str, insert_term: bool) -> Token:
        if self._bad_chars:
            self._report_bad_chars_before(end + 1)
        self.offset = end
        self.insert_term = insert_term
        return start, kind, literal

    def _scan_identifier(self, start: int) -> Token:
        match = _ASCII_IDENT.match(self.text, start)
        end = match.end() if match else start + 1
        while end < len(self.text) and not self.text[end].isascii() and is_identifier_char(self.text[end]):
            end = _ASCII_IDENT_REST.match(self.text, end + 1).end()
        literal = self.text[start:end]
        kind = KEYWORDS.get(literal, IDENT) if len(literal) > 1 else IDENT
        return self._finish(start, end, kind, literal, True)

    def _scan_number(self, start: int) -> Token:
        text, end, kind = self.text, start, NUMBER
        if text[end] != ".":
            end = _DIGITS.match(text, end).end()
        if self._char(end) == ".":
            kind = FLOAT
            end = _DIGITS.match(text, end + 1).end()
        if self._char(end) in ("e", "E"):
            kind = FLOAT
            end += 1
            if self._char(end) in ("+", "-"):
                end += 1
            digits_end = _DIGITS.match(text, end).end()
            if digits_end == end:
                self._error(start, "exponent has no digits")
            end = digits_end
        return self._finish(start, end, kind, text[start:end], True)

    def _scan_operator(self, start: int, ch: str) -> Token:
        after = self._char(start + 1)
        if ch == _EOF_CHAR:
            if self.insert_term:
                return self._finish(start, start, TERMINATOR, "\n", False)
            return self._finish(start, start, EOF, "", False)
        if ch == "\n":
            return self._finish(start, start + 1, TERMINATOR, "\n", False)
        if ch == '"':
            plain = _PLAIN_STRING.match(self.text, start)
            end = plain.end() if plain else self._scan_string(start, '"', escapes=True, multiline=False)
            return self._finish(start, end, STRING, self.text[start:end], True)
        if ch == "`":
            end = self._scan_string(start, "`", escapes=False, multiline=True)
            return self._finish(start, end, STRING, self.text[start:end], True)
        if ch == "'":
            self._error(start, "illegal single-quoted string; use double quotes")
            end = self._scan_string(start, "'", escapes=True, multiline=False)
            return self._finish(start, end, ILLEGAL, self.text[start:end], True)
        if ch == "/" and after in ("/", "*"):
            return self._scan_comment_or_terminator(start)
        if ch in ("|", "&"):
            if after != ch:
                self._error(start + 1, f"missing second {ch} in {ch}{ch}")
                return self._finish(start, start + 1, ch + ch, "", False)
            return self._finish(start, start + 2, ch + ch, "", False)
        if ch in _TWO_CHAR_TOKENS:
            single, double = _TWO_CHAR_TOKENS[ch]
            if after == "=":
                return self._finish(start, start + 2, double, "", False)
            return self._finish(start, start + 1, single, "", False)
        if ch == "/":
            return self._finish(start, start + 1, DIV, "", False)
        if ch in _SINGLE_CHAR_TOKENS:
            kind = _SINGLE_CHAR_TOKENS[ch]
            return self._finish(start, start + 1, kind, "", kind in _TERMINATING_TOKENS)
        if ch != _BOM:
            # An undecodable byte reads as U+FFFD in Go, after its "illegal UTF-8 encoding" error.
            shown = "\ufffd" if "\udc80" <= ch <= "\udcff" else ch
            self._error(start, f"illegal character {go_unicode(shown)}")
        return self._finish(start, start + 1, ILLEGAL, ch, self.insert_term)

    def _scan_string(self, start: int, quote: str, *, escapes: bool, multiline: bool) -> int:
        offset = start + 1
        while True:
            ch = self._char(offset)
            if ch == _EOF_CHAR or (ch == "\n" and not multiline):
                self._error(start, "string literal not terminated")
                return offset
            offset += 1
            if ch == quote:
                return offset
            if escapes and ch == "\\":
                offset = self._scan_escape(offset)

    def _scan_escape(self, offset: int) -> int:
        """Consume one escape sequence after a backslash; stop at the offending character on error."""
        start, ch = offset, self._char(offset)
        if ch in _SIMPLE_ESCAPES and ch:
            return offset + 1
        if ch in "01234567" and ch:
            count, base, maximum = 3, 8, 255
        elif ch in ("x", "u", "U"):
            offset += 1
            count, base, maximum = {"x": (2, 16, 255), "u": (4, 16, 0x10FFFF), "U": (8, 16, 0x10FFFF)}[ch]
        else:
            self._error(start, "escape sequence not terminated" if ch == _EOF_CHAR else "unknown escape sequence")
            return offset
        value = 0
        for _ in range(count):
            ch = self._char(offset)
            digit = int(ch, 16) if ch and ch in "0123456789abcdefABCDEF" else 16
            if digit >= base:
                if ch == _EOF_CHAR:
                    self._error(start, "escape sequence not terminated")
                else:
                    self._error(start, f"illegal character {go_unicode(ch)} in escape sequence")
                return offset
            value = value * base + digit
            offset += 1
        if value > maximum or 0xD800 <= value < 0xE000:
            self._error(start, "escape sequence is invalid Unicode code point")
        return offset

    def _scan_comment_or_terminator(self, start: int) -> Token:
        # A comment running to the end of the line ends the statement before it, as a newline would.
        if self.insert_term and self._comment_reaches_line_end(start + 1):
            return self._finish(start, start, TERMINATOR, "\n", False)
        end = self._comment_end(start)
        return self._finish(start, end, COMMENT, self.text[start:end], False)

    def _comment_end(self, start: int) -> int:
        text = self.text
        if text[start + 1] == "/":
            newline = text.find("\n", start)
            return len(text) if newline < 0 else newline
        close = text.find("*/", start + 2)
        if close < 0:
            self._error(start, "block comment not terminated")
            return len(text)
        return close + 2

    def _comment_reaches_line_end(self, offset: int) -> bool:
        text = self.text
        while self._char(offset) in ("/", "*"):
            if text[offset] == "/":
                return True
            close = text.find("*/", offset + 1)
            newline = text.find("\n", offset + 1)
            if close < 0 or (0 <= newline < close):
                return True
            offset = _WHITESPACE.match(text, close + 2).end()
            ch = self._char(offset)
            if ch in (_EOF_CHAR, "\n"):
                return True
            if ch != "/":
                return False
            offset += 1
        return False


# ---------------------------------------------------------------------------------------------------------
# AST: every node keeps the character offsets of its tokens; Source.position() turns them into line:column.


@dataclass(slots=True)
class Ident:
    name: str
    offset: int


@dataclass(slots=True)
class Literal:
    kind: str
    value: str
    offset: int


@dataclass(slots=True)
class ArrayExpr:
    elements: list[Expr]
    offset: int
    end: int


@dataclass(slots=True)
class ObjectField:
    name: str
    offset: int
    quoted: bool
    value: Expr


@dataclass(slots=True)
class ObjectExpr:
    fields: list[ObjectField]
    offset: int
    end: int


@dataclass(slots=True)
class UnaryExpr:
    op: str
    offset: int
    value: Expr


@dataclass(slots=True)
class BinaryExpr:
    left: Expr
    op: str
    op_offset: int
    right: Expr


@dataclass(slots=True)
class AccessExpr:
    value: Expr
    name: Ident


@dataclass(slots=True)
class IndexExpr:
    value: Expr
    index: Expr
    lbrack: int
    rbrack: int


@dataclass(slots=True)
class CallExpr:
    value: Expr
    args: list[Expr]
    lparen: int
    rparen: int


@dataclass(slots=True)
class ParenExpr:
    inner: Expr
    offset: int
    end: int


Expr = Ident | Literal | ArrayExpr | ObjectExpr | UnaryExpr | BinaryExpr | AccessExpr | IndexExpr | CallExpr | ParenExpr


@dataclass(slots=True)
class Attribute:
    name: str
    offset: int
    value: Expr


@dataclass(slots=True)
class Block:
    name: list[str]
    offset: int
    label: str
    label_offset: int | None
    body: list[Statement]
    lcurly: int
    rcurly: int

    @property
    def full_name(self) -> str:
        return ".".join(self.name)

    @property
    def id(self) -> str:
        """The component ID Alloy derives from the block: name fragments plus label."""
        return f"{self.full_name}.{self.label}" if self.label else self.full_name


Statement = Attribute | Block


def start_offset(node: Expr | Statement) -> int:
    """Offset of the first token of node, as ast.StartPos."""
    while True:
        if isinstance(node, BinaryExpr):
            node = node.left
        elif isinstance(node, AccessExpr | IndexExpr | CallExpr):
            node = node.value
        else:
            return node.offset


@dataclass(slots=True)
class File:
    source: Source
    body: list[Statement]
    diagnostics: list[Diagnostic]


# ---------------------------------------------------------------------------------------------------------


class _BlockName:
    __slots__ = ("fragments", "label", "label_offset", "offset")

    def __init__(self, first: str, offset: int) -> None:
        self.fragments = [first]
        self.offset = offset
        self.label = ""
        self.label_offset: int | None = None

    def valid_attribute(self) -> bool:
        return len(self.fragments) == 1 and self.label == ""


class Parser:
    """Alloy's recursive-descent parser, with its error recovery and one-error-per-line rule."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self._last_error_line = 0
        self._scanner = Scanner(source.text, self._scanner_error)
        self.offset, self.tok, self.lit = 0, EOF, ""
        self._next()

    def _scanner_error(self, offset: int, message: str) -> None:
        self.diagnostics.append(self.source.diagnostic(offset, message))

    def _next(self) -> None:
        self.offset, self.tok, self.lit = self._scanner.scan()
        while self.tok == COMMENT:
            self.offset, self.tok, self.lit = self._scanner.scan()

    def _add_error(self, message: str) -> None:
        line = self.source.line_of(self.offset)
        if line == self._last_error_line:
            return
        self._last_error_line = line
        self.diagnostics.append(self.source.diagnostic(self.offset, message))

    def _add_diagnostic(self, offset: int, message: str) -> None:
        self.diagnostics.append(self.source.diagnostic(offset, message))

    def _expect(self, kind: str) -> Token:
        current = (self.offset, self.tok, self.lit)
        if self.tok != kind:
            self._add_error(f"expected {kind}, got {self.tok}")
        self._next()
        return current

    def _advance(self, kind: str) -> None:
        while self.tok not in (EOF, kind):
            self._next()

    def _advance_any(self, kinds: frozenset[str]) -> None:
        while self.tok != EOF and self.tok not in kinds:
            self._next()

    def parse_file(self) -> list[Statement]:
        return self._parse_body(EOF)

    def _parse_body(self, until: str) -> list[Statement]:
        body: list[Statement] = []
        while self.tok not in (until, EOF):
            statement = self._parse_statement()
            if statement is not None:
                body.append(statement)
            if self.tok == until:
                break
            if self.tok != TERMINATOR:
                self._add_error(f"expected {TERMINATOR}, got {self.tok}")
                self._consume_statement()
            self._next()
        return body

    def _consume_statement(self) -> None:
        depth = {LCURLY: 0, LBRACK: 0, LPAREN: 0}
        closers = {RCURLY: LCURLY, RBRACK: LBRACK, RPAREN: LPAREN}
        while self.tok != EOF:
            if self.tok in depth:
                depth[self.tok] += 1
            elif self.tok in closers:
                depth[closers[self.tok]] -= 1
            elif self.tok == TERMINATOR and all(count <= 0 for count in depth.values()):
                return
            self._next()

    def _parse_statement(self) -> Statement | None:
        name = self._parse_block_name()
        if name is None:
            self._advance(IDENT)
            return None
        if self.tok == ASSIGN:
            self._next()
            if len(name.fragments) != 1:
                self._add_diagnostic(name.offset, 'attribute names may only consist of a single identifier with no "."')
            elif name.label_offset is not None:
                self._add_diagnostic(name.label_offset, "attribute names may not have labels")
            return Attribute(name.fragments[0], name.offset, self.parse_expression())
        if self.tok == LCURLY:
            lcurly = self._expect(LCURLY)[0]
            body = self._parse_body(RCURLY)
            rcurly = self._expect(RCURLY)[0]
            return Block(name.fragments, name.offset, name.label, name.label_offset, body, lcurly, rcurly)
        if name.valid_attribute():
            self._add_error(f"expected attribute assignment or block body, got {self.tok}")
        else:
            self._add_error(f"expected block body, got {self.tok}")
        self._advance(IDENT)
        return None

    def _parse_block_name(self) -> _BlockName | None:
        if self.tok != IDENT:
            self._add_error(f"expected identifier, got {self.tok}")
            return None
        name = _BlockName(self.lit, self.offset)
        self._next()
        while self.tok == DOT:
            self._next()
            if self.tok != IDENT:
                self._add_error(f"expected identifier, got {self.tok}")
            name.fragments.append(self.lit)
            self._next()
        if self.tok not in (ASSIGN, LCURLY):
            if self.tok == STRING:
                self._parse_label(name)
            else:
                self._add_error(f"expected block label, got {self.tok}")
            self._next()
        return name

    def _parse_label(self, name: _BlockName) -> None:
        literal = self.lit
        if literal[0] != '"':
            self._add_error(f"expected block label to be a double quoted string, but got {go_quote(literal)}")
        if len(literal.encode("utf-8", "surrogateescape")) > 2:
            name.label = literal[1:-1]
            if not is_valid_identifier(name.label):
                self._add_error(f"expected block label to be a valid identifier, but got {go_quote(name.label)}")
        name.label_offset = self.offset

    def parse_expression(self) -> Expr:
        return self._parse_binary(1)

    def _parse_binary(self, min_precedence: int) -> Expr:
        left = self._parse_pow()
        while True:
            op, offset = self.tok, self.offset
            precedence = BINARY_PRECEDENCE.get(op, 0)
            if precedence < min_precedence:
                return left
            self._next()
            right = self._parse_binary(precedence + 1)
            left = BinaryExpr(left, op, offset, right)

    def _parse_pow(self) -> Expr:
        left = self._parse_unary()
        if self.tok != POW:
            return left
        offset = self.offset
        self._next()
        return BinaryExpr(left, POW, offset, self._parse_pow())

    def _parse_unary(self) -> Expr:
        if self.tok in UNARY_OPERATORS:
            op, offset = self.tok, self.offset
            self._next()
            return UnaryExpr(op, offset, self._parse_unary())
        primary = self._parse_primary()
        while True:
            if self.tok == DOT:
                self._next()
                offset, _, name = self._expect(IDENT)
                primary = AccessExpr(primary, Ident(name, offset))
            elif self.tok == LBRACK:
                lbrack = self._expect(LBRACK)[0]
                index = self.parse_expression()
                primary = IndexExpr(primary, index, lbrack, self._expect(RBRACK)[0])
            elif self.tok == LPAREN:
                lparen = self._expect(LPAREN)[0]
                args = self._parse_expression_list(RPAREN) if self.tok != RPAREN else []
                primary = CallExpr(primary, args, lparen, self._expect(RPAREN)[0])
            elif self.tok in (STRING, LCURLY):
                if not self._parse_block_used_as_expression(primary):
                    return primary
            else:
                return primary

    def _parse_block_used_as_expression(self, primary: Expr) -> bool:
        """Parse `name "label" { ... }` on the right of `=` to say a block is not an expression."""
        if self.tok == STRING:
            self._next()
        if self._expect(LCURLY)[1] != LCURLY:
            self._consume_statement()
            return False
        self._parse_body(RCURLY)
        if self._expect(RCURLY)[1] != RCURLY:
            self._consume_statement()
            return False
        self._add_diagnostic(start_offset(primary), "cannot use a block as an expression")
        return True

    def _parse_primary(self) -> Expr:
        tok, offset = self.tok, self.offset
        if tok == IDENT:
            name = self.lit
            self._next()
            return Ident(name, offset)
        if tok in LITERAL_TOKENS:
            literal = Literal(tok, self.lit, offset)
            self._next()
            return literal
        if tok == LPAREN:
            self._next()
            inner = self.parse_expression()
            return ParenExpr(inner, offset, self._expect(RPAREN)[0])
        if tok == LBRACK:
            self._next()
            elements = self._parse_expression_list(RBRACK) if self.tok != RBRACK else []
            return ArrayExpr(elements, offset, self._expect(RBRACK)[0])
        if tok == LCURLY:
            self._next()
            # Alloy compares with "]" here (not "}"); kept so that `{]` is reported exactly as Alloy does.
            fields = self._parse_field_list(RCURLY) if self.tok != RBRACK else []
            return ObjectExpr(fields, offset, self._expect(RCURLY)[0])
        self._add_error(f"expected expression, got {tok}")
        self._advance_any(STATEMENT_END)
        return Literal(NULL, "null", offset)

    def _parse_expression_list(self, until: str) -> list[Expr]:
        expressions: list[Expr] = []
        while self.tok not in (until, EOF):
            expressions.append(self.parse_expression())
            if self.tok == until:
                break
            if self.tok != COMMA:
                self._add_error("missing ',' in expression list")
            self._next()
        return expressions

    def _parse_field_list(self, until: str) -> list[ObjectField]:
        fields: list[ObjectField] = []
        while self.tok not in (until, EOF):
            fields.append(self._parse_field())
            if self.tok == until:
                break
            if self.tok != COMMA:
                self._add_error("missing ',' in field list")
            self._next()
        return fields

    def _parse_field(self) -> ObjectField:
        name, offset, quoted = self.lit, self.offset, False
        if self.tok in (STRING, IDENT):
            if self.tok == STRING and len(self.lit) > 2:
                name, quoted = self.lit[1:-1], True
            self._next()
        else:
            self._add_error(f"expected field name (string or identifier), got {self.tok}")
            self._advance(ASSIGN)
        self._expect(ASSIGN)
        return ObjectField(name, offset, quoted, self.parse_expression())


def parse_file(filename: str, content: str | bytes) -> File:
    """Parse one Alloy file; the result carries the AST and every syntax error, in Alloy's order."""
    text = decode_source(content) if isinstance(content, bytes) else content
    source = Source(filename, text)
    parser = Parser(source)
    body = parser.parse_file()
    return File(source, body, parser.diagnostics)
