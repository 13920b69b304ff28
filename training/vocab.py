"""Per-locale vocabularies, drawn from Faker once, then indexed column-wise.

Faker is slow per call (tens of microseconds) but rich: so a world is never built by calling
it per field per row.  Instead :func:`vocab` takes Faker's name lists whole and draws a few
hundred streets, cities and job titles with a seeded ``Faker.seed_instance``; the generator
then indexes into these series with numpy.  Every list is de-duplicated (names by their ASCII
form too, so that ``first.last`` e-mail addresses of distinct people are distinct).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import polars as pl

LOCALES = ("en_US", "zh_CN", "de_DE")

COUNTRY = {"en_US": "US", "zh_CN": "CN", "de_DE": "DE"}
CURRENCY = {"en_US": "USD", "zh_CN": "CNY", "de_DE": "EUR"}
TLD = {"en_US": "com", "zh_CN": "cn", "de_DE": "de"}

_COMPANY_B = {
    "en_US": [
        "Systems",
        "Solutions",
        "Logistics",
        "Foods",
        "Technologies",
        "Industries",
        "Consulting",
        "Partners",
        "Labs",
        "Networks",
        "Energy",
        "Health",
        "Capital",
        "Manufacturing",
        "Media",
        "Robotics",
        "Analytics",
        "Supply",
        "Motors",
        "Pharma",
        "Textiles",
        "Electronics",
        "Design",
        "Software",
        "Holdings",
    ],
    "de_DE": [
        "Technik",
        "Logistik",
        "Maschinenbau",
        "Software",
        "Handel",
        "Bau",
        "Elektro",
        "Medizintechnik",
        "Beratung",
        "Systeme",
        "Energie",
        "Automation",
        "Lebensmittel",
        "Metallbau",
        "Chemie",
        "Werkzeugbau",
        "Druck",
        "Transport",
        "Holding",
        "Vertrieb",
    ],
    "zh_CN": [
        "科技",
        "贸易",
        "机械",
        "电子",
        "物流",
        "医药",
        "软件",
        "信息技术",
        "新能源",
        "食品",
        "建设工程",
        "金融服务",
        "教育咨询",
        "精密制造",
        "供应链管理",
        "商贸",
        "网络",
        "传媒",
        "环保",
        "材料",
    ],
}
_SUFFIXES = {
    "en_US": ["Inc.", "LLC", "Corp.", "Group", "Ltd."],
    "zh_CN": ["有限公司", "股份有限公司", "有限责任公司"],
}

#: activity subjects, case subjects, lead sources, opportunity products: {a} is an account name
TEXT: dict[str, dict[str, str | list[str]]] = {
    "en_US": {
        "call": ["Call with {p}", "Follow-up call with {p}", "Intro call: {p}"],
        "meeting": ["Meeting at {a}", "Quarterly review with {a}", "Demo for {a}"],
        "email": ["Sent proposal to {p}", "Pricing e-mail to {p}", "Reply to {p}"],
        "note": ["Note on {a}", "Budget update from {a}"],
        "task": ["Prepare quote for {a}", "Send contract to {p}", "Check references for {a}"],
        "case": [
            "Cannot log in",
            "Invoice amount wrong",
            "Delivery delayed",
            "Product defect reported",
            "Request for refund",
            "Password reset not working",
            "Shipment damaged",
            "Question about contract",
        ],
        "product": ["Renewal", "Expansion", "New licences", "Support plan", "Implementation", "Upgrade"],
        "note_text": "Met {p} at the trade fair; prefers a call on {ph} or mail to {em}.",
        "case_text": "Customer {p} ({em}) reports the problem; call back on {ph}.",
        "title": "{org} customer list",
        "exported": "Exported on {d}",
    },
    "de_DE": {
        "call": ["Telefonat mit {p}", "Rückruf bei {p}", "Erstgespräch: {p}"],
        "meeting": ["Termin bei {a}", "Quartalsgespräch mit {a}", "Vorführung bei {a}"],
        "email": ["Angebot an {p} gesendet", "Preisanfrage von {p}", "Antwort an {p}"],
        "note": ["Notiz zu {a}", "Budget-Update von {a}"],
        "task": ["Angebot für {a} vorbereiten", "Vertrag an {p} senden", "Referenzen für {a} prüfen"],
        "case": [
            "Anmeldung nicht möglich",
            "Rechnungsbetrag falsch",
            "Lieferung verspätet",
            "Produktmangel gemeldet",
            "Rückerstattung angefragt",
            "Passwort-Reset funktioniert nicht",
            "Sendung beschädigt",
            "Frage zum Vertrag",
        ],
        "product": ["Verlängerung", "Erweiterung", "Neue Lizenzen", "Wartungsvertrag", "Einführung", "Upgrade"],
        "note_text": "{p} auf der Messe getroffen; bitte unter {ph} anrufen oder an {em} schreiben.",
        "case_text": "Kunde {p} ({em}) meldet das Problem; Rückruf unter {ph}.",
        "title": "{org} Kundenliste",
        "exported": "Exportiert am {d}",
    },
    "zh_CN": {
        "call": ["与{p}通话", "回访{p}", "初次电话：{p}"],
        "meeting": ["拜访{a}", "{a}季度回顾会", "为{a}做产品演示"],
        "email": ["向{p}发送报价", "给{p}的价格邮件", "回复{p}"],
        "note": ["关于{a}的备注", "{a}预算更新"],
        "task": ["为{a}准备报价", "把合同发给{p}", "核实{a}的资质"],
        "case": [
            "无法登录",
            "发票金额错误",
            "发货延迟",
            "产品质量问题",
            "申请退款",
            "密码重置失败",
            "包裹破损",
            "合同条款咨询",
        ],
        "product": ["续约", "扩容", "新增授权", "维保服务", "实施项目", "升级"],
        "note_text": "在展会上认识{p}，请致电{ph}或发邮件至{em}。",
        "case_text": "客户{p}（{em}）反馈问题，请回电{ph}。",
        "title": "{org}客户联系人名单",
        "exported": "导出日期：{d}",
    },
}

#: phone plans that give numbers ``phonenumbers`` accepts as valid: (E.164 prefix, digits after it)
PHONES: dict[str, dict[str, list[tuple[str, int]]]] = {
    "en_US": {
        "mobile": [
            (f"+1{a}", 7)
            for a in (
                "212",
                "213",
                "312",
                "415",
                "617",
                "646",
                "702",
                "713",
                "206",
                "303",
                "305",
                "404",
                "503",
                "512",
                "602",
                "619",
                "650",
                "718",
                "801",
                "917",
            )
        ],
        "landline": [
            (f"+1{a}", 7)
            for a in (
                "214",
                "216",
                "224",
                "248",
                "267",
                "301",
                "313",
                "347",
                "410",
                "469",
                "503",
                "571",
                "614",
                "704",
                "720",
                "773",
                "813",
                "847",
                "919",
                "972",
            )
        ],
    },
    "zh_CN": {
        "mobile": [
            (f"+86{p}", 8)
            for p in (
                "130",
                "131",
                "132",
                "133",
                "135",
                "136",
                "137",
                "138",
                "139",
                "150",
                "151",
                "152",
                "153",
                "155",
                "156",
                "157",
                "158",
                "159",
                "177",
                "180",
                "181",
                "186",
                "187",
                "188",
                "189",
            )
        ],
        "landline": [
            (f"+86{a}", 8) for a in ("10", "21", "20", "22", "23", "25", "27", "28", "29", "755", "571", "512", "532")
        ],
    },
    "de_DE": {
        "mobile": [
            (f"+49{p}", 8)
            for p in (
                "151",
                "152",
                "157",
                "160",
                "162",
                "170",
                "171",
                "172",
                "173",
                "174",
                "175",
                "176",
                "177",
                "178",
                "179",
            )
        ],
        "landline": [(f"+49{a}", 8) for a in ("30", "40", "89", "69")]
        + [(f"+49{a}", 7) for a in ("221", "211", "711", "421")],
    },
}


def ascii_slug(text: str, locale: str) -> str:
    """Lower-case ASCII letters only: pinyin for Chinese, ae/oe/ue/ss for German."""
    if locale == "zh_CN" and any("\u4e00" <= ch <= "\u9fff" for ch in text):
        from pypinyin import lazy_pinyin

        text = "".join(lazy_pinyin(text))
    text = text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    text = text.replace("Ä", "Ae").replace("Ö", "Oe").replace("Ü", "Ue")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", text.lower())


@dataclass(frozen=True)
class Vocab:
    """The words a world of one locale is made of, each a polars Series."""

    locale: str
    first: pl.Series
    first_ascii: pl.Series
    last: pl.Series
    last_ascii: pl.Series
    streets: pl.Series
    cities: pl.Series
    jobs: pl.Series
    company_a: pl.Series  # brand / family name part
    company_a_ascii: pl.Series
    company_b: pl.Series  # trade word
    company_b_ascii: pl.Series
    suffixes: pl.Series

    @property
    def country(self) -> str:
        return COUNTRY[self.locale]

    @property
    def tld(self) -> str:
        return TLD[self.locale]

    @property
    def text(self) -> dict[str, str | list[str]]:
        return TEXT[self.locale]

    @property
    def person_space(self) -> int:
        """How many distinct full names the vocabulary can form."""
        return self.first.len() * self.last.len()

    @property
    def company_space(self) -> int:
        return self.company_a.len() * self.company_b.len() * self.suffixes.len()


def _provider_attr(fake: object, name: str) -> object:
    for p in fake.get_providers():  # type: ignore[attr-defined]
        if hasattr(p, name):
            return getattr(p, name)
    raise AttributeError(name)  # pragma: no cover - Faker changed


def _names(values: object, locale: str) -> tuple[pl.Series, pl.Series]:
    """Distinct names and their ASCII forms, distinct by ASCII form too (first one wins)."""
    seen: dict[str, str] = {}
    for v in list(values):  # type: ignore[call-overload]
        a = ascii_slug(str(v), locale)
        if a and a not in seen:
            seen[a] = str(v)
    return pl.Series(list(seen.values()), dtype=pl.String), pl.Series(list(seen), dtype=pl.String)


def _draw(fake: object, method: str, n: int) -> pl.Series:
    values = [getattr(fake, method)() for _ in range(n)]
    return pl.Series(list(dict.fromkeys(values)), dtype=pl.String)


@cache
def vocab(locale: str, seed: int) -> Vocab:
    """The vocabulary of ``locale``; the seed fixes which streets, cities and jobs are drawn."""
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)
    first, first_ascii = _names(_provider_attr(fake, "first_names"), locale)
    last, last_ascii = _names(_provider_attr(fake, "last_names"), locale)
    if locale == "zh_CN":
        cities = pl.Series([c.rstrip("市县") for c in _provider_attr(fake, "cities")], dtype=pl.String)  # type: ignore[attr-defined]
        cities = pl.Series(list(dict.fromkeys(cities.to_list())), dtype=pl.String)
        a_values: list[str] = list(dict.fromkeys(_provider_attr(fake, "company_prefixes")))  # type: ignore[call-overload]
    else:
        cities = _draw(fake, "city", 400)
        a_values = last.to_list()
    a, a_ascii = _names(a_values, locale)
    b = pl.Series(_COMPANY_B[locale], dtype=pl.String)
    suffixes = _SUFFIXES.get(locale) or list(dict.fromkeys(_provider_attr(fake, "company_suffixes")))  # type: ignore[call-overload]
    return Vocab(
        locale=locale,
        first=first,
        first_ascii=first_ascii,
        last=last,
        last_ascii=last_ascii,
        streets=_draw(fake, "street_name", 800),
        cities=cities,
        jobs=_draw(fake, "job", 300),
        company_a=a,
        company_a_ascii=a_ascii,
        company_b=b,
        company_b_ascii=pl.Series([ascii_slug(x, locale) or "co" for x in b], dtype=pl.String),
        suffixes=pl.Series(suffixes, dtype=pl.String),
    )
