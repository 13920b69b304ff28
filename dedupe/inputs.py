"""Inputs: files or database tables → one frame of records with ``__source`` and ``__key``.

An input is a path (a suffix of a source kind, :func:`crmkit.migrate.sources.kind_for`:
``.csv``, ``.txt``, ``.tsv``, ``.xlsx``, ...; or ``.parquet``) or a database URL with a table
after ``#`` (``sqlite:///legacy.db#T_CUSTOMER``).  Files and tables are read by the
migration's own readers (encoding detection, one-line errors).  Every record
must have a key (the rules' ``key`` columns, else its row number), unique in its source.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import ValidationError

from crmkit.dedupe.rules import DedupeError, Rules
from crmkit.dedupe.survive import KEY, SOURCE
from crmkit.migrate.sources import ROW, Extracted, extract, file_suffixes, kind_for, make_source


def read_input(spec: str, rules: Rules | None = None) -> Extracted:
    """One input, every column as text plus ``__row``; ``rules.sources.<name>`` may say how to read it."""
    if "://" in spec:
        if "#" not in spec:
            raise DedupeError(f"{_mask(spec)}: name the table after '#', e.g. sqlite:///legacy.db#customers")
        url, table = spec.rsplit("#", 1)
        try:
            src = make_source("sql", url=url, table=table)
        except Exception as exc:
            raise DedupeError(f"{_mask(url)}: {str(exc).splitlines()[-1].strip()}") from None
        return extract(table, src)
    path = Path(spec)
    kind = kind_for(path)
    how = rules.sources.get(path.stem) if rules is not None else None
    opts = how.model_dump(include={"encoding", "delimiter", "sheet", "header_row"}) if how else {}
    if kind is not None:
        try:  # each kind takes the options it has keys for (a CSV no sheet, a workbook no encoding)
            return extract(path.stem, make_source(kind, path=path, **opts))
        except ValidationError as exc:
            raise DedupeError(f"sources.{path.stem}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    if path.suffix.lower() == ".parquet":
        return _parquet(path)
    raise DedupeError(f"{path}: unknown kind of input (use {file_suffixes(also=('.parquet', 'URL#table'))})")


def _mask(url: str) -> str:
    from crmkit.db.url import mask_url

    return mask_url(url)


def _parquet(path: Path) -> Extracted:
    if not path.exists():
        raise DedupeError(f"{path}: no such file")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:
        raise DedupeError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    frame = frame.with_columns(pl.all().cast(pl.String)).with_row_index(ROW, offset=1)
    return Extracted(path.stem, frame.with_columns(pl.col(ROW).cast(pl.Int64)))


def records(inputs: list[Extracted], rules: Rules) -> pl.DataFrame:
    """The inputs as one frame of records: the rules' column names, ``__source``, ``__key``, ``__row``."""
    frames = [_one(ex, rules) for ex in inputs]
    names = [f[SOURCE][0] for f in frames if f.height]
    if len(set(names)) < len(names) and rules.source_column is None:
        raise DedupeError(f"two inputs have the same name ({', '.join(names)}): rename one file")
    out = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    dup = out.filter(pl.struct(SOURCE, KEY).is_duplicated())
    if dup.height:
        first = dup.row(0, named=True)
        raise DedupeError(
            f"{first[SOURCE]}: key '{first[KEY]}' is used by {dup.filter(pl.col(KEY) == first[KEY]).height}"
            f" records (rows {', '.join(str(r) for r in dup.filter(pl.col(KEY) == first[KEY])[ROW])}):"
            f" a key must name one record"
        )
    return out


def _one(ex: Extracted, rules: Rules) -> pl.DataFrame:
    spec = rules.sources.get(ex.name)
    frame = ex.frame
    if spec is not None and spec.columns:
        missing = [c for c in spec.columns.values() if c not in frame.columns]
        if missing:
            raise DedupeError(
                f"{ex.name}: sources.{ex.name}.columns names {', '.join(map(repr, missing))}, "
                f"which it lacks (its columns: {', '.join(ex.columns)})"
            )
        frame = frame.rename({src: ours for ours, src in spec.columns.items()})
    key = (spec.key if spec is not None and spec.key else None) or rules.key
    need = sorted(
        {c for f in rules.fields.values() for c in f.inputs}
        | set(key)
        | ({rules.source_column} if rules.source_column else set())
    )
    missing = [c for c in need if c not in frame.columns]
    if missing:
        have = ", ".join(c for c in frame.columns if c != ROW)
        raise DedupeError(f"{ex.name}: no column {', '.join(map(repr, missing))} that the rules read (columns: {have})")
    if key:
        parts = [pl.col(k).cast(pl.String).str.strip_chars() for k in key]
        key_expr = (
            pl.when(pl.any_horizontal([p.is_null() | (p == "") for p in parts]))
            .then(None)
            .otherwise(pl.concat_str(parts, separator="|"))
        )
    else:
        key_expr = pl.col(ROW).cast(pl.String)
    source = pl.col(rules.source_column).cast(pl.String) if rules.source_column else pl.lit(ex.name)
    frame = frame.with_columns(source.alias(SOURCE), key_expr.alias(KEY))
    empty = frame.filter(pl.col(KEY).is_null() | pl.col(SOURCE).is_null())
    if empty.height:
        rows = ", ".join(str(r) for r in empty[ROW].head(5))
        what = f"key ({', '.join(key)})" if empty[KEY].null_count() else f"source ({rules.source_column})"
        raise DedupeError(
            f"{ex.name}: {empty.height} record(s) have no {what}, rows {rows}: "
            f"give every record one, or drop key: from the rules to use row numbers"
        )
    return frame
