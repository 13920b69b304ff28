"""Row conditions (a feed's ``filter:``, a rollout wave's ``scope:``): a small SQL subset, allow-listed.

A condition used to go to polars' SQL engine, whose table functions read files
(``ID IN (SELECT column_1 FROM read_csv('/etc/passwd'))`` read a system file and printed
its first line).  A condition is now parsed here, by hand, into a polars expression over
the feed's own columns, and nothing outside this grammar is accepted:

    condition   := or
    or          := and (OR and)*
    and         := not (AND not)*
    not         := NOT not | predicate
    predicate   := sum [ (= | == | <> | != | < | <= | > | >=) sum
                       | [NOT] IN ( literal, ... )        -- literals only: no subquery
                       | [NOT] (LIKE | ILIKE) 'pattern'
                       | [NOT] BETWEEN sum AND sum
                       | IS [NOT] NULL ]
    sum         := product ((+ | - | ||) product)*
    product     := unary ((* | / | %) unary)*
    unary       := - unary | primary
    primary     := literal | column | "quoted column" | ( condition )
                 | function ( condition, ... ) | [TRY_]CAST ( condition AS type )

A hand-written parser rather than a SQL library: none is a dependency, and an allow-list
is easiest to trust when every accepted form is a line of this file.  Everything else (a
table function, a subquery, a second statement after ``;``, a comment, an unknown function
or type) is refused with one line saying what is not allowed.  Columns are checked against
the source when the filter is applied (:func:`Condition.check_columns`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl


class ConditionError(ValueError):
    """A condition outside the allowed grammar: the message says what is not allowed."""


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")+")
    | (?P<word>[^\W\d]\w*)
    | (?P<comment>--|/\*)
    | (?P<op><=|>=|<>|!=|==|\|\||[=<>+\-*/%(),])
    """,
    re.VERBOSE,
)

#: functions a condition may call: name -> (min args, max args, builder)
_FUNCTIONS: dict[str, tuple[int, int, Callable[[list[pl.Expr]], pl.Expr]]] = {
    "upper": (1, 1, lambda a: a[0].cast(pl.String).str.to_uppercase()),
    "lower": (1, 1, lambda a: a[0].cast(pl.String).str.to_lowercase()),
    "trim": (1, 1, lambda a: a[0].cast(pl.String).str.strip_chars()),
    "ltrim": (1, 1, lambda a: a[0].cast(pl.String).str.strip_chars_start()),
    "rtrim": (1, 1, lambda a: a[0].cast(pl.String).str.strip_chars_end()),
    "length": (1, 1, lambda a: a[0].cast(pl.String).str.len_chars().cast(pl.Int64)),
    "char_length": (1, 1, lambda a: a[0].cast(pl.String).str.len_chars().cast(pl.Int64)),
    "coalesce": (1, 32, lambda a: pl.coalesce(a)),
    "abs": (1, 1, lambda a: a[0].abs()),
    "round": (1, 2, lambda a: a[0].round(_int_arg(a, 1))),
    "substr": (2, 3, lambda a: _substr(a)),
    "substring": (2, 3, lambda a: _substr(a)),
}

#: types of CAST / TRY_CAST
_TYPES: dict[str, pl.DataType] = {
    **dict.fromkeys(("int", "integer", "bigint", "smallint"), pl.Int64()),
    **dict.fromkeys(("double", "float", "real", "numeric", "decimal"), pl.Float64()),
    **dict.fromkeys(("text", "varchar", "string", "char"), pl.String()),
    "date": pl.Date(),
    **dict.fromkeys(("boolean", "bool"), pl.Boolean()),
}

_KEYWORDS = {"and", "or", "not", "in", "is", "null", "like", "ilike", "between", "true", "false", "as"}
_COMPARE = {
    "=": pl.Expr.__eq__,
    "==": pl.Expr.__eq__,
    "<>": pl.Expr.__ne__,
    "!=": pl.Expr.__ne__,
    "<": pl.Expr.__lt__,
    "<=": pl.Expr.__le__,
    ">": pl.Expr.__gt__,
    ">=": pl.Expr.__ge__,
}
_ALLOWED = "comparisons, AND/OR/NOT, IN (a list of values), IS [NOT] NULL, LIKE, BETWEEN, arithmetic, CAST"


def _int_arg(args: list[pl.Expr], i: int) -> int:
    if len(args) <= i:
        return 0
    try:
        return int(pl.select(args[i]).item())
    except Exception:
        raise ConditionError(
            "round() and substr() take whole numbers after the value, e.g. substr(CODE, 1, 2)"
        ) from None


def _substr(a: list[pl.Expr]) -> pl.Expr:
    start = _int_arg(a, 1)
    length = _int_arg(a, 2) if len(a) > 2 else None
    return a[0].cast(pl.String).str.slice(max(start - 1, 0), length)


@dataclass
class Condition:
    """A parsed condition: its polars expression and the columns it reads."""

    text: str
    expr: pl.Expr
    columns: list[str] = field(default_factory=list)

    def missing(self, available: list[str]) -> list[str]:
        """The columns the condition reads that ``available`` lacks."""
        have = set(available)
        return [c for c in self.columns if c not in have]


@dataclass
class _Token:
    kind: str
    text: str
    pos: int

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch == ";":
                raise ConditionError("';' is not allowed: a filter is one condition, not statements")
            if ch in "'\"":
                raise ConditionError(f"unclosed quote {ch} at character {pos + 1}")
            raise ConditionError(f"{ch!r} (character {pos + 1}) is not allowed in a condition")
        kind = m.lastgroup or ""
        if kind == "comment":
            raise ConditionError("comments (-- or /*) are not allowed in a condition")
        if kind != "space":
            out.append(_Token(kind, m.group(), pos))
        pos = m.end()
    out.append(_Token("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0
        self.columns: list[str] = []

    # --- token helpers --------------------------------------------------------------------
    @property
    def tok(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at_word(self, *words: str) -> bool:
        return self.tok.word in words

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def expect_op(self, op: str, what: str) -> None:
        if not self.at_op(op):
            raise ConditionError(f"expected {op!r} {what}, found {self._shown()}")
        self.take()

    def expect_word(self, word: str, what: str) -> None:
        if not self.at_word(word):
            raise ConditionError(f"expected {word.upper()} {what}, found {self._shown()}")
        self.take()

    def _shown(self) -> str:
        return "the end" if self.tok.kind == "end" else repr(self.tok.text)

    # --- grammar --------------------------------------------------------------------------
    def condition(self) -> pl.Expr:
        left = self.conjunction()
        while self.at_word("or"):
            self.take()
            left = left | self.conjunction()
        return left

    def conjunction(self) -> pl.Expr:
        left = self.negation()
        while self.at_word("and"):
            self.take()
            left = left & self.negation()
        return left

    def negation(self) -> pl.Expr:
        if self.at_word("not"):
            self.take()
            return ~self.negation()
        return self.predicate()

    def predicate(self) -> pl.Expr:
        left = self.sum()
        if self.tok.kind == "op" and self.tok.text in _COMPARE:
            op = _COMPARE[self.take().text]
            return op(left, self.sum())  # type: ignore[no-any-return]
        if self.at_word("is"):
            self.take()
            negate = self._not()
            self.expect_word("null", "after IS [NOT]")
            return left.is_not_null() if negate else left.is_null()
        negate = self._not()
        if self.at_word("in"):
            self.take()
            hit = left.is_in(self._value_list())
        elif self.at_word("like", "ilike"):
            hit = self._like(left, self.take().word == "ilike")
        elif self.at_word("between"):
            self.take()
            low = self.sum()
            self.expect_word("and", "in BETWEEN ... AND ...")
            hit = (left >= low) & (left <= self.sum())
        elif negate:
            raise ConditionError(f"expected IN, LIKE or BETWEEN after NOT, found {self._shown()}")
        else:
            return left
        return ~hit if negate else hit

    def _not(self) -> bool:
        if self.at_word("not"):
            self.take()
            return True
        return False

    def _value_list(self) -> pl.Series:
        self.expect_op("(", "after IN")
        if self.at_word("select", "with", "values", "table"):
            raise ConditionError("a subquery is not allowed: IN takes a list of values, e.g. IN ('A', 'B')")
        values = [self._literal_value()]
        while self.at_op(","):
            self.take()
            values.append(self._literal_value())
        self.expect_op(")", "to close the IN list")
        if all(isinstance(v, str) or v is None for v in values):
            return pl.Series(values, dtype=pl.String)
        return pl.Series(values)

    def _literal_value(self) -> object:
        sign = -1 if self.at_op("-") and self.take() else 1
        t = self.tok
        if t.kind == "number":
            self.take()
            return sign * _number(t.text)
        if t.kind == "string" and sign == 1:
            self.take()
            return t.text[1:-1].replace("''", "'")
        if t.word in ("true", "false", "null") and sign == 1:
            self.take()
            return {"true": True, "false": False, "null": None}[t.word]
        raise ConditionError(f"IN takes a list of values (quoted text or numbers), found {self._shown()}")

    def _like(self, left: pl.Expr, ignore_case: bool) -> pl.Expr:
        t = self.tok
        if t.kind != "string":
            raise ConditionError(f"LIKE takes a quoted pattern ('A%'), found {self._shown()}")
        self.take()
        pattern = t.text[1:-1].replace("''", "'")
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
        return left.cast(pl.String).str.contains(("(?si)" if ignore_case else "(?s)") + f"^{regex}$")

    def sum(self) -> pl.Expr:
        left = self.product()
        while self.at_op("+", "-", "||"):
            op = self.take().text
            right = self.product()
            if op == "||":
                left = pl.concat_str([left.cast(pl.String), right.cast(pl.String)])
            else:
                left = left + right if op == "+" else left - right
        return left

    def product(self) -> pl.Expr:
        left = self.unary()
        while self.at_op("*", "/", "%"):
            op = self.take().text
            right = self.unary()
            left = left * right if op == "*" else left / right if op == "/" else left % right
        return left

    def unary(self) -> pl.Expr:
        if self.at_op("-"):
            self.take()
            return -self.unary()
        return self.primary()

    def primary(self) -> pl.Expr:
        t = self.tok
        if t.kind == "number":
            self.take()
            return pl.lit(_number(t.text))
        if t.kind == "string":
            self.take()
            return pl.lit(t.text[1:-1].replace("''", "'"), dtype=pl.String)
        if t.kind == "quoted":
            self.take()
            return self._column(t.text[1:-1].replace('""', '"'))
        if self.at_op("("):
            self.take()
            if self.at_word("select", "with", "values", "table"):
                raise ConditionError("a subquery is not allowed in a condition")
            inner = self.condition()
            self.expect_op(")", "to close '('")
            return inner
        if t.kind == "word":
            return self._word()
        raise ConditionError(f"expected a column, a value or '(', found {self._shown()}")

    def _word(self) -> pl.Expr:
        t = self.take()
        word = t.word
        if word in ("true", "false"):
            return pl.lit(word == "true")
        if word == "null":
            return pl.lit(None)
        if word in ("cast", "try_cast") and self.at_op("("):
            return self._cast(strict=word == "cast")
        if self.at_op("("):
            return self._call(t.text)
        if word in _KEYWORDS or word in ("select", "from", "where", "with", "union"):
            raise ConditionError(f"{t.text.upper()} is not allowed here: {_ALLOWED}")
        return self._column(t.text)

    def _call(self, name: str) -> pl.Expr:
        spec = _FUNCTIONS.get(name.lower())
        if spec is None:
            raise ConditionError(
                f"function {name}() is not allowed in a condition (allowed: {', '.join(sorted(_FUNCTIONS))})"
            )
        self.take()  # (
        args = [] if self.at_op(")") else [self.condition()]
        while self.at_op(","):
            self.take()
            args.append(self.condition())
        self.expect_op(")", f"to close {name}(")
        low, high, build = spec
        if not low <= len(args) <= high:
            raise ConditionError(f"{name}() takes {low}{'' if low == high else f' to {high}'} argument(s)")
        return build(args)

    def _cast(self, strict: bool) -> pl.Expr:
        self.take()  # (
        value = self.condition()
        self.expect_word("as", "in CAST(value AS type)")
        t = self.take()
        dtype = _TYPES.get(t.word)
        if dtype is None:
            raise ConditionError(f"CAST to {t.text or 'nothing'}: the types are {', '.join(sorted(_TYPES))}")
        if self.at_op("("):  # VARCHAR(20), DECIMAL(10, 2): the size does not matter here
            while not self.at_op(")") and self.tok.kind != "end":
                self.take()
            self.expect_op(")", "after the type's size")
        self.expect_op(")", "to close CAST(")
        return value.cast(dtype, strict=strict)

    def _column(self, name: str) -> pl.Expr:
        if name not in self.columns:
            self.columns.append(name)
        return pl.col(name)


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_condition(text: str) -> Condition:
    """Parse a filter or scope condition; a :class:`ConditionError` says what is not allowed."""
    if not text.strip():
        raise ConditionError("the condition is empty")
    parser = _Parser(text)
    expr = parser.condition()
    if parser.tok.kind != "end":
        raise ConditionError(f"unexpected {parser._shown()} after a complete condition")
    return Condition(text, expr, parser.columns)
