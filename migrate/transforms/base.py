"""The transform's building blocks: a :class:`Step`, the :data:`TRANSFORMS` registry, text helpers.

A field is a chain of steps.  Each step maps a polars expression to a new one and is run
over the whole column.  A *fallible* step (date, number, phone, email, map, regex, the
final cast to the target type) fails where its input was a value and its output is null;
the first failing step names the reason, e.g. ``birth_date: '1985-13-01' is not a date
(formats %Y-%m-%d)``.  The row is then rejected, or, with ``on_error: warn``, loads with
the field empty and the reason kept as a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import polars as pl

from crmkit.registry import Registry

#: an expression over the current value, given the whole frame for steps that need other columns
Apply = Callable[[pl.Expr], pl.Expr]


@dataclass(frozen=True)
class Step:
    """One transform in a field's chain."""

    name: str
    apply: Apply | None = None
    fallible: bool = False
    reason: str = "is not valid"
    #: frame-level steps (phone) compute a Series from the frame and the current value column
    frame_apply: Callable[[pl.DataFrame, str], pl.Series] | None = None
    #: source columns the step reads besides the field's own
    needs: tuple[str, ...] = dc_field(default_factory=tuple)
    #: a target field of the same feed that must be computed first (phone's region_field)
    needs_field: str | None = None
    #: when the step fails, given its input (default: a value went in and none came out)
    fails: Callable[[pl.Expr], pl.Expr] | None = None


Factory = Callable[[Any], Step]
#: every transform by its YAML name; tag ``bare``: takes no arguments, may be written as a bare name
TRANSFORMS: Registry[Factory] = Registry("transform")
BARE = "bare"


def build(name: str, args: Any) -> Step:
    """A Step from its YAML form; ValueError with a readable message when wrong.

    A factory that trips over arguments of a shape it did not expect (``{date: 5}``,
    ``{replace: [1]}``) raises TypeError, AttributeError...: that is the user's mistake too, said
    in one line with the transform's name, never a traceback.
    """
    factory = TRANSFORMS.get(name)
    try:
        return factory(args)
    except ValueError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError) as exc:
        shown = repr(args)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ValueError(f"transform '{name}' cannot take {shown} as its arguments ({exc})") from None


def is_bare(name: str) -> bool:
    """Whether the transform ``name`` may be written without arguments."""
    return BARE in TRANSFORMS.entry(name).tags


def as_str(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.String)


def nfkc_series(s: pl.Series) -> pl.Series:
    """NFKC, computed only for the values that are not plain ASCII (NFKC leaves those as they are).

    ``str.normalize`` is the costliest string step (0.2 s per million e-mails here); most
    legacy e-mails, phones and codes are ASCII, found by comparing byte and character counts.
    """
    s = s.cast(pl.String)
    mask = (s.str.len_bytes() != s.str.len_chars()).fill_null(False)
    if not mask.any():
        return s
    return s.scatter(mask.arg_true(), s.filter(mask).str.normalize("NFKC"))


def nfkc(e: pl.Expr) -> pl.Expr:
    """:func:`nfkc_series` as an expression (one call per column, no per-row Python)."""
    return as_str(e).map_batches(nfkc_series, return_dtype=pl.String)


def check_regex(pattern: str) -> None:
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except Exception as exc:  # polars raises ComputeError for a bad pattern
        raise ValueError(f"invalid regular expression {pattern!r}: {str(exc).splitlines()[0]}") from None
