"""Claim verdicts (system2.repro.verdicts) on simulated per-unit results at the reproductions' real sizes.

Rates are measured over 200 simulated datasets each, with 500 bootstrap resamples per verdict (the reports use
2,000; the rates below hold at both). Two settings:

- planning: 200 binary test tasks in 40 wall layouts (5 tasks each), 3 seeds. A task's chance of success is
  0.4 + a layout effect (uniform +-20 pts) + a task effect (+-10 pts), plus per arm a layout x arm effect (+-5 pts)
  and a seed effect (+-4 pts, i.e. a seed-to-seed sd of about 3 pts in the difference). The clear effect is
  +15 pts, the size of our measured small-scale Dualformer gaps on 200 tasks (40.0% vs 25.5%, 47.5% vs 25.5%).
- reasoning: 300 binary questions of uniform difficulty (15-70%), 1 seed. The clear effect is +12 pts, the size
  of our measured RL-for-reasoning gain (EI over SFT, +12.3 pts maj@1).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from system2.repro.verdicts import (
    CONTRADICTED,
    HELD,
    HOW_TO_READ,
    INCONCLUSIVE,
    NOT_TESTABLE,
    VERDICTS,
    Claim,
    Units,
    beats_chance,
    decide,
    decide_all,
    min_units,
    per_unit,
    percentiles,
    resampled_means,
    saturated,
    verdict_table,
)

DATASETS = 200
RESAMPLES = 500


def tasks(rng: np.random.Generator, delta: float, inter: float = 0.05, seeds: int = 3) -> Units:
    """200 binary tasks in 40 layouts, ``seeds`` seeds; arm A's chance is arm B's plus ``delta`` (no clipping is
    needed: every chance stays within 0.01-0.94 for |delta| <= 0.15)."""
    n, layouts = 200, 40
    cl = np.repeat(np.arange(layouts), n // layouts)
    base = 0.4 + rng.uniform(-0.2, 0.2, layouts)[cl] + rng.uniform(-0.1, 0.1, n)

    def arm(shift: float) -> np.ndarray:
        p = base + shift + rng.uniform(-inter, inter, layouts)[cl] + rng.uniform(-0.04, 0.04, (seeds, 1))
        return (rng.random((seeds, n)) < p).astype(float)

    return Units({"A": arm(delta), "B": arm(0.0)}, clusters=cl)


def questions(rng: np.random.Generator, delta: float) -> Units:
    """300 binary questions, 1 seed; arm A's chance is arm B's plus ``delta``."""
    base = rng.uniform(0.15, 0.7, 300)
    return Units({"A": (rng.random(300) < base + delta).astype(float), "B": (rng.random(300) < base).astype(float)})


def rates(claim: Claim, simulate, seed: int = 1) -> dict[str, float]:
    """The share of each verdict over ``DATASETS`` simulated datasets."""
    rng = np.random.default_rng(seed)
    got = [decide(claim, {"m": simulate(rng)}, RESAMPLES, seed=i).verdict for i in range(DATASETS)]
    return {v: got.count(v) / DATASETS for v in VERDICTS}


TASKS = Claim("t", "A beats B", "-", "m", ("A", "B"), unit="tasks", cluster="layouts")
QUESTIONS = Claim("q", "A beats B", "-", "m", ("A", "B"), unit="questions")
SETTINGS = {"tasks": (TASKS, tasks, 0.15), "questions": (QUESTIONS, questions, 0.12)}


@pytest.mark.parametrize("setting", SETTINGS)
def test_null_effect_is_rarely_held(setting):
    claim, simulate, _ = SETTINGS[setting]
    r = rates(claim, lambda rng: simulate(rng, 0.0))
    assert r[HELD] <= 0.05, r


@pytest.mark.parametrize("setting", SETTINGS)
def test_clear_effect_is_held(setting):
    claim, simulate, delta = SETTINGS[setting]
    r = rates(claim, lambda rng: simulate(rng, delta))
    assert r[HELD] >= 0.8, r
    assert r[CONTRADICTED] == 0, r


@pytest.mark.parametrize("setting", SETTINGS)
def test_reversed_effect_is_contradicted(setting):
    claim, simulate, delta = SETTINGS[setting]
    r = rates(claim, lambda rng: simulate(rng, -delta))
    assert r[CONTRADICTED] >= 0.8, r
    assert r[HELD] == 0, r


def test_direction_minus_one_mirrors():
    lower = Claim("t", "A below B", "-", "m", ("A", "B"), direction=-1, cluster="layouts")
    assert rates(lower, lambda rng: tasks(rng, -0.15))[HELD] >= 0.8
    assert rates(lower, lambda rng: tasks(rng, 0.15))[CONTRADICTED] >= 0.8


def test_margin_at_the_true_gap_is_rarely_held():
    """ "At least 5 points better" when the true gap is exactly 5 points."""
    at_least_5 = Claim("t", "A beats B by 5 pts", "-", "m", ("A", "B"), margin=0.05, cluster="layouts")
    assert rates(at_least_5, lambda rng: tasks(rng, 0.05))[HELD] <= 0.06
    assert rates(at_least_5, lambda rng: tasks(rng, 0.20))[HELD] >= 0.8
    one_q = Claim("q", "A beats B by 5 pts", "-", "m", ("A", "B"), margin=0.05)
    assert rates(one_q, lambda rng: questions(rng, 0.05))[HELD] <= 0.06


def test_saturated_tie_is_not_testable():
    ones = np.ones((3, 200))
    claim = Claim("t", "s", "-", "m", ("A", "B"), cluster="layouts", preconditions=(saturated(),))
    r = decide(claim, {"m": Units({"A": ones, "B": ones}, np.repeat(np.arange(40), 5))})
    assert r.verdict == NOT_TESTABLE and r.effect is None and r.interval is None
    assert "over 97%" in r.reason and r.ours == r.reason
    zeros = np.zeros((3, 200))
    r = decide(claim, {"m": Units({"A": zeros + 0.05, "B": zeros}, np.repeat(np.arange(40), 5))})
    assert r.verdict == NOT_TESTABLE and "under 10%" in r.reason
    # one arm saturated is a (large) difference, not a tie
    assert decide(claim, {"m": Units({"A": ones, "B": zeros + 0.5}, np.repeat(np.arange(40), 5))}).verdict == HELD


def test_constant_threshold():
    """ "CoPE errs on at most 1% of 1,000 test sequences": one arm against a constant, the same resampling."""
    at_most_1 = Claim("c", "error at most 1%", "0.0%", "m", ("A",), direction=-1, constant=0.01, unit="sequences")

    def errors(p: float):
        return lambda rng: Units({"A": (rng.random(1000) < p).astype(float)})

    r = decide(at_most_1, {"m": Units({"A": np.zeros(1000)})})
    assert r.verdict == HELD and r.ours.startswith("0.0% [0.0, 0.0] vs 1.0%, 1000 sequences / 1 seed")
    assert rates(at_most_1, errors(0.002))[HELD] >= 0.8
    assert rates(at_most_1, errors(0.01))[HELD] <= 0.05
    assert rates(at_most_1, errors(0.03))[CONTRADICTED] >= 0.8


def test_one_question_difference_is_inconclusive():
    """The old predicates called this "held"."""
    b = (np.arange(300) % 3 == 0).astype(float)
    a = b.copy()
    a[1] = 1.0
    r = decide(QUESTIONS, {"m": Units({"A": a, "B": b})})
    assert r.verdict == INCONCLUSIVE
    assert r.effect == pytest.approx(1 / 300) and r.interval[0] == 0.0


def test_exceptions_propagate():
    def broken(data):
        return data["no such metric"]

    claim = Claim("t", "s", "-", broken, ("A", "B"))
    with pytest.raises(KeyError):
        decide(claim, {"m": questions(np.random.default_rng(0), 0.1)})

    def bad_precondition(units, data):
        raise ZeroDivisionError

    claim = Claim("t", "s", "-", "m", ("A", "B"), preconditions=(bad_precondition,))
    with pytest.raises(ZeroDivisionError):
        decide(claim, {"m": questions(np.random.default_rng(0), 0.1)})
    with pytest.raises(KeyError):
        decide(QUESTIONS, {"other": questions(np.random.default_rng(0), 0.1)})


def test_missing_values_raise_unless_declared():
    u = questions(np.random.default_rng(0), 0.1)
    b = u.values["B"].copy()
    b[[3, 7]] = np.nan
    data = {"m": Units({"A": u.values["A"], "B": b})}
    with pytest.raises(ValueError, match="arm 'B'"):
        decide(QUESTIONS, data)
    dropped = decide(Claim("q", "s", "-", "m", ("A", "B"), missing="drop"), data)
    assert dropped.n_units == 298  # one seed: a missing unit leaves the comparison
    assert dropped.means["A"] == pytest.approx(np.delete(u.values["A"], [3, 7]).mean())
    filled = decide(Claim("q", "s", "-", "m", ("A", "B"), missing=0.0), data)
    assert filled.n_units == 300 and filled.means["B"] == pytest.approx(np.nan_to_num(b).mean())


def test_bootstrap_is_deterministic_given_its_seed():
    u = tasks(np.random.default_rng(3), 0.05)
    a, b = resampled_means(u, ("A", "B"), 300, seed=7), resampled_means(u, ("A", "B"), 300, seed=7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["A"], resampled_means(u, ("A", "B"), 300, seed=8)["A"])
    assert decide(TASKS, {"m": u}, seed=7) == decide(TASKS, {"m": u}, seed=7)


def test_clustered_interval_is_wider_under_a_strong_layout_effect():
    u = tasks(np.random.default_rng(11), 0.1, inter=0.3, seeds=1)
    clustered = decide(TASKS, {"m": u})
    unclustered = decide(Claim("t", "s", "-", "m", ("A", "B")), {"m": Units(u.values)})
    width = np.diff(clustered.interval)[0]
    assert clustered.effect == unclustered.effect
    assert width > 1.3 * np.diff(unclustered.interval)[0]


def slow_means(units: Units, arms, n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """The resampling written out one resample at a time, with the same draws as ``resampled_means`` (a unit
    missing in a seed is left out of that seed's mean)."""
    rng = np.random.default_rng(seed)
    groups = [list(arms)] if units.paired else [[a] for a in arms]
    out = {}
    for group in groups:
        values = {a: np.atleast_2d(np.asarray(units.values[a], dtype=float)) for a in group}
        n_seeds, n_units = values[group[0]].shape
        ids = units.cluster_ids(group[0])
        ids = np.arange(n_units) if ids is None else ids
        labels = np.unique(ids)
        members = [np.flatnonzero(ids == k) for k in labels]
        seed_idx = rng.integers(0, n_seeds, size=(n_resamples, n_seeds), dtype=np.int32) if n_seeds >= 3 else None
        cluster_idx = rng.integers(0, len(labels), size=(n_resamples, len(labels)), dtype=np.int32)
        for a in group:
            stats = []
            for r in range(n_resamples):
                seeds = seed_idx[r] if seed_idx is not None else range(n_seeds)
                drawn = np.concatenate([members[k] for k in cluster_idx[r]])
                stats.append(np.mean([np.nanmean(values[a][s, drawn]) for s in seeds]))
            out[a] = np.array(stats)
    return out


@pytest.mark.parametrize("seeds", [1, 2, 4])
@pytest.mark.parametrize("paired", [True, False])
def test_vectorised_bootstrap_matches_a_loop(seeds, paired):
    rng = np.random.default_rng(5)
    clusters = np.array(["x", "y", "y", "z", "z", "z", "z", "w"])  # unequal sizes 1, 2, 4, 1
    values = {"A": rng.random((seeds, 8)), "B": rng.integers(0, 2, (seeds, 8))}
    if not paired:
        values["B"] = rng.random((max(1, seeds - 1), 5))
        clusters = {"A": clusters, "B": np.array([0, 0, 1, 2, 2])}
    units = Units(values, clusters, paired=paired)
    fast, slow = resampled_means(units, ("A", "B"), 300, seed=2), slow_means(units, ("A", "B"), 300, seed=2)
    for arm in ("A", "B"):
        np.testing.assert_allclose(fast[arm], slow[arm], rtol=0, atol=1e-12)
        diff_fast, diff_slow = fast["A"] - fast["B"], slow["A"] - slow["B"]
        np.testing.assert_allclose(percentiles(diff_fast), np.percentile(diff_slow, [2.5, 97.5]), atol=1e-12)


def test_missing_in_a_seed_is_left_out_of_that_seed():
    """``missing="drop"``: a unit both arms have in one seed counts in that seed, not only units every seed has;
    each seed's mean is over its own units, and the bootstrap matches the loop."""
    rng = np.random.default_rng(4)
    a, b = rng.random((3, 60)), rng.random((3, 60))
    a[0, :20] = np.nan  # seed 0 misses the first 20 units in arm A
    b[1, 10:30] = np.nan  # seed 1 misses units 10-29 in arm B
    b[:, 59] = np.nan  # no seed has unit 59 in arm B
    claim = Claim("q", "s", "-", "m", ("A", "B"), missing="drop")
    r = decide(claim, {"m": Units({"A": a, "B": b}, np.repeat(np.arange(12), 5))}, 300)
    gone = np.isnan(a) | np.isnan(b)
    per_seed = [np.mean(a[s][~gone[s]]) for s in range(3)]
    assert r.means["A"] == pytest.approx(np.mean(per_seed)) and r.n_units == 59
    kept = Units({"A": np.where(gone, np.nan, a)[:, :59], "B": np.where(gone, np.nan, b)[:, :59]})
    fast, slow = resampled_means(kept, ("A", "B"), 200, seed=1), slow_means(kept, ("A", "B"), 200, seed=1)
    for arm in ("A", "B"):
        np.testing.assert_allclose(fast[arm], slow[arm], rtol=0, atol=1e-12)
    # a seed with no unit left is not testable, whatever the other seeds hold
    b[2] = np.nan
    r = decide(claim, {"m": Units({"A": a, "B": b})})
    assert r.verdict == NOT_TESTABLE and "a seed has no units left" in r.reason


def test_report_text_and_table():
    r = decide(TASKS, {"m": tasks(np.random.default_rng(2), 0.15)})
    assert re.fullmatch(
        r"\d+\.\d% vs \d+\.\d%: \+\d+\.\d pts \[\d+\.\d, \d+\.\d\], 200 tasks / 40 layouts / 3 seeds", r.ours
    )
    assert r.seed_variance and (r.n_units, r.n_clusters, r.n_seeds) == (200, 40, 3)
    q = decide(QUESTIONS, {"m": questions(np.random.default_rng(2), 0.12)})
    assert q.ours.endswith("300 questions / 1 seed (seed variance not included)") and not q.seed_variance
    table = verdict_table([r, q])
    assert table.count("\n") == 4 and "| **t**: A beats B | - |" in table
    for v in VERDICTS:
        assert f"**{v}**" in HOW_TO_READ


def test_log_scale_ratio_claim():
    """ "CoPE's error is under half the best baseline's": log(mean A) - log(mean B) beyond log 2."""
    half = Claim("r", "under half", "-", "m", ("A", "B"), direction=-1, margin=math.log(2), scale="log")
    rng = np.random.default_rng(4)
    data = {"m": Units({"A": (rng.random(1000) < 0.05).astype(float), "B": (rng.random(1000) < 0.2).astype(float)})}
    r = decide(half, data)
    assert r.verdict == HELD and "ratio 0.2" in r.ours
    assert r.effect == pytest.approx(math.log(data["m"].mean("A") / data["m"].mean("B")))
    zero = decide(half, {"m": Units({"A": np.zeros(1000), "B": data["m"].values["B"]})})
    assert zero.verdict == HELD and zero.effect == -math.inf and "ratio 0.00 [0.00, 0.00]" in zero.ours
    assert decide(half, {"m": Units({"A": np.zeros(9), "B": np.zeros(9)})}).verdict == NOT_TESTABLE
    inf = math.inf
    assert percentiles(np.array([-inf, -inf, 1.0, 2.0, inf]), (0, 25, 40, 50, 62.5, 90)) == (
        -inf,
        -inf,
        -inf,
        1.0,
        1.5,
        inf,
    )
    near = decide(half, {"m": Units({"A": (rng.random(1000) < 0.12).astype(float), "B": data["m"].values["B"]})})
    assert near.verdict == INCONCLUSIVE


def test_unpaired_arms_resample_their_own_units():
    rng = np.random.default_rng(6)
    a = (rng.random((3, 200)) < 0.6).astype(float)
    b = (rng.random((3, 150)) < 0.3).astype(float)
    clusters = {"A": np.repeat(np.arange(40), 5), "B": np.repeat(np.arange(30), 5)}
    r = decide(TASKS, {"m": Units({"A": a, "B": b}, clusters, paired=False)})
    assert r.verdict == HELD and r.effect == pytest.approx(a.mean() - b.mean())
    assert "200+150 tasks / 40+30 layouts / 3 seeds" in r.ours
    with pytest.raises(ValueError, match="paired"):
        decide(TASKS, {"m": Units({"A": a, "B": b}, np.arange(200))})


def test_preconditions():
    u = questions(np.random.default_rng(0), 0.1)
    few = decide(Claim("q", "s", "-", "m", ("A", "B"), preconditions=(min_units(500),)), {"m": u})
    assert few.verdict == NOT_TESTABLE and "fewer than 500" in few.reason
    chance = decide(Claim("q", "s", "-", "m", ("A", "B"), preconditions=(beats_chance(0.9),)), {"m": u})
    assert chance.verdict == NOT_TESTABLE and "chance" in chance.reason

    def custom(units, data):
        return "success rate fell" if data["solved"].mean("A") < data["solved"].mean("B") else None

    data = {"m": u, "solved": Units({"A": np.zeros(300), "B": np.ones(300)})}
    claim = Claim("q", "s", "-", "m", ("A", "B"), preconditions=(custom,))
    assert decide(claim, data).reason == "success rate fell"
    assert decide_all([claim, QUESTIONS], data)[1].verdict in (HELD, INCONCLUSIVE)


def test_claims_are_checked_when_written():
    with pytest.raises(ValueError):
        Claim("x", "s", "-", "m", ("A", "B"), direction=0)
    with pytest.raises(ValueError):
        Claim("x", "s", "-", "m", ("A", "B"), constant=0.01)
    with pytest.raises(ValueError):
        Claim("x", "s", "-", "m", ("A",))
    with pytest.raises(ValueError):
        Claim("x", "s", "-", "m", ("A", "B"), margin=-0.05)
    with pytest.raises(ValueError, match="layouts"):
        decide(TASKS, {"m": questions(np.random.default_rng(0), 0.1)})


def test_per_unit_averages_within_a_unit():
    # task 0 has 4 samples, task 1 one: pooling would give 0.6, the per-unit mean is 0.625
    got = per_unit([1, 1, 1, 0, 0], [0, 0, 0, 0, 1])
    np.testing.assert_allclose(got, [0.75, 0.0])
    np.testing.assert_allclose(per_unit([1, 0], ["b", "a"], units=["b", "c", "a"]), [1.0, np.nan, 0.0])
    with pytest.raises(ValueError):
        per_unit([1.0], ["q"], units=["a"])
