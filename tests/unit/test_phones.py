"""The vectorised phone fast path agrees with ``phonenumbers`` wherever it answers.

``migrate.transforms.phones._fast`` only ever *accepts* numbers; everything it leaves null falls
through to ``parse_one`` (``phonenumbers`` itself).  So two things must hold on any input:
where the fast path answers, its answer is exactly ``parse_one``'s; and ``to_e164`` as a
whole equals ``parse_one`` on every value.  Inputs: Faker numbers of six locales (fixed
seed), random digit strings behind national, international and trunk prefixes, and a few
hand-written spellings that have tripped phone parsers before.
"""

from __future__ import annotations

import random
from functools import cache

import phonenumbers
import polars as pl
import pytest
from faker import Faker

from crmkit.migrate.transforms import phones

SEED = 20240601
LOCALES = {"en_US": "US", "zh_CN": "CN", "de_DE": "DE", "en_GB": "GB", "fr_FR": "FR", "ja_JP": "JP"}
PREFIXES = ("0", "1", "+86", "+49", "+1", "+44", "00", "86", "+33", "0086", "0049", "+81", "+852", "+886", "9", "2")
TRICKY = [
    "",
    " ",
    "-",
    "13800138000",
    "138-0013-8000",
    "+86 138 0013 8000",
    "+86 (0)10 6234 5678",
    "010-62345678",
    "(010) 6552 1234",
    "０１０－６２３４５６７８",
    "１３８００１３８０００",
    "+８６ １３８ ００１３ ８０００",
    "86 138 0013 8000",
    "0086 138 0013 8000",
    "8613800138000",
    "+86-10-62345678 ext. 12",
    "138 0013 8000 x99",
    "tel:+86-10-62345678",
    "1-800-FLOWERS",
    "030 12345678",
    "+49 30 1234567",
    "+49 (0)30 1234567",
    "0049 30 1234567",
    "0151 12345678",
    "+44 20 7946 0000",
    "020 7946 0000",
    "07700 900123",
    "+33 1 42 68 53 00",
    "01 42 68 53 00",
    "+1 415-692-1234",
    "(212) 736-4521",
    "+852 2123 4567",
    "12345",
    "0" * 12,
    "+",
    "+86",
    "++8613800138000",
    "13800138000\u00a0",
    "\u3000+86 138 0013 8000\u3000",
    "１２３",
    "abc",
    "+49 1234",
    "+86 10 1234",
    "138.0013.8000",
    "138/0013/8000",
    "(+86) 13800138000",
]
#: regions whose numbers the fast path may answer, and some it must leave to phonenumbers
REGIONS = ("CN", "DE", "FR", "TW", "HK", "GB", "US", "JP")


@cache
def sample() -> tuple[str, ...]:
    """Thousands of phone-number-like strings, the same on every run."""
    values: list[str] = list(TRICKY)
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(SEED)
        values += [fake.phone_number() for _ in range(1200)]
    rnd = random.Random(SEED)
    for prefix in PREFIXES:
        for _ in range(600):
            values.append(prefix + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(5, 12))))
    return tuple(dict.fromkeys(values))


@cache
def reference(region: str | None) -> tuple[str | None, ...]:
    return tuple(phones.parse_one(v, region) for v in sample())


def fast_answers(values: list[str], region: str) -> list[str | None]:
    """What the fast path says for ``values`` of ``region`` (None where it does not answer).

    ``to_e164`` calls ``_fast`` only for regions ``fast_path_region`` admits; so does this.
    """
    if not phones.fast_path_region(region):
        return [None] * len(values)
    work = pl.DataFrame({"raw": values}, schema={"raw": pl.String})
    work = work.with_columns(phones.clean(pl.col("raw")).alias("cleaned"))
    return phones._fast(work, region).to_list()


def test_the_sample_is_large_and_varied():
    values = sample()
    assert len(values) > 10_000
    assert sum(v is not None for v in reference("CN")) > 1_000
    assert sum(v is not None for v in reference("DE")) > 1_000


@pytest.mark.parametrize("region", [r for r in REGIONS if phones.fast_path_region(r)])
def test_fast_path_agrees_with_phonenumbers_wherever_it_answers(region):
    values = list(sample())
    fast = fast_answers(values, region)
    wrong = [(v, f, r) for v, f, r in zip(values, fast, reference(region)) if f is not None and f != r]
    assert not wrong, f"{len(wrong)} disagreements, e.g. (input, fast, phonenumbers): {wrong[:10]}"
    assert sum(f is not None for f in fast) > 100, "the fast path answered almost nothing"


@pytest.mark.parametrize("region", REGIONS)
def test_to_e164_equals_phonenumbers_on_every_value(region):
    values = list(sample())
    got = phones.to_e164(pl.DataFrame({"v": values}), "v", region, None).to_list()
    wrong = [(v, g, r) for v, g, r in zip(values, got, reference(region)) if g != r]
    assert not wrong, f"{len(wrong)} differences, e.g. (input, to_e164, phonenumbers): {wrong[:10]}"


def test_to_e164_with_a_region_per_row_equals_phonenumbers():
    values = list(sample())
    rnd = random.Random(SEED)
    # ISO codes in any case and with blanks, unknown codes and empty cells fall back to the default
    spellings = ["CN", "cn", " DE ", "FR", "gb", "US", "JP", "TW", "", None, "XX", "China"]
    per_row = [rnd.choice(spellings) for _ in values]
    frame = pl.DataFrame({"v": values, "country": per_row}, schema={"v": pl.String, "country": pl.String})
    got = phones.to_e164(frame, "v", "CN", "country").to_list()

    def region_of(code: str | None) -> str:
        code = (code or "").strip().upper()
        return code if code in phonenumbers.SUPPORTED_REGIONS else "CN"

    wrong = [(v, c, g) for v, c, g in zip(values, per_row, got) if g != phones.parse_one(v, region_of(c))]
    assert not wrong, f"{len(wrong)} differences, e.g. (input, country, to_e164): {wrong[:10]}"


def test_international_numbers_without_a_default_region():
    values = list(sample())
    got = phones.to_e164(pl.DataFrame({"v": values}), "v", None, None).to_list()
    assert got == list(reference(None))
    assert "+8613800138000" in got


@pytest.mark.parametrize("region", ["CN", "DE", "GB"])
def test_fast_path_answers_most_plain_national_numbers(region):
    """Valid numbers written the way people write them at home: the fast path must take them."""
    national = []
    for _value, e164 in zip(sample(), reference(region)):
        if e164 is not None:
            number = phonenumbers.parse(e164)
            if phonenumbers.region_code_for_number(number) == region:
                national.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    national = list(dict.fromkeys(national))
    assert len(national) > 200, f"only {len(national)} valid {region} numbers in the sample"
    fast = fast_answers(national, region)
    share = sum(f is not None for f in fast) / len(national)
    assert share >= 0.9, (
        f"the fast path answered {share:.0%} of {len(national)} plain {region} numbers "
        f"(fast_path_region({region!r}) = {phones.fast_path_region(region)})"
    )
