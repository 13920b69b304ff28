"""Preparation: everything that can fail before a write.

Load the mapping, read every source it uses (extract), shape every feed, and run the
mapping's validation rules over them: a bad mapping or an unreadable source leaves the
target untouched.  The :class:`Prepared` object carries the result to the load.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit.errors import MappingError
from crmkit.migrate.fields import Shaped, shape
from crmkit.migrate.mapping import FieldSpec, Mapping, entity_order
from crmkit.migrate.sources import Extracted, extract
from crmkit.schema.target import entities


@dataclass
class Prepared:
    mapping: Mapping
    extracted: dict[str, Extracted]
    shaped: dict[str, list[Shaped]]  # entity -> one per feed
    #: the sources' digest, computed on a thread of its own while the feeds are shaped
    _hashing: Future[str] | None = None

    @property
    def sources_hash(self) -> str:
        """A stable digest of every source's content, as read: a resume must find it unchanged."""
        if self._hashing is None:
            self._hashing = _hash_in_background(self.extracted)
        return self._hashing.result()


def _sources_digest(extracted: dict[str, Extracted]) -> str:
    digest = hashlib.sha256()
    for name in sorted(extracted):
        digest.update(name.encode() + b"\0" + _frame_digest(extracted[name].frame))
    return digest.hexdigest()


def _hash_in_background(extracted: dict[str, Extracted]) -> Future[str]:
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmkit-sources-hash")
    future = pool.submit(_sources_digest, dict(extracted))
    pool.shutdown(wait=False)
    return future


def _frame_digest(frame: pl.DataFrame) -> bytes:
    import polars_hash as plh

    cols = [pl.col(c).cast(pl.String).fill_null("\0") for c in frame.columns]
    if not cols:
        return b""
    hashed = frame.select(pl.concat_str(cols, separator="\x1f").alias("h")).select(plh.col("h").nchash.xxhash64())
    return hashlib.sha256(hashed["h"].to_numpy().tobytes() + ",".join(frame.columns).encode()).digest()


def prepare(mapping: Mapping, scope: dict[str, str] | None = None) -> Prepared:
    """Read every source the mapping uses and shape every feed.  Writes nothing.

    ``scope`` (a rollout wave's) maps entities to a SQL condition over their source columns;
    rows outside it, and the rows that refer to them, are out of scope (``filtered``).
    """
    scope = scope or {}
    unknown = set(scope) - set(mapping.entities)
    if unknown:
        raise MappingError(
            f"scope names entities the mapping {mapping.name} does not load: {', '.join(sorted(unknown))}"
        )
    used = {f.source for feeds in mapping.entities.values() for f in feeds}
    extracted = {name: extract(name, mapping.sources[name]) for name in mapping.sources if name in used}
    hashing = _hash_in_background(extracted)  # polars hashes without the GIL while the feeds are shaped
    targets = entities()
    shaped: dict[str, list[Shaped]] = {}
    for ename in entity_order(mapping):
        feeds = mapping.entities[ename]
        shaped[ename] = [
            shape(feed, targets[ename], extracted[feed.source], _where(mapping, ename, i, len(feeds)), scope.get(ename))
            for i, feed in enumerate(feeds)
        ]
    for ename, feeds in mapping.entities.items():
        for feed in feeds:
            for fname, spec in feed.fields.items():
                if spec.ref:
                    ref_source(mapping, spec, f"{_where(mapping, ename, 0, 1)}.fields.{fname}")
    return Prepared(mapping, extracted, shaped, hashing)


def _where(m: Mapping, entity: str, i: int, n: int) -> str:
    return f"{m.path}: entities.{entity}" + (f"[{i}]" if n > 1 else "")


def ref_source(m: Mapping, spec: FieldSpec, where: str) -> str:
    """The source whose legacy keys a reference uses."""
    if spec.source:
        return spec.source
    assert spec.ref is not None
    feeds = m.entities.get(spec.ref, [])
    if len(feeds) == 1:
        return feeds[0].source
    raise MappingError(
        f"{where}: {spec.ref} has {'several feeds' if feeds else 'no feed in this mapping'}: "
        f"say whose legacy keys these are with source: NAME"
    )


def validate(mapping: Mapping, prepared: Prepared) -> Any:
    """The mapping's validation rules over every shaped feed, before anything loads.

    Rows failing an ``error`` rule carry its reason into ``__errors`` (they will be rejected),
    ``warning`` rules into ``__warnings``.  Gates measured here cannot see rows that later
    fail to resolve a reference: those count against the run's own max_rejects.
    """
    if mapping.validate_ is None:
        return None
    from crmkit.validate.migration import merge_into_pipeline, validate_feeds

    pairs = [(e, sh) for e, feeds in prepared.shaped.items() for sh in feeds]
    pre = validate_feeds(mapping.validate_, [(e, sh.source, sh.frame) for e, sh in pairs])
    for (_, sh), fv in zip(pairs, pre.feeds):
        sh.frame = merge_into_pipeline(fv.result.checked)
    return pre
