"""Cluster: matched pairs → groups of records that are one customer.

Connected components (scipy.sparse.csgraph) over the match links, with a guard against
chaining: a component larger than ``max_size``, or holding two records that must not be
linked (a person said "not a match", or the pair was compared and scored below
``cannot_link_below``), loses its weakest links and is split again, until every component
is clean.  Links a person confirmed are never dropped.  The links dropped are returned:
they go to the review queue rather than being silently merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

CONFIRMED = np.inf  # the score of a link a person confirmed


@dataclass
class Clusters:
    labels: np.ndarray  # component label per record
    dropped: pl.DataFrame  # l, r, score: links the guard cut
    rounds: int


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _bad_components(labels: np.ndarray, cannot: pl.DataFrame, max_size: int) -> np.ndarray:
    sizes = np.bincount(labels)
    bad = set(np.flatnonzero(sizes > max_size).tolist())
    if cannot.height:
        cl, cr = labels[cannot["l"].to_numpy()], labels[cannot["r"].to_numpy()]
        bad |= set(cl[cl == cr].tolist())
    return np.array(sorted(bad), dtype=np.int64)


def cluster(n: int, links: pl.DataFrame, cannot: pl.DataFrame, max_size: int, max_rounds: int = 200) -> Clusters:
    """Cluster ``n`` records from ``links`` (l, r, score); ``cannot`` (l, r) may not share a cluster."""
    links = links.select(pl.col("l").cast(pl.Int64), pl.col("r").cast(pl.Int64), pl.col("score").cast(pl.Float64))
    cannot = cannot.select(pl.col("l").cast(pl.Int64), pl.col("r").cast(pl.Int64))
    labels = components(n, links["l"].to_numpy(), links["r"].to_numpy())
    dropped: list[pl.DataFrame] = []
    rounds = 0
    while rounds < max_rounds:
        bad = _bad_components(labels, cannot, max_size)
        if len(bad) == 0:
            break
        rounds += 1
        tagged = links.with_columns(pl.Series("comp", labels[links["l"].to_numpy()]))
        in_bad = pl.col("comp").is_in(bad.tolist()) & (pl.col("score") < CONFIRMED)
        cut = in_bad & (pl.col("score") <= pl.col("score").filter(in_bad).min().over("comp"))
        if tagged.filter(cut).height == 0:
            break  # only confirmed links left: a person linked what a person separated; leave it
        dropped.append(tagged.filter(cut).drop("comp"))
        links = tagged.filter(~cut).drop("comp")
        labels = _split(labels, bad, links)
    out = pl.concat(dropped) if dropped else pl.DataFrame(schema={"l": pl.Int64, "r": pl.Int64, "score": pl.Float64})
    return Clusters(labels, out, rounds)


def _split(labels: np.ndarray, bad: np.ndarray, links: pl.DataFrame) -> np.ndarray:
    """Recompute the components of the records in ``bad`` components only, from the remaining links."""
    members = np.flatnonzero(np.isin(labels, bad))
    index = np.full(len(labels), -1, dtype=np.int64)
    index[members] = np.arange(len(members))
    left, right = index[links["l"].to_numpy()], index[links["r"].to_numpy()]
    inside = (left >= 0) & (right >= 0)
    sub = components(len(members), left[inside], right[inside])
    labels = labels.copy()
    labels[members] = labels.max() + 1 + sub
    return labels
