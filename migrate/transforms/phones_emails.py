"""Contact details: e-mail addresses checked for shape, phone numbers to E.164."""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit.migrate.transforms import phones
from crmkit.migrate.transforms.base import BARE, TRANSFORMS, Step, nfkc

_EMAIL = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"


@TRANSFORMS.register(
    "email", summary="NFKC, blanks removed, lower-cased, checked for a `local@domain.tld` shape.", tags=(BARE,)
)
def _email(args: Any) -> Step:
    """NFKC, trimmed, lower-cased, and checked for a plausible ``local@domain.tld`` shape."""

    def apply(e: pl.Expr) -> pl.Expr:
        v = nfkc(e).str.strip_chars().str.to_lowercase().str.replace_all(r"\s", "")
        return pl.when(v.str.contains(_EMAIL)).then(v)

    return Step("email", apply, True, "is not an email address")


@TRANSFORMS.register(
    "phone", summary="A phone number to E.164, by `region`, `region_column` or `region_field`.", tags=(BARE,)
)
def _phone(args: Any) -> Step:
    """To E.164 with ``region`` as the default and ``region_column`` (ISO codes) per row."""
    args = args or {}
    if not isinstance(args, dict):
        raise ValueError("phone takes {region: CN} and/or {region_column: COUNTRY}")
    unknown = set(args) - {"region", "region_column", "region_field"}
    if unknown:
        raise ValueError(f"phone: unknown option(s) {', '.join(sorted(unknown))} (region, region_column, region_field)")
    region = args.get("region")
    region_field = args.get("region_field")
    region_column = f"__v_{region_field}" if region_field else args.get("region_column")
    if region is not None and not phones.fast_path_region(str(region)) and not _known_region(str(region)):
        raise ValueError(f"phone: unknown region '{region}' (an ISO 3166 code such as CN, US, DE)")

    def frame_apply(frame: pl.DataFrame, value: str) -> pl.Series:
        return phones.to_e164(frame, value, region, region_column)

    return Step(
        "phone",
        None,
        True,
        "is not a phone number",
        frame_apply=frame_apply,
        needs=(args["region_column"],) if args.get("region_column") else (),
        needs_field=str(region_field) if region_field else None,
    )


def _known_region(region: str) -> bool:
    import phonenumbers

    return region in phonenumbers.SUPPORTED_REGIONS
