"""``crmkit dedupe``: find duplicates in files or tables; merge, unmerge and decide in the target."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from crmkit.cli.options import allow_path_option, json_option, target_option

RULES = click.option(
    "--rules",
    "rules_path",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Matching rules (YAML).",
)
DECISIONS = click.option(
    "--decisions",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A review file with its decision column filled in (repeatable).",
)
ENTITY = click.option("--entity", required=True, metavar="NAME", help="The CRM entity, e.g. accounts or contacts.")
OPERATOR = click.option("--operator", default=None, help="Who does this (recorded; default: the OS user).")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


class _DefaultToRun(click.Group):
    """``crmkit dedupe INPUT... --rules ...`` runs ``crmkit dedupe run``; subcommands keep their names."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToRun)
def dedupe() -> None:
    """Find duplicate customers, within and across sources; merge them into golden records.

    `crmkit dedupe INPUT... --rules FILE --out clusters.csv` (the `run` command) writes one
    row per input record with its cluster id.  The other commands work on a target CRM.

    \b
    Example:
      crmkit dedupe customers.csv --rules configs/dedupe/customers.yaml --out clusters.csv --review review.csv
      crmkit dedupe customers.csv --rules configs/dedupe/customers.yaml --out clusters.csv --decisions review.csv
      crmkit dedupe merge --target sqlite:///crm.db --entity accounts --rules configs/dedupe/accounts.yaml
      crmkit dedupe unmerge --target sqlite:///crm.db --entity accounts --golden 42
    """


@dedupe.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@RULES
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="clusters.csv: source, record_id, cluster_id, survivor.",
)
@click.option(
    "--review",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    default=None,
    help="Write the pairs to review here, side by side, with a decision column to fill in.",
)
@DECISIONS
@click.option(
    "--golden",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    default=None,
    help="Also write one golden record per cluster (survivorship rules).",
)
@json_option
@allow_path_option
def run(
    inputs: tuple[str, ...],
    rules_path: Path,
    out: Path,
    review: Path | None,
    decisions: tuple[Path, ...],
    golden: Path | None,
    as_json: bool,
) -> None:
    """Find duplicates among the records of INPUT... (files, or URL#table) under the rules.

    An INPUT is a .csv, .tsv, .xlsx or .parquet file, or a database URL with the table after
    '#'.  Several inputs are deduplicated together (across sources).  Decisions made in a
    review file (match / not a match) are honoured over the rules.

    \b
    Example:
      crmkit dedupe customers.csv --rules configs/dedupe/customers.yaml --out clusters.csv --review review.csv
      crmkit dedupe erp.csv sheet.xlsx "sqlite:///desk.db#contacts" --rules rules.yaml --out clusters.csv --json
    """
    from crmkit.dedupe import dedupe_inputs

    result = dedupe_inputs(list(inputs), rules_path, out, review, list(decisions), golden)
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2, default=str))
        return
    st = result.result.stats
    t = Table(title=f"Duplicates under {result.result.rules.name}")
    t.add_column("what")
    t.add_column("count", justify="right")
    for label, value in (
        ("records", st.records),
        ("candidate pairs", st.candidate_pairs),
        ("matching pairs", st.matches + st.decided_match),
        ("pairs to review", st.review),
        ("clusters", st.clusters),
        ("records in clusters", st.records_in_clusters),
        ("duplicates", st.duplicates),
    ):
        t.add_row(label, f"{value:,}")
    con = _console()
    con.print(t)
    con.print(f"took {sum(st.seconds.values()):.1f} s · " + " · ".join(f"{k} {v}" for k, v in result.written.items()))


@dedupe.command()
@target_option
@ENTITY
@RULES
@DECISIONS
@click.option("--dry-run", is_flag=True, help="Find and count, change nothing.")
@OPERATOR
@json_option
@allow_path_option
def merge(
    target: str,
    entity: str,
    rules_path: Path,
    decisions: tuple[Path, ...],
    dry_run: bool,
    operator: str | None,
    as_json: bool,
) -> None:
    """Merge duplicate rows of ENTITY already in TARGET into golden rows.

    Child rows (opportunities of a merged account...) and legacy keys in the id map are
    re-pointed to the golden row; everything is recorded so that `unmerge` can undo it.

    \b
    Example:
      crmkit dedupe merge --target sqlite:///crm.db --entity accounts --rules configs/dedupe/accounts.yaml --dry-run
    """
    from crmkit.dedupe.review import read_decisions
    from crmkit.dedupe.rules import load_rules
    from crmkit.dedupe.store import merge_in_target

    rules = load_rules(rules_path)
    decided = read_decisions(list(rules.decisions) + list(decisions))
    report = merge_in_target(target, entity, rules, decided, operator, dry_run)
    _report(
        report.to_json(),
        as_json,
        f"{'Would merge' if dry_run else 'Merged'} {report.merged} row(s) of "
        f"{entity} into {report.clusters} golden row(s); {report.review} pair(s) left for review",
    )


@dedupe.command()
@target_option
@ENTITY
@click.option(
    "--golden", "golden_id", type=int, default=None, metavar="ID", help="Undo the whole merge into this golden row."
)
@click.option("--key", default=None, metavar="SOURCE:KEY", help="Take only this legacy record out of its golden row.")
@OPERATOR
@json_option
def unmerge(
    target: str, entity: str, golden_id: int | None, key: str | None, operator: str | None, as_json: bool
) -> None:
    """Undo a merge: the merged records become their own rows again.

    Their legacy keys and the child rows that were re-pointed go back to them, and the
    pairs are recorded as "not a match" so that no later run merges them again.

    \b
    Example:
      crmkit dedupe unmerge --target sqlite:///crm.db --entity accounts --golden 42
      crmkit dedupe unmerge --target sqlite:///crm.db --entity contacts --key service_desk:S017
    """
    from crmkit.dedupe.unmerge import unmerge as undo
    from crmkit.errors import CrmkitError

    if (golden_id is None) == (key is None):
        raise click.UsageError("give exactly one of --golden ID or --key SOURCE:KEY")
    parsed = None
    if key is not None:
        if ":" not in key:
            raise CrmkitError(f"--key {key!r}: write SOURCE:KEY, e.g. service_desk:S017")
        src, _, k = key.partition(":")
        parsed = (src, k)
    report = undo(target, entity, golden_id, parsed, operator)
    restored = ", ".join(f"{r['source']}:{r['key']} → id {r['id']}" for r in report.restored)
    _report(
        report.to_json(),
        as_json,
        f"Restored {len(report.restored)} row(s) of {entity} from golden row "
        f"{report.golden_id}: {restored}; {report.relinked} child row(s) re-pointed",
    )


@dedupe.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="REVIEW...")
@target_option
@ENTITY
@OPERATOR
@json_option
def decide(files: tuple[Path, ...], target: str, entity: str, operator: str | None, as_json: bool) -> None:
    """Store the decisions of filled-in review files in TARGET, for every later merge and run.

    \b
    Example:
      crmkit dedupe decide review.csv --target sqlite:///crm.db --entity contacts
    """
    from crmkit.dedupe.review import read_decisions
    from crmkit.dedupe.store import import_decisions

    decided = read_decisions(list(files))
    n = import_decisions(target, entity, decided, operator, ", ".join(str(f) for f in files))
    _report({"entity": entity, "decisions": n}, as_json, f"Stored {n} decision(s) for {entity}")


def _report(doc: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2, default=str))
    else:
        _console().print(line)
