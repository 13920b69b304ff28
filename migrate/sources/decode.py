"""Bytes to text for file sources: one encoding per file, chosen by strict decoding; bad values marked.

**Undeclared encoding.**  The whole file is decoded, strictly, in a fixed order, and the first
encoding that reads every byte is the file's (:func:`choose`):

1. UTF-8 (a byte-order mark is dropped); a file starting with a UTF-16 byte-order mark
   (Excel's "Unicode Text") is UTF-16;
2. GB18030, when its double-byte characters look like Chinese text (most of a sample taken
   from the start, middle and end uses GB2312's trail bytes; Western text mis-read as GB18030
   does not);
3. cp1252 (Western Windows).

Before 2 and 3, a file that is not UTF-8 but has a line of non-ASCII text that is (a line
whose every non-ASCII character is a letter or punctuation a person writes) mixes encodings:
it is refused with one line naming that line and the first byte that is not UTF-8, as is a
file that no encoding in the list reads.  Nothing is guessed from statistics, so a file never
loads as mojibake; the encoding used is printed by ``plan`` and in the run summary.

**Declared encoding** (``encoding:`` in the mapping).  The file is decoded in it.  When it is
not, but is wholly in another encoding of the list, the declaration is wrong: one line says
which to declare.  Otherwise (a file of mixed lines) a byte that does not decode is kept as a marker (:data:`BAD_OPEN` hex :data:`BAD_CLOSE`, two Unicode
noncharacters, which no source text holds) and, once the file is parsed, every value holding
one, or a NUL character, becomes a per-row reject with its reason (:func:`bad_values`); its
text is cleaned to ``\\xNN`` so nothing undecodable or NUL reaches a target or a report.
"""

from __future__ import annotations

import codecs
import itertools
import re

import polars as pl

from crmkit.errors import SourceError

#: the undeclared order: the first that decodes the whole file (and passes its check) is used
ORDER = ("utf-8", "gb18030", "cp1252")
BAD_OPEN, BAD_CLOSE = "\ufdd0", "\ufdd1"
_ERRORS = "crmkit-mark"
#: a character a person writes (letters of Latin, Greek, Cyrillic, CJK, kana, hangul; common punctuation)
_WRITTEN = re.compile(
    "[\u00a0-\u024f\u0370-\u04ff\u2000-\u206f\u20a0-\u20bf\u2100-\u218f\u3000-\u30ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]"
)
_NON_ASCII = re.compile("[^\x00-\x7f]")
SAMPLE = 200_000  # characters per sample (start, middle, end) for the GB18030 check


def _mark(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    bad = exc.object[exc.start : exc.end]
    return "".join(f"{BAD_OPEN}{b:02x}{BAD_CLOSE}" for b in bad), exc.end


codecs.register_error(_ERRORS, _mark)


def decode_marked(data: bytes, encoding: str = "utf-8") -> str:
    """``data`` decoded, each byte that does not decode kept as a marker (see the module)."""
    return data.decode(encoding, errors=_ERRORS)


def line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_declared(path: object, data: bytes, encoding: str) -> tuple[str, bool]:
    """``data`` in the declared ``encoding``, and whether some bytes did not decode (then marked).

    A file that is wholly in another encoding (one :func:`choose` finds) is refused with a
    hint to declare that one: the declaration is wrong, not a few rows.
    """
    name = codecs.lookup(encoding).name
    if name in ("utf-8", "utf-8-sig") and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode(encoding), False
    except UnicodeDecodeError as exc:
        bad = exc.start
    try:
        _, other = choose(path, data)
    except SourceError:
        return decode_marked(data, encoding), True
    raise SourceError(
        f"{path}: is not {encoding} (byte 0x{data[bad]:02x} at line {line_of(data, bad)}): try `encoding: {other}`"
    )


def choose(path: object, data: bytes) -> tuple[str, str]:
    """The file's text and the encoding that read it (see the module), or a SourceError."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):  # Excel's "Unicode Text"
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise _not_one(path, data, exc.start, "as UTF-16 (it starts with a UTF-16 BOM)") from None
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise _not_one(path, data, exc.start + len(codecs.BOM_UTF8), "UTF-8 (it starts with a UTF-8 BOM)") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    utf8 = _utf8_line(data)
    if utf8 is not None:
        raise SourceError(
            f"{path}: mixes encodings: line {utf8} is UTF-8 but line {line_of(data, first_bad)} is not "
            f"(byte 0x{data[first_bad]:02x}): save it in one encoding (UTF-8), or set `encoding:` to read it "
            f"as one and reject the rows that do not decode"
        )
    for enc in ORDER[1:]:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if enc != "gb18030" or looks_chinese(text):
            return text, enc
    raise _not_one(path, data, first_bad, f"in any of {', '.join(ORDER)}")


def _not_one(path: object, data: bytes, offset: int, what: str) -> SourceError:
    return SourceError(
        f"{path}: does not decode {what} (first bad byte 0x{data[offset]:02x} at line {line_of(data, offset)}): "
        f"save it as UTF-8, or set `encoding:` (e.g. gb18030) to reject the rows that do not decode"
    )


#: a character that decoded as UTF-8 (not ASCII, not a replacement for a byte that failed)
_DECODED = re.compile("[^\x00-\x7f\ufffd]")


def _utf8_line(data: bytes) -> int | None:
    """The first line with non-ASCII text that is UTF-8 and reads as written text, if any:
    the file decoded once with replacements, then only the lines holding a decoded character."""
    text = data.decode("utf-8", errors="replace")
    pos = 0
    while m := _DECODED.search(text, pos):
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        end = len(text) if end < 0 else end
        line = text[start:end]
        if "\ufffd" not in line and all(_WRITTEN.match(ch) for ch in _NON_ASCII.findall(line)):
            return text.count("\n", 0, start) + 1
        pos = end + 1
    return None


def looks_chinese(text: str) -> bool:
    """Whether most double-byte GB18030 characters in samples of ``text`` are GB2312's (trail byte >= 0xA1)."""
    mid = max(0, len(text) // 2 - SAMPLE // 2)
    samples = (text[:SAMPLE], text[mid : mid + SAMPLE], text[-SAMPLE:])
    chars = [m.group() for s in samples for m in itertools.islice(_NON_ASCII.finditer(s), 5_000)]
    double = [ch.encode("gb18030") for ch in chars]
    double = [b for b in double if len(b) == 2]
    if not double:
        return False
    return sum(b[1] >= 0xA1 for b in double) * 2 >= len(double)


_BAD = f"{BAD_OPEN}([0-9a-f]{{2}}){BAD_CLOSE}"
BAD_SCHEMA = {"column": pl.String, "reason": pl.String}


def bad_values(
    frame: pl.DataFrame, row: str, encoding: str | None = None, marked: bool = False, scan: bool = True
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``frame`` with its NUL characters (and, when ``marked``, bytes that did not decode) cleaned
    to ``\\x00`` / ``\\xNN``, and one row per such value: ``row``, ``column``, ``reason``.

    The usual case costs one scan per text column and returns ``frame`` as it is; none at all
    with ``scan=False`` (the caller knows there is nothing: a file without a NUL byte, unmarked).
    """
    cols = [c for c, t in frame.schema.items() if t == pl.String and c != row]
    pattern = "[\\x00\\x{fdd0}]" if marked else "\\x00"
    none = pl.DataFrame(schema={row: pl.Int64, **BAD_SCHEMA})
    if not (scan or marked) or not cols or frame.height == 0:
        return frame, none
    hit = frame.select(pl.col(cols).str.contains(pattern).any())
    bad_cols = [c for c in cols if hit[c][0]]
    if not bad_cols:
        return frame, none
    parts = []
    for c in bad_cols:
        v = pl.col(c)
        reason: pl.Expr = pl.when(v.str.contains("\x00", literal=True)).then(
            pl.lit(f"{c}: holds a NUL character (\\x00)")
        )
        if marked:
            undecodable = pl.concat_str(
                [pl.lit(f"{c}: byte 0x"), v.str.extract(_BAD, 1), pl.lit(f" does not decode as {encoding}")]
            )
            reason = pl.when(v.str.contains(BAD_OPEN, literal=True)).then(undecodable).otherwise(reason)
        parts.append(
            frame.filter(v.str.contains(pattern)).select(pl.col(row), pl.lit(c).alias("column"), reason.alias("reason"))
        )
    cleaned = [pl.col(c).str.replace_all("\x00", "\\x00", literal=True) for c in bad_cols]
    if marked:
        cleaned = [e.str.replace_all(_BAD, "\\x$1") for e in cleaned]
    frame = frame.with_columns(e.alias(c) for e, c in zip(cleaned, bad_cols))
    return frame, pl.concat(parts).sort(row, "column")
