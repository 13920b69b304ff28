"""Encoders of frames for PostgreSQL's ``COPY``: CSV, the binary format, and the Arrow types
ADBC's driver writes in each column's binary form."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import polars as pl


def csv_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_csv(buf, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.f")
    return buf.getvalue()


def chunks(frame: pl.DataFrame, encode: Callable[[pl.DataFrame], bytes], rows: int = 10_000) -> Iterator[bytes]:
    """The frame encoded a chunk at a time, the next chunk encoded on a thread while the server
    parses the one before (polars, numpy and pyarrow encode without the GIL; psycopg sends without it)."""
    if frame.height <= rows:
        yield encode(frame)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmkit-encode") as pool:
        ahead = pool.submit(encode, frame.slice(0, rows))
        for start in range(rows, frame.height + rows, rows):
            chunk = ahead.result()
            if start < frame.height:
                ahead = pool.submit(encode, frame.slice(start, rows))
            yield chunk


# PostgreSQL's binary COPY format: a signature, then per row a 16-bit field count and per field
# a 32-bit length (-1: NULL) and the value in the type's binary form, then a trailer.
PG_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # + 32-bit flags and header-extension length
PG_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days after 1970-01-01
# fixed-width types and the polars dtype whose numpy form, big-endian, is their binary form
_PG_FIXED: dict[str, Any] = {
    "int2": pl.Int16,
    "int4": pl.Int32,
    "int8": pl.Int64,
    "float4": pl.Float32,
    "float8": pl.Float64,
    "bool": pl.UInt8,
    "date": pl.Int32,
    "timestamp": pl.Int64,
}
_PG_TEXT = {"text", "varchar", "bpchar"}


def pg_binary_ready(frame: pl.DataFrame, types: dict[str, str]) -> pl.DataFrame | None:
    """The frame with every column as the integers, floats or strings of its binary form, or
    None when a column has no binary encoding here (numeric, json, ...) or its values do not
    fit its type (an out-of-range integer: CSV then lets the server say what is wrong)."""
    out = []
    for name, dtype in frame.schema.items():
        typ = types.get(name, "")
        col = pl.col(name)
        if dtype == pl.Null and (typ in _PG_FIXED or typ in _PG_TEXT):
            out.append(col.cast(_PG_FIXED.get(typ, pl.String)))
        elif typ in _PG_TEXT and dtype == pl.String:
            out.append(col)
        elif typ in ("int2", "int4", "int8") and dtype.is_integer():
            out.append(col.cast(_PG_FIXED[typ], strict=True))
        elif typ in ("float4", "float8") and dtype.is_numeric():
            out.append(col.cast(_PG_FIXED[typ]))
        elif typ == "bool" and dtype == pl.Boolean:
            out.append(col.cast(pl.UInt8))
        elif typ == "date" and dtype == pl.Date:
            out.append(col.cast(pl.Int32) - _PG_EPOCH_DAYS)
        elif typ == "timestamp" and isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            out.append(col.dt.cast_time_unit("us").cast(pl.Int64) - _PG_EPOCH_DAYS * 86_400_000_000)
        else:
            return None
    try:
        return frame.select(out)
    except pl.exceptions.InvalidOperationError:  # e.g. an integer too large for int4
        return None


def pg_binary(frame: pl.DataFrame) -> bytes:
    """Rows of a frame from :func:`pg_binary_ready` in the binary COPY format, column-wise:
    each column becomes an array of encoded fields, then the fields are joined row by row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    binary, n = pa.large_binary(), frame.height

    def cells(prefix: bytes, values: Any, width: int) -> Any:
        """n fixed-size cells ``prefix + value`` (numpy), as a binary array."""
        out = np.empty((n, len(prefix) + width), dtype=np.uint8)
        out[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        out[:, len(prefix) :] = values.view(np.uint8).reshape(n, width)
        size = len(prefix) + width
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), n, [None, pa.py_buffer(out)]).cast(binary)

    null = pa.scalar(b"\xff\xff\xff\xff", binary)
    fields = [pa.scalar(len(frame.columns).to_bytes(2, "big"), binary)]
    for s in frame.iter_columns():
        if s.dtype == pl.String:
            text = s.to_arrow().cast(binary)
            lengths = s.str.len_bytes().fill_null(0).to_numpy().astype(">i4")
            field = pc.binary_join_element_wise(cells(b"", lengths, 4), text, pa.scalar(b"", binary))
        else:
            values = s.fill_null(0).to_numpy()
            width = values.dtype.itemsize
            field = cells(width.to_bytes(4, "big"), values.astype(values.dtype.newbyteorder(">")), width)
            if s.null_count():
                field = pc.if_else(s.is_null().to_arrow(), null, field)
        fields.append(pc.coalesce(field, null) if s.null_count() else field)  # text: a NULL joins to NULL
    rows = pc.binary_join_element_wise(*fields, pa.scalar(b"", binary))
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)
    return rows.buffers()[2].to_pybytes()[offsets[0] : offsets[n]]


# the Arrow (polars) types ADBC writes in each PostgreSQL type's binary form; a column of only
# NULLs (polars' Null type), or an integer or float of another width, is cast to the first
_ADBC_TYPES: dict[str, tuple[Any, ...]] = {
    "int2": (pl.Int16,),
    "int4": (pl.Int32,),
    "int8": (pl.Int64,),
    "float4": (pl.Float32,),
    "float8": (pl.Float64,),
    "bool": (pl.Boolean,),
    "date": (pl.Date,),
    "timestamp": (pl.Datetime("us"), pl.Datetime("ns"), pl.Datetime("ms")),
    "numeric": (pl.Decimal(38, 10), pl.Decimal),
    "text": (pl.String,),
    "varchar": (pl.String,),
    "bpchar": (pl.String,),
    "json": (pl.String,),
}


def adbc_ready(frame: pl.DataFrame, types: dict[str, str]) -> pl.DataFrame | None:
    """The frame with each column in the Arrow type whose binary ``COPY`` form is its column's
    (ADBC writes an Arrow int64 as int8, which an int4 column refuses), or None where a column
    has none here (a string for a date column, ...: :meth:`crmkit.db.postgres.PostgresLoader.append` then lets
    the server parse it as text)."""
    exprs = []
    for name, dtype in frame.schema.items():
        typ = types.get(name, "")
        ok = _ADBC_TYPES.get(typ, ())
        if typ == "timestamptz" and isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            continue
        if any(dtype == t if isinstance(t, pl.DataType) else isinstance(dtype, t) for t in ok):
            continue
        if typ == "timestamptz" and dtype == pl.Null:
            exprs.append(pl.col(name).cast(pl.Datetime("us", "UTC")))
            continue
        numeric = typ in ("int2", "int4", "int8", "float4", "float8", "numeric")
        if ok and (
            dtype == pl.Null or (numeric and dtype.is_numeric() and not (typ.startswith("int") and dtype.is_float()))
        ):
            exprs.append(pl.col(name).cast(ok[0], strict=True))
        else:
            return None
    if not exprs:
        return frame
    try:
        return frame.with_columns(exprs)
    except pl.exceptions.InvalidOperationError:  # an integer too large for its column
        return None
