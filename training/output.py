"""Where a generated world goes: a directory of CSV files, or a target CRM database.

``--out DIR`` writes one UTF-8 CSV per entity (``contacts.csv``...), with a header row,
ISO dates (``2024-03-01``) and date-times (``2024-03-01 14:05:00``), ``true``/``false``
booleans and empty cells for NULL, plus ``exercises.json`` (the exercises and their
answers: a trainer's file) and ``manifest.json`` (scenario, seed, row counts).  Nothing in
them depends on the time or the machine, so the same seed gives the same bytes.

``--target URL`` creates or upgrades the CRM schema, then loads every entity in one
transaction, fills ``crmkit_id_map`` so that the generated legacy keys resolve, and records
the load as a ``crmkit_runs`` row of kind ``generate``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.errors import TargetError
from crmkit.schema.models import ENTITY_MODELS
from crmkit.training.generate import World


def manifest(world: World) -> dict[str, Any]:
    s = world.scenario
    return {
        "scenario": s.name,
        "seed": world.seed,
        "locale": s.locale,
        "source_name": world.source_name,
        "format": "csv",
        "counts": world.counts(),
    }


def _json(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n"


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    frame.write_csv(
        path, date_format="%Y-%m-%d", datetime_format="%Y-%m-%d %H:%M:%S", float_precision=2, line_terminator="\n"
    )


def write_dir(world: World, out: Path) -> list[Path]:
    """Write the world's files into ``out``; all files appear together or none does."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".crmkit-", dir=out))
    try:
        for entity, frame in world.tables.items():
            write_csv(frame, tmp / f"{entity}.csv")
        (tmp / "exercises.json").write_text(_json(world.exercises), encoding="utf-8")
        (tmp / "manifest.json").write_text(_json(manifest(world)), encoding="utf-8")
        written = []
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
            written.append(out / f.name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _id_map(world: World, run_id: int) -> pl.DataFrame:
    return pl.concat(
        [
            f.select(
                pl.lit(entity).alias("entity"),
                pl.col("source_name"),
                pl.col("legacy_key"),
                pl.col("id").alias("target_id"),
                pl.lit(run_id, dtype=pl.Int64).alias("run_id"),
            )
            for entity, f in world.tables.items()
            if f.height
        ]
    )


def _refuse_non_empty(loader: Any, url: str) -> None:
    from crmkit.db.url import mask_url

    for table in ENTITY_MODELS:
        if loader.scalar(f'SELECT count(*) FROM "{table}"'):
            raise TargetError(
                f"target {mask_url(url)} already holds {table}: generate into an empty database "
                f"(or a new file / database name)"
            )


def load_target(world: World, url: str, scenario_hash: str = "") -> int:
    """Load the world into the CRM database at ``url``; returns the run id it is recorded under."""
    from crmkit.audit import now
    from crmkit.db.loader import open_loader
    from crmkit.db.url import mask_url
    from crmkit.migrate.safety.store import RunStore
    from crmkit.schema.versions import ensure_schema

    ensure_schema(url)
    loader = open_loader(url)
    try:
        _refuse_non_empty(loader, url)
        loader.begin()
        try:
            started = now().isoformat(sep=" ", timespec="seconds")
            run_id = RunStore(loader).open_run(
                kind="generate",
                mapping_name=f"scenario:{world.scenario.name}",
                mapping_hash=scenario_hash,
                target=mask_url(url),
                operator="crmkit training",
                started_at=started,
                finished_at=started,
                status="succeeded",
                counts={**world.counts(), "seed": world.seed},
            )
            for entity, frame in world.tables.items():
                loader.append(entity, frame)
            loader.append("crmkit_id_map", _id_map(world, run_id))
            if loader.dialect == "postgresql":
                for entity in world.tables:
                    loader.execute(
                        f"SELECT setval(pg_get_serial_sequence('{entity}', 'id'), "
                        f'coalesce((SELECT max(id) FROM "{entity}"), 0) + 1, false)'
                    )
            loader.commit()
        except BaseException:
            loader.rollback()
            raise
        return run_id
    finally:
        loader.close()
