"""The masking run's building blocks, in memory: typed reads, collision-free names, free text."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.training import freetext
from crmkit.training import pseudonym as P
from crmkit.training.mask import _typed
from crmkit.training.names import Lexicon, resolve, zh_split


def test_dates_already_typed_stay_dates():
    """PostgreSQL gives DATE columns as dates (they used to be cast to text), SQLite as text."""
    cols = [c.name for c in table_of(ENTITY_MODELS["accounts"]).columns]
    row = {c: None for c in cols}
    for created in (dt.date(2024, 3, 1), "2024-03-01"):
        frame = pl.DataFrame([{**row, "id": 1, "created_at": created}])
        assert _typed(frame, "accounts")["created_at"].to_list() == [dt.date(2024, 3, 1)]


def test_resolve_gives_every_value_its_own_fake():
    values = pl.Series([f"v{i}" for i in range(500)])
    tiny_pool = lambda v, r: P.pick(v, f"s#{r}", "x", pl.Series([f"f{i}" for i in range(600)]))  # noqa: E731
    out = resolve(values, tiny_pool, pl.Series(["f1", "f2"]))
    assert out.n_unique() == 500 and not out.is_in(["f1", "f2"]).any()


def test_chinese_names_one_to_one_and_consistent():
    sur = ["王", "李", "张", "刘", "陈", "欧阳"]
    given = ["伟", "芳", "秀英", "敏", "静", "丽"]
    full = pl.Series([s + g for s in sur for g in given])
    lex = Lexicon("salt-1234", pl.Series(given), pl.Series(sur))
    out = lex.full_name(full)
    assert out.n_unique() == full.len() and not out.is_in(full.implode()).any()
    s, g = zh_split(full)
    assert out.equals(lex.token(s, "last") + lex.token(g, "first"), check_names=False)
    assert not (lex.token(pl.Series(sur), "last") == pl.Series(sur)).any()  # never one's own surname


def test_free_text_keeps_length_and_language_and_nothing_else():
    notes = pl.Series(
        ["Call LI NA at 12 Baker St", "请联系李娜，身份证110105198503151234", "Bitte Frau Müller anrufen", None]
    )
    out = freetext.replace(notes, "salt-1234")
    assert freetext.language(notes).to_list()[:3] == ["en", "zh", "de"]
    assert out[3] is None and out.str.len_chars().to_list()[:3] == notes.str.len_chars().to_list()[:3]
    for frag in ("LI NA", "Baker", "李娜", "110105", "Müller"):
        assert not out.str.contains(frag, literal=True).any()
