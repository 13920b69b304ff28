"""Decide: a match probability per pair (Fellegi-Sunter) or rule logic (any-of / all-of).

Fellegi-Sunter: each compare's level contributes a weight ``log2(m/u)``, where ``m`` is
the chance of that level among true matches and ``u`` among non-matches.  ``u`` is
measured on random record pairs (nearly all non-matches); ``m`` and the share of matches
among candidate pairs (``prior``) are estimated by expectation-maximisation over the
distinct comparison patterns (numpy; a few hundred patterns however many pairs).  Values
given in the rules file are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crmkit.dedupe.compare import Comparisons
from crmkit.dedupe.rules import Compare, Condition, Logic

_EPS = 1e-6


@dataclass
class Model:
    """Fellegi-Sunter parameters: per compare, m and u per level (last = disagree)."""

    m: dict[str, list[float]]
    u: dict[str, list[float]]
    prior: float
    em_iterations: int = 0
    estimated: list[str] = field(default_factory=list)  # compares whose m came from EM

    def weights(self, name: str) -> np.ndarray:
        return np.log2(np.asarray(self.m[name]) / np.asarray(self.u[name]))

    def to_json(self) -> dict[str, object]:
        return {
            "prior": round(self.prior, 6),
            "em_iterations": self.em_iterations,
            "compares": {
                n: {
                    "m": [round(x, 6) for x in self.m[n]],
                    "u": [round(x, 6) for x in self.u[n]],
                    "weights": [round(float(w), 3) for w in self.weights(n)],
                }
                for n in self.m
            },
        }


def default_m(n_levels: int) -> list[float]:
    """A starting point for m: most matches agree strongly."""
    raw = [0.8 * (0.25**k) for k in range(n_levels - 1)] + [0.05]
    total = sum(raw)
    return [x / total for x in raw]


def level_shares(levels: np.ndarray, n_levels: int, weights: np.ndarray | None = None) -> list[float]:
    """Share of each level among non-null entries, lightly smoothed so no share is zero."""
    w = np.ones(len(levels)) if weights is None else weights
    counts = np.array([w[levels == k].sum() for k in range(n_levels)], dtype=float) + 0.5
    return list(counts / counts.sum())


def patterns(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of the level matrix, their counts, and each pair's pattern index."""
    if levels.shape[0] == 0:
        return levels, np.zeros(0), np.zeros(0, dtype=np.int64)
    base = int(levels.max()) + 2
    code = np.zeros(levels.shape[0], dtype=np.int64)
    for j in range(levels.shape[1]):
        code = code * base + (levels[:, j].astype(np.int64) + 1)
    uniq, first, inverse, counts = np.unique(code, return_index=True, return_inverse=True, return_counts=True)
    return levels[first], counts.astype(float), inverse


def _log_lik(pats: np.ndarray, probs: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(pats.shape[0])
    for j, p in enumerate(probs):
        lv = pats[:, j]
        known = lv >= 0
        out[known] += np.log(p[lv[known]])
    return out


def posterior(pats: np.ndarray, m: list[np.ndarray], u: list[np.ndarray], prior: float) -> np.ndarray:
    lm = _log_lik(pats, m) + np.log(prior)
    lu = _log_lik(pats, u) + np.log(1 - prior)
    return 1 / (1 + np.exp(np.clip(lu - lm, -700, 700)))


def em(
    pats: np.ndarray,
    counts: np.ndarray,
    m: list[np.ndarray],
    u: list[np.ndarray],
    prior: float,
    fixed_m: set[int],
    iterations: int,
) -> tuple[list[np.ndarray], float, int]:
    """Estimate m (for compares not in ``fixed_m``) and the prior; u stays as measured."""
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 (read after the loop)
        p = posterior(pats, m, u, prior)
        wp = counts * p
        new_prior = float(np.clip(wp.sum() / counts.sum(), _EPS, 1 - _EPS))
        new_m = [m[j] if j in fixed_m else np.asarray(level_shares(pats[:, j], len(m[j]), wp)) for j in range(len(m))]
        delta = max(abs(new_prior - prior), *(float(np.abs(a - b).max()) for a, b in zip(new_m, m)))
        m, prior = new_m, new_prior
        if delta < 1e-6:
            break
    return m, prior, done


@dataclass
class Session:
    """Candidate pairs of one blocking pass, and the compares its keys bias (left out of its EM)."""

    rows: np.ndarray  # indexes into the candidate pairs
    blocked: set[str]


def fit(
    comps: Comparisons,
    random_levels: np.ndarray,
    compares: list[Compare],
    prior: float | None,
    iterations: int,
    sessions: list[Session],
) -> Model:
    """m, u and prior: given ones kept, u from random pairs, m by EM, one session per blocking pass.

    Pairs found by a blocking key agree on that key's fields by construction, so each
    pass's EM leaves those compares out and estimates the others' m; a compare's m is
    the pair-weighted mean over the sessions that estimated it.  The prior is then fitted
    on all candidate pairs with every m and u fixed.
    """
    u = [
        np.asarray(c.u) if c.u else np.asarray(level_shares(random_levels[:, j], c.n_levels))
        for j, c in enumerate(compares)
    ]
    m = [np.asarray(c.m) if c.m else np.asarray(default_m(c.n_levels)) for c in compares]
    given = {j for j, c in enumerate(compares) if c.m}
    sums: dict[int, np.ndarray] = {}
    weights: dict[int, float] = {}
    done = 0
    for s in sessions if iterations else []:
        use = [j for j, c in enumerate(compares) if c.field not in s.blocked and (c.swap_with or "") not in s.blocked]
        todo = [j for j in use if j not in given]
        if not todo or len(s.rows) < 50:
            continue
        pats, counts, _ = patterns(comps.levels[s.rows][:, use])
        est, _, n = em(
            pats,
            counts,
            [m[j] for j in use],
            [u[j] for j in use],
            0.1,
            {i for i, j in enumerate(use) if j in given},
            iterations,
        )
        done += n
        for i, j in enumerate(use):
            if j in todo:
                sums[j] = sums.get(j, 0) + est[i] * len(s.rows)
                weights[j] = weights.get(j, 0) + len(s.rows)
    for j, total in sums.items():
        m[j] = total / weights[j]
    pats, counts, _ = patterns(comps.levels)
    fitted = prior if prior is not None else 0.1
    if prior is None and counts.sum() >= 50 and iterations:
        _, fitted, n = em(pats, counts, m, u, 0.1, set(range(len(compares))), iterations)
        done += n
    return Model(
        {c.name: list(map(float, m[j])) for j, c in enumerate(compares)},
        {c.name: list(map(float, u[j])) for j, c in enumerate(compares)},
        fitted,
        done,
        [compares[j].name for j in sums],
    )


def probabilities(comps: Comparisons, model: Model) -> np.ndarray:
    """Match probability of every candidate pair."""
    pats, _, inverse = patterns(comps.levels)
    if len(inverse) == 0:
        return np.zeros(0)
    m = [np.asarray(model.m[n]) for n in comps.names]
    u = [np.asarray(model.u[n]) for n in comps.names]
    return posterior(pats, m, u, model.prior)[inverse]


def holds(logic: Logic | Condition, sims: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Where rule logic holds (a null similarity satisfies no condition)."""
    if isinstance(logic, Condition):
        return np.nan_to_num(sims[logic.compare], nan=-1.0) >= logic.at_least - 1e-6
    parts = [holds(item, sims, n) for item in logic.items]
    if not parts:
        return np.zeros(n, dtype=bool)
    return np.logical_or.reduce(parts) if logic.any_of is not None else np.logical_and.reduce(parts)
