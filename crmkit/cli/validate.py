"""``crmkit validate``: check a file, a table or the CRM target against an entity's rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal, cast

import click
from rich.console import Console
from rich.table import Table

from crmkit.cli.options import allow_path_option, json_option
from crmkit.validate.run import Request, ValidationResult, run

ENGINES = ("polars", "pandera")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@click.command()
@click.argument("source", required=False, metavar="[PATH_OR_URL]")
@click.option("--entity", "-e", required=True, help="The CRM entity to validate as (contacts, accounts, ...).")
@click.option(
    "--target",
    default=None,
    metavar="URL",
    help="Validate the entity's table in this CRM target (post-load) instead of PATH_OR_URL. "
    "Write a password as ${VAR} (in single quotes) to read it from the environment.",
)
@click.option(
    "--table", default=None, help="The table to read when PATH_OR_URL is a database URL (default: the entity)."
)
@click.option(
    "--rules",
    "rules",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rules YAML (see docs/validation-reference.md); default: the built-in rules only.",
)
@click.option(
    "--report",
    "report_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write report.html, validation.json and failures.csv here.",
)
@click.option("--key", default=None, help="Column(s) holding the legacy key, comma-separated (default: legacy_key).")
@click.option("--sheet", default=None, help="Sheet of an .xlsx file: name or number from 0.")
@click.option("--encoding", default=None, help="Encoding of a CSV file (default: detected).")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="polars",
    show_default=True,
    help="Run the rules as polars expressions, or as the pandera DataFrameModel (same results, slower).",
)
@click.option("--no-mask", is_flag=True, help="Show personal-data values unmasked (reports stay on your machine!).")
@json_option
@allow_path_option
def validate(
    source: str | None,
    entity: str,
    target: str | None,
    table: str | None,
    rules: Path | None,
    report_dir: Path | None,
    key: str | None,
    sheet: str | None,
    encoding: str | None,
    engine: str,
    no_mask: bool,
    as_json: bool,
) -> None:
    """Validate PATH_OR_URL (or the CRM --target) as ENTITY, without loading anything.

    PATH_OR_URL is a .csv, .tsv or .xlsx file whose columns are named like the
    entity's fields, or a database URL (with --table). Prints the rules that failed,
    a quality profile per column and the gates.

    Exit codes: 0 every gate passed; 1 a gate failed (without gates in the rules:
    some row has an error); 2 bad input, rules or options.

    \b
    Example:
      crmkit validate contacts.csv --entity contacts
      crmkit validate contacts.csv --entity contacts --rules configs/validation.yaml --report build/validation
      crmkit validate --target sqlite:///crm.db --entity contacts --json
      crmkit validate 'mysql+pymysql://reader:${PW}@db/legacy' --table CUSTOMERS --entity accounts
    """
    req = Request(
        entity=entity,
        source=source,
        target=target,
        table=table,
        rules=rules,
        sheet=sheet,
        encoding=encoding,
        key=[k.strip() for k in key.split(",")] if key else None,
        engine=cast(Literal["polars", "pandera"], engine),
        mask=not no_mask,
    )
    result = run(req)
    page = None
    if report_dir is not None:
        from crmkit.validate.report import write_report

        page = write_report(result, report_dir)
    if as_json:
        doc = result.to_json()
        doc["report"] = str(page) if page else None
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        _print(result, page)
    sys.exit(result.exit_code)


def _print(r: ValidationResult, page: Path | None) -> None:
    con, doc = _console(), r.to_json()
    con.print(
        f"[bold]{r.entity}[/bold] ← {r.input.label}: {doc['rows']} rows, {doc['rows_with_errors']} with an "
        f"error, {doc['rows_with_warnings']} with a warning ({r.engine} engine, {r.seconds:.2f} s)"
    )
    if r.input.note:
        con.print(f"note: {r.input.note}")
    if r.input.unchecked_columns:
        cols = r.input.unchecked_columns
        con.print(
            f"{len(cols)} column(s) are no field of {r.entity} and were not checked: "
            f"{', '.join(cols[:10])}{' ...' if len(cols) > 10 else ''}"
        )
    _rules_table(con, r)
    _profile_table(con, r)
    _gates_table(con, r)
    if page:
        con.print(f"report: {page}")


def _rules_table(con: Console, r: ValidationResult) -> None:
    failing = [x for x in r.evaluation.rules if r.counts.get(x.name)]
    if not failing:
        con.print(f"every one of {len(r.evaluation.rules)} rules passed")
        return
    t = Table(title="Rules that failed")
    for col in ("rule", "field", "severity", "failures"):
        t.add_column(col, justify="right" if col == "failures" else "left")
    for x in sorted(failing, key=lambda x: -r.counts[x.name]):
        colour = "red" if x.severity == "error" else "yellow"
        t.add_row(x.name, x.field, f"[{colour}]{x.severity}[/{colour}]", str(r.counts[x.name]))
    con.print(t)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _profile_table(con: Console, r: ValidationResult) -> None:
    t = Table(title="Quality profile")
    for col in ("column", "complete", "distinct", "valid", "invalid", "missing", "conformance", "most common invalid"):
        t.add_column(col, overflow="fold")
    for c in r.profile.columns:
        top = "; ".join(f"{v} ({n})" for v, n in c.top_invalid[:3])
        t.add_row(
            c.field,
            _pct(c.completeness),
            str(c.distinct),
            str(c.valid),
            str(c.invalid),
            str(c.missing),
            _pct(c.conformance),
            top,
        )
    con.print(t)
    k = r.profile.key
    if k.present:
        con.print(f"legacy key: {k.missing} missing, {k.duplicate_rows} duplicate rows ({k.duplicated_keys} keys)")


def _gates_table(con: Console, r: ValidationResult) -> None:
    t = Table(title="Gates")
    for col in ("gate", "required", "measured", "result"):
        t.add_column(col)
    for g in r.gates:
        result = ("[yellow]inconclusive[/yellow]" if g.inconclusive else "") + (
            " [green]passed[/green]" if g.passed else " [red]FAILED[/red]"
        )
        t.add_row(g.name, g.required, g.detail, result.strip())
    con.print(t)
    con.print("status: " + ("[green]passed[/green]" if r.passed else "[red]failed[/red]"))
