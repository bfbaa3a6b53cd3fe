"""Per-unit results and their clustered bootstrap: the data every claim verdict is computed from.

A unit is the independent observation of a reproduction (a test task clustered by its wall layout, a test
sequence, a question); ``Units`` holds one value per unit and seed for every arm, and ``resampled_means`` draws
seeds (at least 3) and then clusters with replacement to give each arm's mean in every bootstrap resample
(docs/verdicts.md). ``verdicts.py`` turns these into held / contradicted / inconclusive / not testable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Units:
    """Per-unit results of one metric. ``values[arm]`` has shape (seeds, units), or (units,) for one seed: one
    value per unit, already averaged over the unit's samples (``per_unit``), so that a task with 8 samples weighs
    as much as a task with 1. ``clusters``: a cluster id per unit (the wall layout of each test task); None makes
    every unit its own cluster. ``paired``: every arm has the same units in the same order and the same number of
    seeds, so one resample draws the same seeds and clusters for every arm and the effect is the mean of per-unit
    differences. Unpaired arms (different unit sets) are resampled independently, each over its own units; their
    ``clusters`` may then be a mapping arm -> ids."""

    values: Mapping[str, Any]
    clusters: Any = None
    paired: bool = True

    def arm(self, name: str) -> np.ndarray:
        """The arm's values as a float array of shape (seeds, units)."""
        v = np.asarray(self.values[name], dtype=float)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2:
            raise ValueError(f"arm {name!r}: values must have shape (seeds, units) or (units,), not {v.shape}")
        return v

    def cluster_ids(self, name: str) -> np.ndarray | None:
        """The arm's cluster id per unit, or None when every unit is its own cluster."""
        c = self.clusters[name] if isinstance(self.clusters, Mapping) else self.clusters
        return None if c is None else np.asarray(c)

    def mean(self, name: str) -> float:
        """The arm's level: the mean over seeds of each seed's mean over its units (the point estimate). A unit
        missing (NaN) in a seed is left out of that seed's mean; with no unit missing this is the plain mean."""
        v = self.arm(name)
        if not np.isnan(v).any():
            return float(v.mean())
        counts = (~np.isnan(v)).sum(1)
        if (counts == 0).any():
            return float("nan")
        return float((np.nansum(v, 1) / counts).mean())

    def n_present(self, name: str) -> int:
        """The fewest units with a value in any one seed of the arm."""
        return int((~np.isnan(self.arm(name))).sum(1).min())

    def n_seeds(self, name: str) -> int:
        return self.arm(name).shape[0]

    def n_units(self, name: str) -> int:
        return self.arm(name).shape[1]

    def n_clusters(self, name: str) -> int:
        c = self.cluster_ids(name)
        return self.n_units(name) if c is None else len(np.unique(c))


def per_unit(values: Any, unit_ids: Any, units: Any = None) -> np.ndarray:
    """The mean of each unit's samples (``values[i]`` belongs to unit ``unit_ids[i]``), in the order of ``units``
    (default: the sorted distinct ids). A unit is the independent observation: pooling samples instead would weigh a
    task by its number of samples. A unit of ``units`` without samples is NaN (missing, see ``Claim.missing``)."""
    v = np.asarray(values, dtype=float).ravel()
    ids = np.asarray(unit_ids).ravel()
    if v.shape != ids.shape:
        raise ValueError(f"per_unit: {v.size} values but {ids.size} unit ids")
    order = np.unique(ids) if units is None else np.asarray(units).ravel()
    sorter = np.argsort(order, kind="stable")
    pos = np.searchsorted(order, ids, sorter=sorter)
    pos = np.clip(pos, 0, len(order) - 1)
    idx = sorter[pos]
    if len(order) == 0 or not np.array_equal(order[idx], ids):
        raise ValueError("per_unit: some unit ids are not among the units")
    sums = np.bincount(idx, weights=v, minlength=len(order))
    counts = np.bincount(idx, minlength=len(order))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def units_from_rows(
    rows: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
    value: Callable[[Mapping[str, Any]], float | None],
    unit_key: str,
    cluster_key: str | None = None,
) -> Units:
    """Paired ``Units`` from per-unit result rows: ``rows[arm][seed]`` are one evaluation's rows (one per unit,
    e.g. a test task or question), ``value(row)`` the unit's value (None: missing). Every arm and seed must hold
    the same units in the same order (``unit_key`` names the id); ``cluster_key`` names each unit's cluster."""
    first = next(iter(rows.values()))[0]
    ids = [r[unit_key] for r in first]
    values = {}
    for arm, seeds in rows.items():
        for table in seeds:
            if [r[unit_key] for r in table] != ids:
                raise ValueError(f"arm {arm!r} was evaluated on other units than the others: it cannot be paired")
        values[arm] = np.array([[np.nan if (v := value(r)) is None else float(v) for r in t] for t in seeds])
    clusters = None if cluster_key is None else np.array([r[cluster_key] for r in first])
    return Units(values, clusters=clusters)


# --- the bootstrap -------------------------------------------------------------------------------------------------


def _draw(
    rng: np.random.Generator, n_seeds: int, n_clusters: int, n_resamples: int
) -> tuple[np.ndarray | None, np.ndarray]:
    """What every resample draws with replacement: seeds (int32 indices (resamples, seeds), from
    ``rng.integers``) when there are at least 3 (None: each seed once), then clusters (int32 indices (resamples,
    clusters), likewise), returned as how often each resample drew each cluster (float (resamples, clusters))."""
    seed_idx = None
    if n_seeds >= 3:
        seed_idx = rng.integers(0, n_seeds, size=(n_resamples, n_seeds), dtype=np.int32)
    cluster_idx = rng.integers(0, n_clusters, size=(n_resamples, n_clusters), dtype=np.int32)
    flat = (np.arange(n_resamples)[:, None] * n_clusters + cluster_idx).ravel()
    drawn = np.bincount(flat, minlength=n_resamples * n_clusters).reshape(n_resamples, n_clusters)
    return seed_idx, drawn.astype(float)


def _codes(units: Units, arm: str) -> np.ndarray:
    """Cluster ids as 0..K-1, one per unit (each unit its own cluster when there are no ids)."""
    c = units.cluster_ids(arm)
    n = units.n_units(arm)
    if c is None:
        return np.arange(n)
    if c.shape != (n,):
        raise ValueError(f"arm {arm!r}: {c.size} cluster ids for {n} units")
    return np.unique(c, return_inverse=True)[1].ravel()


def _resampled_mean(
    values: np.ndarray, codes: np.ndarray, seed_idx: np.ndarray | None, drawn: np.ndarray
) -> np.ndarray:
    """Mean over the drawn seeds of each seed's mean over every unit of the drawn clusters, for each resample.
    Per-(seed, cluster) sums and counts, weighted by how often each resample drew each cluster (``drawn``, one
    matrix product), keep it vectorised and exact for clusters of unequal size and for units missing (NaN) in some
    seeds: a seed's mean is over the drawn units it has a value for (NaN when none)."""
    k = drawn.shape[1]
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    sums = np.stack([np.bincount(codes, weights=v, minlength=k) for v in filled])  # (seeds, clusters)
    counts = np.stack([np.bincount(codes[m], minlength=k) for m in present]).astype(float)
    seed_sums, seed_counts = drawn @ sums.T, drawn @ counts.T  # (resamples, seeds)
    if seed_idx is not None:
        seed_sums = np.take_along_axis(seed_sums, seed_idx, axis=1)
        seed_counts = np.take_along_axis(seed_counts, seed_idx, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (seed_sums / seed_counts).mean(1)


def resampled_means(units: Units, arms: Sequence[str], n_resamples: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Each arm's mean in ``n_resamples`` bootstrap resamples (arm -> shape (n_resamples,)), from
    ``numpy.random.default_rng(seed)``. Paired units: one draw serves every arm (int32 seed indices (n_resamples,
    seeds) when seeds >= 3, then int32 cluster indices (n_resamples, clusters), from ``rng.integers``). Unpaired:
    the same draws arm by arm, in the order of ``arms``. Values must be finite or NaN (a unit missing in a seed,
    left out of that seed's mean)."""
    rng = np.random.default_rng(seed)
    for a in arms:
        if np.isinf(units.arm(a)).any():
            raise ValueError(f"arm {a!r}: values must be finite (NaN is a missing unit; see Claim.missing)")
    if units.paired:
        shapes = {units.arm(a).shape for a in arms}
        if len(shapes) != 1:
            raise ValueError(f"paired arms need the same (seeds, units); got {sorted(shapes)} for {list(arms)}")
        codes = [_codes(units, a) for a in arms]
        if any(not np.array_equal(codes[0], c) for c in codes[1:]):
            raise ValueError("paired arms need the same cluster ids")
        draws = _draw(rng, units.n_seeds(arms[0]), int(codes[0].max()) + 1, n_resamples)
        return {a: _resampled_mean(units.arm(a), c, *draws) for a, c in zip(arms, codes, strict=True)}
    out = {}
    for a in arms:
        c = _codes(units, a)
        draws = _draw(rng, units.n_seeds(a), int(c.max()) + 1, n_resamples)
        out[a] = _resampled_mean(units.arm(a), c, *draws)
    return out


def percentiles(x: np.ndarray, qs: Sequence[float] = (2.5, 97.5)) -> tuple[float, ...]:
    """Linearly interpolated percentiles (numpy's default method) that stay defined next to an infinite value (a
    log ratio with a zero mean): between an infinite and a finite neighbour they take the infinite one (the limit),
    between -inf and +inf the outer one."""
    s = np.sort(np.asarray(x, dtype=float))
    out = []
    for q in qs:
        h = (len(s) - 1) * q / 100
        i = int(math.floor(h))
        lo, hi = float(s[i]), float(s[min(i + 1, len(s) - 1)])
        if lo == hi or h == i:
            v = lo
        elif math.isinf(lo) and math.isinf(hi):
            v = lo if q < 50 else hi
        elif math.isinf(lo) or math.isinf(hi):
            v = lo if math.isinf(lo) else hi
        else:
            v = lo + (h - i) * (hi - lo)
        out.append(v)
    return tuple(out)
