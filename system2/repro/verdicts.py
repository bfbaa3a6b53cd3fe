"""Claim verdicts: a seeded, clustered bootstrap interval decides held, contradicted, inconclusive or not testable.

Every reproduction answers the same way (docs/verdicts.md). A claim names its metric, the arms it compares (or one
arm against a constant), the paper's direction and margin, and the preconditions under which it cannot be tested.
Its data are per-unit results (a test task, a question), one value per unit and seed, already averaged over the
unit's samples. One resample draws seeds with replacement (when there are at least 3), then clusters (the tasks of
one wall layout together), and the 2.5-97.5 percentiles of the resampled effect give the 95% interval:

- **held**: the whole interval lies on the paper's side of the margin;
- **contradicted**: the whole interval lies on the other side of zero;
- **inconclusive**: anything else;
- **not testable**: a precondition failed, before any interval is computed.

There is no other path to a verdict: an exception inside a claim (its metric, a precondition) is a bug and
propagates, and a missing (NaN) unit value raises unless the claim declares what to do with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from system2.repro.units import Units, per_unit, percentiles, resampled_means, units_from_rows

__all__ = [
    "CONTRADICTED", "HELD", "HOW_TO_READ", "INCONCLUSIVE", "NOT_TESTABLE", "VERDICTS", "Claim", "ClaimVerdict",
    "Precondition", "Units", "Verdict", "beats_chance", "decide", "decide_all", "judge", "min_units", "not_testable",
    "per_unit", "percentiles", "resampled_means", "saturated", "units_from_rows", "verdict_table",
]  # fmt: skip

HELD = "held"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable"
VERDICTS = (HELD, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE)
Verdict = Literal["held", "contradicted", "inconclusive", "not testable"]

HOW_TO_READ = (
    "How to read the verdicts: each claim's effect (arm A minus arm B, their log ratio, or one arm against the "
    "paper's bound) comes with a 95% bootstrap interval over the independent units (test tasks resampled by wall "
    "layout, questions), and over seeds when there are at least 3. **held**: the whole interval lies on the paper's "
    "side of the claim's margin. **contradicted**: the whole interval lies on the other side of zero. "
    "**inconclusive**: anything else; our data cannot tell the effect from zero (or from the margin), which is no "
    "evidence against the paper. **not testable**: a precondition failed before any interval was computed (both "
    "arms saturated, too few units), and the reason is given."
)


Precondition = Callable[[Units, Any], "str | None"]
"""``(units, data) -> reason or None``: the claim's own units (its arms only, missing values handled) and everything
the claim was decided on (for preconditions on another metric, e.g. "the success rate did not fall")."""


@dataclass(frozen=True)
class Claim:
    """What a paper claims, and how our per-unit results test it.

    ``metric``: the name of a ``Units`` in the data the claim is decided on (a mapping name -> Units), or a function
    of that data returning the ``Units``. ``arms``: (A, B), the effect is A - B; or (A,) with ``constant``, the effect
    is A - constant. ``direction``: +1 when the paper has A above B (or above the constant), -1 below. ``margin``
    (>= 0, on the effect's scale): held needs the whole interval beyond ``direction * margin``; "at least 5 points
    better" is ``direction=1, margin=0.05``. ``scale="log"`` compares log(mean A) - log(mean B) (or log of the
    constant): ratio claims such as "under half the baseline's error" are ``direction=-1, margin=math.log(2)``.
    ``unit`` and ``cluster``: plural nouns for reports ("tasks", "layouts"); a claim that names a cluster refuses
    data without cluster ids. ``missing``: what a NaN unit value means: "raise" (the default: ValueError naming the
    arm), "drop" (leave the unit out of the seed that misses it, from every arm when paired, e.g. "units solved
    by both arms in that seed"; each seed's mean is over its own units, the arm's level the mean over seeds), or a
    number to fill in. ``percent``: values are fractions, reported in
    percent and points."""

    name: str
    statement: str  # what the paper claims
    paper: str  # the paper's own figure, as text
    metric: str | Callable[[Any], Units]
    arms: tuple[str, ...]
    direction: int = 1
    constant: float | None = None
    margin: float = 0.0
    scale: Literal["diff", "log"] = "diff"
    unit: str = "units"
    cluster: str | None = None
    preconditions: tuple[Precondition, ...] = ()
    missing: Literal["raise", "drop"] | float = "raise"
    percent: bool = True

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ValueError(f"claim {self.name!r}: direction must be +1 or -1, not {self.direction}")
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            raise ValueError(f"claim {self.name!r}: margin must be finite and >= 0 (the sign is the direction)")
        if self.scale not in ("diff", "log"):
            raise ValueError(f"claim {self.name!r}: scale must be 'diff' or 'log', not {self.scale!r}")
        if len(self.arms) == 2 and self.arms[0] == self.arms[1]:
            raise ValueError(f"claim {self.name!r}: compares arm {self.arms[0]!r} with itself")
        if not ((len(self.arms) == 2 and self.constant is None) or (len(self.arms) == 1 and self.constant is not None)):
            raise ValueError(f"claim {self.name!r}: give two arms, or one arm and a constant")
        if self.scale == "log" and self.constant is not None and not self.constant > 0:
            raise ValueError(f"claim {self.name!r}: a log-scale constant must be > 0")
        if isinstance(self.missing, str) and self.missing not in ("raise", "drop"):
            raise ValueError(f"claim {self.name!r}: missing must be 'raise', 'drop' or a number")


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim's answer. ``effect`` and ``interval`` are on the effect's scale (A - B, A - constant, or a log
    ratio); None when not testable. ``n_units``, ``n_clusters``: behind the effect (summed over arms when unpaired);
    ``n_seeds``: the fewest over the arms; ``seed_variance``: whether seeds were resampled (at least 3)."""

    name: str
    statement: str
    paper: str
    verdict: Verdict
    effect: float | None
    interval: tuple[float, float] | None
    reason: str | None
    means: dict[str, float]
    n_units: int
    n_clusters: int
    n_seeds: int
    seed_variance: bool
    ours: str  # one line for reports: effect [interval], units / clusters / seeds


# --- preconditions -------------------------------------------------------------------------------------------------


def saturated(low: float = 0.10, high: float = 0.97, on: tuple[str, tuple[str, ...]] | None = None) -> Precondition:
    """Not testable when every arm of the claim is under ``low``, or every arm over ``high`` (fractions): a floor or
    a ceiling leaves no room for the difference the paper reports. ``on``: (metric, arms) to look at instead of the
    claim's own units, for claims on a quantity derived from a rate (a gain, a difference)."""

    def check(units: Units, data: Any) -> str | None:
        seen, arms = (units, list(units.values)) if on is None else (data[on[0]], list(on[1]))
        means = [seen.mean(a) for a in arms]
        shown = ", ".join(f"{a} {m:.1%}" for a, m in zip(arms, means, strict=True))
        what = "" if on is None else f" on {on[0]}"
        if all(m < low for m in means):
            return f"all arms under {low:.0%}{what} ({shown})"
        if all(m > high for m in means):
            return f"all arms over {high:.0%}{what} ({shown})"
        return None

    return check


def min_units(n: int) -> Precondition:
    """Not testable with fewer than ``n`` units in an arm (in its seed with the fewest, when units are missing
    in some seeds): the interval would be too wide to say anything."""

    def check(units: Units, data: Any) -> str | None:
        few = {a: units.n_present(a) for a in units.values if units.n_present(a) < n}
        return f"fewer than {n} units ({', '.join(f'{a}: {k}' for a, k in few.items())})" if few else None

    return check


def beats_chance(chance: float) -> Precondition:
    """Not testable when no arm's mean is above ``chance``: the comparison would be between two ways of guessing."""

    def check(units: Units, data: Any) -> str | None:
        means = [units.mean(a) for a in units.values]
        if all(m <= chance for m in means):
            return f"no arm beats chance {chance:.1%} ({', '.join(f'{m:.1%}' for m in means)})"
        return None

    return check


def judge(interval: tuple[float, float], direction: int, margin: float = 0.0) -> Verdict:
    """held when the whole interval is beyond ``direction * margin`` on the paper's side, contradicted when it is
    wholly on the other side of zero, inconclusive otherwise (strict: an interval touching a bound does not pass)."""
    lo, hi = interval
    if direction > 0:
        return HELD if lo > margin else CONTRADICTED if hi < 0 else INCONCLUSIVE
    return HELD if hi < -margin else CONTRADICTED if lo > 0 else INCONCLUSIVE


# --- deciding a claim ----------------------------------------------------------------------------------------------


def _prepare(claim: Claim, units: Units) -> Units:
    """The claim's arms only, as (seeds, units) arrays, with missing values handled as the claim declares."""
    vals = {a: units.arm(a) for a in claim.arms}
    clusters = {a: units.cluster_ids(a) for a in claim.arms}
    if units.paired and len({v.shape for v in vals.values()}) > 1:
        shapes = ", ".join(f"{a}: {v.shape}" for a, v in vals.items())
        raise ValueError(f"claim {claim.name!r}: paired arms need the same (seeds, units); got {shapes}")
    if claim.cluster is not None and any(c is None for c in clusters.values()):
        raise ValueError(f"claim {claim.name!r} resamples by {claim.cluster} but the data gives no cluster ids")
    for a, v in vals.items():
        if np.isinf(v).any():
            raise ValueError(f"claim {claim.name!r}: arm {a!r} has infinite values")
    nan = {a: np.isnan(v) for a, v in vals.items()}
    if any(m.any() for m in nan.values()):
        if claim.missing == "raise":
            bad = {a: int(m.any(0).sum()) for a, m in nan.items() if m.any()}
            raise ValueError(
                f"claim {claim.name!r}: missing (NaN) values in "
                + ", ".join(f"arm {a!r} ({k} units)" for a, k in bad.items())
                + "; declare Claim.missing to drop or fill them"
            )
        if claim.missing == "drop":
            if units.paired:  # a unit a seed misses in any arm is missing from every arm in that seed
                gone = np.logical_or.reduce(list(nan.values()))
                nan = dict.fromkeys(nan, gone)
                vals = {a: np.where(gone, np.nan, v) for a, v in vals.items()}
            keep = {a: ~m.all(0) for a, m in nan.items()}  # units some seed has a value for
            vals = {a: v[:, keep[a]] for a, v in vals.items()}
            clusters = {a: None if c is None else c[keep[a]] for a, c in clusters.items()}
        else:
            vals = {a: np.where(np.isnan(v), float(claim.missing), v) for a, v in vals.items()}
    return Units(vals, clusters, units.paired)


def _builtin_reason(claim: Claim, units: Units) -> str | None:
    """Preconditions every claim has: some units left, and on the log scale non-negative values and a ratio that
    is defined."""
    if any(units.n_present(a) == 0 for a in claim.arms):
        return "a seed has no units left after dropping the missing ones"
    if claim.scale == "log":
        for a in claim.arms:
            if (units.arm(a) < 0).any():
                raise ValueError(f"claim {claim.name!r}: a log-scale claim needs non-negative values (arm {a!r})")
        if len(claim.arms) == 2 and all(units.mean(a) == 0 for a in claim.arms):
            return "both arms are 0: the ratio is undefined"
    return None


def _effect(claim: Claim, a: np.ndarray | float, b: np.ndarray | float) -> Any:
    if claim.scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(a) - np.log(b)
    return np.subtract(a, b)


def _num(x: float, percent: bool, sign: bool = False) -> str:
    if percent:
        return f"{x * 100:+.1f}" if sign else f"{x * 100:.1f}"
    return f"{x:+.3g}" if sign else f"{x:.3g}"


def _ours(claim: Claim, means: dict[str, float], effect: float, interval: tuple[float, float], sizes: str) -> str:
    lo, hi = interval
    p = claim.percent
    pct = "%" if p else ""
    if claim.constant is not None:
        c = claim.constant
        if claim.scale == "log":
            lo, hi = c * math.exp(lo), c * math.exp(hi)
        else:
            lo, hi = lo + c, hi + c
        arm = claim.arms[0]
        return f"{_num(means[arm], p)}{pct} [{_num(lo, p)}, {_num(hi, p)}] vs {_num(c, p)}{pct}, {sizes}"
    levels = f"{_num(means[claim.arms[0]], p)}{pct} vs {_num(means[claim.arms[1]], p)}{pct}"
    if claim.scale == "log":
        return f"{levels}: ratio {math.exp(effect):.2f} [{math.exp(lo):.2f}, {math.exp(hi):.2f}], {sizes}"
    unit = " pts" if p else ""
    return f"{levels}: {_num(effect, p, sign=True)}{unit} [{_num(lo, p)}, {_num(hi, p)}], {sizes}"


def decide(claim: Claim, data: Any, n_resamples: int = 2000, seed: int = 0) -> ClaimVerdict:
    """The claim's verdict on ``data`` (a mapping metric name -> ``Units``, or whatever ``claim.metric`` reads).
    Preconditions first (a failed one: not testable, no interval), then the bootstrap interval of the effect, then
    ``judge``. Each claim draws from its own ``default_rng(seed)``, so a verdict does not depend on the other claims.
    Exceptions raised by the metric or a precondition propagate."""
    if n_resamples < 1:
        raise ValueError("n_resamples must be positive")
    raw = claim.metric(data) if callable(claim.metric) else data[claim.metric]
    if not isinstance(raw, Units):
        raise TypeError(f"claim {claim.name!r}: the metric gave {type(raw).__name__}, not Units")
    units = _prepare(claim, raw)
    arms = claim.arms
    n_units = sum(units.n_units(a) for a in arms) if not units.paired else units.n_units(arms[0])
    n_clusters = sum(units.n_clusters(a) for a in arms) if not units.paired else units.n_clusters(arms[0])
    n_seeds = min(units.n_seeds(a) for a in arms)
    seed_variance = n_seeds >= 3
    means = {a: units.mean(a) if units.n_units(a) else float("nan") for a in arms}
    base = dict(name=claim.name, statement=claim.statement, paper=claim.paper, means=means, n_units=n_units)
    base.update(n_clusters=n_clusters, n_seeds=n_seeds, seed_variance=seed_variance)

    reason = _builtin_reason(claim, units)
    for pre in claim.preconditions:
        if reason is not None:
            break
        reason = pre(units, data)
    if reason is not None:
        return ClaimVerdict(verdict=NOT_TESTABLE, effect=None, interval=None, reason=reason, ours=reason, **base)

    boot = resampled_means(units, arms, n_resamples, seed)
    ref_boot = boot[arms[1]] if len(arms) == 2 else claim.constant
    ref = means[arms[1]] if len(arms) == 2 else claim.constant
    stats = _effect(claim, boot[arms[0]], ref_boot)
    empty = sum(int(np.isnan(b).sum()) for b in boot.values())
    if empty:
        raise ValueError(
            f"claim {claim.name!r}: {empty} resampled arm means drew no unit with a value in some seed; add a "
            "precondition (e.g. min_units()) that makes such sparse data not testable"
        )
    if np.isnan(stats).any():
        raise ValueError(
            f"claim {claim.name!r}: the log ratio is undefined (0/0) in {int(np.isnan(stats).sum())} resamples; "
            "add a precondition (e.g. saturated()) that makes such data not testable"
        )
    effect = float(_effect(claim, means[arms[0]], ref))
    interval = percentiles(stats)
    verdict = judge(interval, claim.direction, claim.margin)

    sizes = f"{'+'.join(str(units.n_units(a)) for a in arms) if not units.paired else n_units} {claim.unit}"
    if any(units.cluster_ids(a) is not None for a in arms):
        k = "+".join(str(units.n_clusters(a)) for a in arms) if not units.paired else str(n_clusters)
        sizes += f" / {k} {claim.cluster or 'clusters'}"
    sizes += f" / {n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if not seed_variance:
        sizes += " (seed variance not included)"
    ours = _ours(claim, means, effect, interval, sizes)
    return ClaimVerdict(verdict=verdict, effect=effect, interval=interval, reason=None, ours=ours, **base)


def not_testable(claim: Claim, reason: str) -> ClaimVerdict:
    """The verdict of a claim whose data this run does not have (a task or an arm its scale leaves out): not
    testable, with the reason. The only other way to that verdict is a failed precondition inside ``decide``."""
    return ClaimVerdict(
        name=claim.name, statement=claim.statement, paper=claim.paper, verdict=NOT_TESTABLE, effect=None,
        interval=None, reason=reason, means={}, n_units=0, n_clusters=0, n_seeds=0, seed_variance=False, ours=reason,
    )  # fmt: skip


def decide_all(
    claims: Sequence[Claim],
    data: Any,
    n_resamples: int = 2000,
    seed: int = 0,
    absent: Callable[[Claim, list[str]], str] | None = None,
) -> list[ClaimVerdict]:
    """``decide`` for every claim, in order. ``absent``: for data a scale leaves out (a task, an arm), the reason a
    claim whose metric or arms are not in ``data`` is not testable, from the claim and its missing arms; without it
    such a claim raises like any other missing key."""
    out = []
    for c in claims:
        units = data.get(c.metric) if absent is not None and isinstance(c.metric, str) else None
        missing = [a for a in c.arms if units is None or a not in units.values] if absent is not None else []
        out.append(not_testable(c, absent(c, missing)) if missing else decide(c, data, n_resamples, seed))
    return out


def verdict_table(results: Sequence[ClaimVerdict]) -> str:
    """A Markdown table of the verdicts: claim (name and statement), the paper's figure, ours, the verdict."""
    lines = ["| claim | paper | ours | verdict |", "|---|---|---|---|"]
    for r in results:
        cells = [f"**{r.name}**: {r.statement}", r.paper, r.ours, r.verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
