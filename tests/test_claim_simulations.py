"""Every reproduction's claims on simulated results at the real unit counts, 200 simulated datasets per case.

For each claim: with no effect (or an effect exactly at the claim's margin or bound) "held" comes out in at most 5% of
the datasets; with a clear effect in at least 80%; with the effect reversed "contradicted" in at least 80%; with both
arms saturated (or the claim's precondition otherwise failing) always "not testable". Reports use 2,000 resamples, the
simulations 250 (the rates hold at both). Unit counts are those of the ``small`` scales with 3 seeds: planning 200 test
tasks in 40 wall layouts (5 per layout; bootstrapping rounds: one seed), CoPE 500 test sequences per split (its
language-modelling arm: 142 held-out files), IRPO 500 test questions (and 1,000 training questions with pairs), RL for
reasoning 300, Dualformer for language models 500, reverse training 300 held-out symbolic pairs (a forward and a reverse
question each) and 100 bioS people (3 forward questions clustered by person, 1 reverse), BTX 300 validation documents
(100 per domain), Self-Rewarding and Meta-Rewarding 400 test prompts and
300 judge pairs, LIFT 300 benchmark prompts.

Datasets are simulated as per-unit arrays, the input of each claim's decision; ``test_*_claim_data_*`` check, on
one dataset each, that the reproduction's own ``claim_data`` turns stored per-unit rows into exactly these arrays.
Units have their own difficulty (planning: a layout effect of +-20 pts and a task effect of +-10 pts; reasoning:
a question offset of +-25 pts), each arm adds its shift and a seed effect (+-4 / +-3 pts), and outcomes are drawn
per arm and seed. The clear effects: +15 pts optimal rate (our measured small-scale Dualformer gaps), 45% fewer
search steps (the paper's slow mode), +0.75 distinct optimal plans (no paper figure); CoPE the paper's Table 2/3
error rates; +12 pts accuracy (our measured EI gain over SFT); 0.5 nats of chosen log-prob (sd 2 per question).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from system2.repro import (
    btx_claims,
    cope,
    cope_lm,
    dualformer,
    dualformer_llm,
    irpo_claims,
    lift_claims,
    meta_rewarding_claims,
    reverse_claims,
    searchformer,
    self_rewarding_claims,
    tpo_claims,
)
from system2.repro import rl_reasoning_claims as rl_claims
from system2.repro import verdicts as vd

DATASETS = 200
RESAMPLES = 250
SEEDS = 3


def rates(claim: vd.Claim, make: Callable[[np.random.Generator], Any], datasets: int = DATASETS) -> dict[str, float]:
    """The share of each verdict over ``datasets`` simulated datasets (``make(rng)``: the claim's data)."""
    rng = np.random.default_rng(zlib.crc32(claim.name.encode()))
    got = [vd.decide(claim, make(rng), RESAMPLES, seed=i).verdict for i in range(datasets)]
    return {v: got.count(v) / datasets for v in vd.VERDICTS}


def check(claim: vd.Claim, null, clear, reversed_, saturated) -> None:
    """The four rates every claim must meet; ``null``, ``clear``, ``reversed_``, ``saturated``: data makers."""
    r = rates(claim, null)
    assert r[vd.HELD] <= 0.05, ("null", r)
    r = rates(claim, clear)
    assert r[vd.HELD] >= 0.8 and r[vd.CONTRADICTED] == 0, ("clear", r)
    r = rates(claim, reversed_)
    assert r[vd.CONTRADICTED] >= 0.8 and r[vd.HELD] == 0, ("reversed", r)
    r = rates(claim, saturated, datasets=20)
    assert r[vd.NOT_TESTABLE] == 1, ("saturated", r)


def by_name(claims: list[vd.Claim], name: str) -> vd.Claim:
    return next(c for c in claims if c.name == name)


def draw(rng: np.random.Generator, p: float, offset: np.ndarray, seeds: int, seed_effect: float) -> np.ndarray:
    """0/1 outcomes (seeds, units) at rate ``p`` plus each unit's offset and a seed effect; 0 and 1 are exact."""
    if p in (0.0, 1.0):
        return np.full((seeds, offset.size), p)
    chance = p + offset + rng.uniform(-seed_effect, seed_effect, (seeds, 1))
    return (rng.random((seeds, offset.size)) < chance).astype(float)


def assert_same_units(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, w in want.items():
        if not isinstance(w, vd.Units):
            assert got[key] == w, key
            continue
        g = got[key]
        assert set(g.values) == set(w.values), key
        for arm in w.values:
            np.testing.assert_array_equal(g.arm(arm), w.arm(arm), err_msg=f"{key}/{arm}")
            assert (g.cluster_ids(arm) is None) == (w.cluster_ids(arm) is None), key
            if w.cluster_ids(arm) is not None:  # the same partition into clusters
                assert len(set(zip(g.cluster_ids(arm), w.cluster_ids(arm), strict=True))) == w.n_clusters(arm)


# --- planning: 200 test tasks in 40 layouts ------------------------------------------------------------------------

N_TASKS, N_LAYOUTS = 200, 40
LAYOUT = np.repeat(np.arange(N_LAYOUTS), N_TASKS // N_LAYOUTS)


def planning(
    rng: np.random.Generator, arms: dict[str, dict[str, float]], seeds: int = SEEDS
) -> dict[str, dict[str, np.ndarray]]:
    """Per arm (seeds, tasks) arrays: ``optimal`` (0/1 at the arm's rate ``p``), ``steps`` (search steps of an
    optimal task, a multiple ``steps`` of the task's own; NaN when not optimal), ``plans`` (distinct optimal plans,
    1 + Poisson(0.5 + ``plans``); 0 when not optimal)."""
    offset = rng.uniform(-0.2, 0.2, N_LAYOUTS)[LAYOUT] + rng.uniform(-0.1, 0.1, N_TASKS)
    length = 20 * np.exp(rng.normal(0, 0.3, N_TASKS))
    out: dict[str, dict[str, np.ndarray]] = {"optimal": {}, "steps": {}, "plans": {}}
    for arm, a in arms.items():
        optimal = draw(rng, a.get("p", 0.4), offset, seeds, 0.04)
        steps = length * a.get("steps", 1.0) * np.exp(rng.normal(0, 0.2, (seeds, N_TASKS)))
        plans = 1 + rng.poisson(0.5 + a.get("plans", 0.0), (seeds, N_TASKS))
        out["optimal"][arm] = optimal
        out["steps"][arm] = np.where(optimal > 0, steps, np.nan)
        out["plans"][arm] = np.where(optimal > 0, plans, 0.0)
    return out


def task_rows(sim: dict[str, dict[str, np.ndarray]]) -> dict[str, list[list[dict[str, Any]]]]:
    """The simulated arrays as the task rows the planning reproductions store (``tasks.parquet``)."""
    return {
        arm: [
            [{"task_id": f"t{i}", "layout_id": f"l{LAYOUT[i]}", "optimal": int(o[i] * 8),
              "mean_search_steps_optimal": None if np.isnan(st[i]) else float(st[i]),
              "unique_optimal_plans": int(pl[i])}
             for i in range(N_TASKS)]
            for o, st, pl in zip(sim["optimal"][arm], sim["steps"][arm], sim["plans"][arm], strict=True)
        ]
        for arm in sim["optimal"]
    }  # fmt: skip


def dualformer_units(sim: dict[str, dict[str, np.ndarray]]) -> dict[str, vd.Units]:
    return {
        "optimal": vd.Units(sim["optimal"], LAYOUT),
        "search_steps": vd.Units(sim["steps"], LAYOUT),
        "diversity": vd.Units(sim["plans"], LAYOUT),
    }


def dualformer_data(claim: vd.Claim, a: dict[str, float], b: dict[str, float]) -> Callable:
    return lambda rng: dualformer_units(planning(rng, {claim.arms[0]: a, claim.arms[1]: b}))


def test_dualformer_claim_data_from_task_rows():
    sim = planning(np.random.default_rng(0), {"Dualformer slow": {"p": 0.5}, "Searchformer": {"p": 0.4}})
    assert_same_units(dualformer.claim_data(task_rows(sim)), dualformer_units(sim))


@pytest.mark.parametrize("name", ["slow mode is optimal", "fast mode beats solution-only", "auto mode is optimal"])
def test_dualformer_optimal_claims(name):
    c = by_name(dualformer.CLAIMS, name)
    check(
        c,
        null=dualformer_data(c, {"p": 0.4}, {"p": 0.4}),
        clear=dualformer_data(c, {"p": 0.55}, {"p": 0.4}),
        reversed_=dualformer_data(c, {"p": 0.4}, {"p": 0.55}),
        saturated=dualformer_data(c, {"p": 1.0}, {"p": 1.0}),
    )


@pytest.mark.parametrize("name", ["slow mode searches less", "auto mode searches less"])
def test_dualformer_search_claims(name):
    """Search steps on the tasks both arms solve optimally in a seed; not testable when none are."""
    c = by_name(dualformer.CLAIMS, name)
    check(
        c,
        null=dualformer_data(c, {"p": 0.5}, {"p": 0.5}),
        clear=dualformer_data(c, {"p": 0.5, "steps": 0.545}, {"p": 0.5}),
        reversed_=dualformer_data(c, {"p": 0.5}, {"p": 0.5, "steps": 0.545}),
        saturated=dualformer_data(c, {"p": 0.0}, {"p": 0.0}),
    )


def test_dualformer_diversity_claim():
    c = by_name(dualformer.CLAIMS, "diversity")
    check(
        c,
        null=dualformer_data(c, {"p": 0.5}, {"p": 0.5}),
        clear=dualformer_data(c, {"p": 0.5, "plans": 0.75}, {"p": 0.5}),
        reversed_=dualformer_data(c, {"p": 0.5}, {"p": 0.5, "plans": 0.75}),
        saturated=dualformer_data(c, {"p": 0.0}, {"p": 0.0}),
    )


SIZES = (1000, 3000)


def searchformer_sim(
    rng: np.random.Generator, small=(0.4, 0.4), large=(0.6, 0.6), rounds=({}, {})
) -> tuple[dict[int, dict], dict]:
    """Search-augmented and solution-only models at 1,000 and 3,000 tasks (3 seeds), and the first and last
    bootstrapping rounds (one seed)."""
    levels = zip(SIZES, (small, large), strict=True)
    arms = {n: planning(rng, {"search": {"p": s}, "solution": {"p": o}}) for n, (s, o) in levels}
    return arms, planning(rng, {"round 0": rounds[0], "last round": rounds[1]}, seeds=1)


def searchformer_units(arms: dict[int, dict], boot: dict) -> dict[str, Any]:
    """What the Searchformer claims read, written out from the simulated arrays (a second derivation)."""
    opt = {n: arms[n]["optimal"] for n in SIZES}
    gap = {f"gap at {w}": opt[n]["search"] - opt[n]["solution"] for w, n in (("smallest", 1000), ("largest", 3000))}
    return {
        "sizes": list(SIZES),
        "optimal_small": vd.Units(opt[1000], LAYOUT),
        "gap": vd.Units(gap, LAYOUT),
        "boot_optimal": vd.Units(boot["optimal"], LAYOUT),
        "boot_steps": vd.Units(boot["steps"], LAYOUT),
    }


def searchformer_data(**kw: Any) -> Callable:
    return lambda rng: searchformer_units(*searchformer_sim(rng, **kw))


def test_searchformer_claim_data_from_task_rows():
    arms, boot = searchformer_sim(np.random.default_rng(0), small=(0.6, 0.4), rounds=({"p": 0.5}, {"p": 0.6}))
    rows = {mode: {n: task_rows(arms[n])[mode] for n in SIZES} for mode in ("search", "solution")}
    boot_rows = task_rows(boot)
    got = searchformer.claim_data(rows, [boot_rows["round 0"][0], boot_rows["last round"][0]])
    assert_same_units(got, searchformer_units(arms, boot))


def test_searchformer_advantage_claim():
    check(
        by_name(searchformer.CLAIMS, "search beats solution-only"),
        null=searchformer_data(small=(0.4, 0.4)),
        clear=searchformer_data(small=(0.55, 0.4)),
        reversed_=searchformer_data(small=(0.4, 0.55)),
        saturated=searchformer_data(small=(1.0, 1.0)),
    )


def test_searchformer_gap_claim():
    """The gap per task at the smallest size against the largest: +25 pts shrinking to +5 is the clear case;
    without an advantage at the smallest size the claim is not testable."""
    check(
        by_name(searchformer.CLAIMS, "gap largest at small data"),
        null=searchformer_data(small=(0.55, 0.4), large=(0.55, 0.4)),
        clear=searchformer_data(small=(0.65, 0.4), large=(0.65, 0.6)),
        reversed_=searchformer_data(small=(0.45, 0.4), large=(0.65, 0.4)),
        saturated=searchformer_data(small=(1.0, 1.0), large=(1.0, 1.0)),
    )


def test_searchformer_bootstrap_claims():
    """Bootstrapping (one seed): search steps on tasks solved in both rounds, 27% fewer in the clear case (the
    paper's Sokoban figure); a model that got shorter by failing tasks is not compared. And the optimal rate."""
    check(
        by_name(searchformer.CLAIMS, "bootstrapping shortens search"),
        null=searchformer_data(rounds=({"p": 0.6}, {"p": 0.6})),
        clear=searchformer_data(rounds=({"p": 0.6}, {"p": 0.6, "steps": 0.73})),
        reversed_=searchformer_data(rounds=({"p": 0.6}, {"p": 0.6, "steps": 1 / 0.73})),
        saturated=searchformer_data(rounds=({"p": 0.6}, {"p": 0.3, "steps": 0.73})),
    )
    check(
        by_name(searchformer.CLAIMS, "bootstrapping keeps optimality"),
        null=searchformer_data(rounds=({"p": 0.5}, {"p": 0.5})),
        clear=searchformer_data(rounds=({"p": 0.5}, {"p": 0.65})),
        reversed_=searchformer_data(rounds=({"p": 0.65}, {"p": 0.5})),
        saturated=searchformer_data(rounds=({"p": 1.0}, {"p": 1.0})),
    )


N_LEVELS = 200


def sokoban_data(search: float, solution: float) -> Callable:
    """Table 1 on Sokoban: 200 test levels, each its own unit (no layouts shared), 3 seeds."""

    def make(rng: np.random.Generator) -> dict[str, vd.Units]:
        offset = rng.uniform(-0.25, 0.25, N_LEVELS)
        values = {arm: draw(rng, p, offset, SEEDS, 0.04) for arm, p in (("search", search), ("solution", solution))}
        return {"optimal_sokoban": vd.Units(values)}

    return make


def test_searchformer_sokoban_claim_data_from_task_rows():
    sim = {arm: np.arange(6).reshape(3, 2) % 2 == i for i, arm in enumerate(("search", "solution"))}
    rows = {arm: [[{"task_id": f"l{j}", "layout_id": f"l{j}", "optimal": int(v[j]) * 3} for j in range(2)]
                  for v in sim[arm]] for arm in sim}  # fmt: skip
    maze = {"search": {1: rows["search"]}, "solution": {1: rows["solution"]}}
    boot = [rows["search"][0], rows["search"][1]]
    for r in boot[0] + boot[1]:
        r["mean_search_steps_optimal"] = 1.0
    got = searchformer.claim_data(maze, boot, sokoban=maze)["optimal_sokoban"]
    assert got.cluster_ids("search") is None  # levels are independent units
    for arm in sim:
        np.testing.assert_array_equal(got.arm(arm), sim[arm].astype(float))


def test_searchformer_sokoban_claim():
    """Table 1: 90.8% vs 86.8% optimal (45M). With seeds as the outer level, 3 seeds detect +15 pts (the maze
    claim's clear case) at least 80% of the time, +10 pts about 60%: the paper's +4 pts would need more seeds."""
    check(
        by_name(searchformer.CLAIMS, "Sokoban: search beats solution-only"),
        null=sokoban_data(0.5, 0.5),
        clear=sokoban_data(0.6, 0.45),
        reversed_=sokoban_data(0.45, 0.6),
        saturated=sokoban_data(1.0, 1.0),
    )


# --- CoPE: 500 test sequences per split ----------------------------------------------------------------------------

N_SEQUENCES = 500
READ_BITS = 8  # Flip-Flop read bits per simulated sequence


def cope_sim(rng: np.random.Generator, label: str, errors: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per split and position encoding, every seed's (wrong answer tokens, answer tokens) per test sequence, at
    the arm's error rate on that split (per read bit for Flip-Flop, per sequence otherwise; 0 and 1 exact).
    Sequences differ in difficulty (the rate times a factor in 0.5-1.5)."""
    per_bit = cope.CLAIM_METRIC[cope.SCALES["small"].tasks[label].task.name] == "token_error"
    bits = READ_BITS if per_bit else 1
    out: dict[str, dict[str, Any]] = {}
    for split, arms in errors.items():
        hard = rng.uniform(0.5, 1.5, N_SEQUENCES)
        out[split] = {}
        for pos, p in arms.items():
            q = np.full(N_SEQUENCES, p) if p in (0.0, 1.0) else np.clip(p * hard, 0, 1)
            out[split][pos] = rng.binomial(bits, np.broadcast_to(q, (SEEDS, N_SEQUENCES)))
    return {"bits": bits, "wrong": out}


CHANCE = {"flipflop": 0.5, "selective_copy": 1.0, "counting": 0.8}


def cope_units(label: str, sim: dict[str, Any]) -> dict[str, Any]:
    task = cope.SCALES["small"].tasks[label].task.name
    data: dict[str, Any] = {f"{label}/chance": CHANCE[task]}
    for split, arms in sim["wrong"].items():
        data[f"{label}/{split}"] = vd.Units(
            {pos: w / sim["bits"] if sim["bits"] > 1 else (w > 0).astype(float) for pos, w in arms.items()}
        )
    return data


def cope_data(label: str, split: str, errors: dict[str, float], test: float | None = None) -> Callable:
    """``errors`` on ``split``; on the in-distribution test split every arm errs at ``test`` (default: the same)."""
    splits = {split: errors} if split == "test" else {"test": dict.fromkeys(errors, test), split: errors}
    return lambda rng: cope_units(label, cope_sim(rng, label, splits))


@pytest.mark.parametrize("label", ["flipflop", "counting-3"])
def test_cope_claim_data_from_sequence_results(label):
    splits = {"test": {"cope": 0.05, "abs": 0.2}, "sparse": {"cope": 0.1, "abs": 0.3}}
    sim = cope_sim(np.random.default_rng(0), label, splits)
    runs = {
        pos: [{split: [(int(w), sim["bits"]) for w in sim["wrong"][split][pos][s]] for split in splits}
              for s in range(SEEDS)]
        for pos in ("cope", "abs")
    }  # fmt: skip
    task = cope.SCALES["small"].tasks[label].task.name
    got = cope.claim_data({label: runs}, {label: {"task": task, "splits": list(splits), "chance": CHANCE[task]}})
    assert_same_units(got, cope_units(label, sim))


def cope_claims(kind: str) -> list[str]:
    kinds = {"bound": lambda c: c.constant is not None, "ratio": lambda c: c.scale == "log"}
    pick = kinds.get(kind, lambda c: c.constant is None and c.scale != "log")
    return [c.name for c in cope.CLAIMS if pick(c)]


@pytest.mark.parametrize("name", cope_claims("bound"))
def test_cope_in_distribution_claims(name):
    """At most 1% errors in distribution: an arm at exactly 1% is the null; not testable when nothing learned."""
    c = by_name(cope.CLAIMS, name)
    label = c.metric.split("/")[0]
    check(
        c,
        null=cope_data(label, "test", {"cope": 0.01, "abs": 0.068}),
        clear=cope_data(label, "test", {"cope": 0.0, "abs": 0.068}),
        reversed_=cope_data(label, "test", {"cope": 0.068, "abs": 0.068}),
        saturated=cope_data(label, "test", {"cope": 1.0, "abs": 1.0}),  # no arm beats chance
    )


@pytest.mark.parametrize("name", cope_claims("ratio"))
def test_cope_out_of_distribution_claims(name):
    """Under half the baseline's error: exactly half is the null; the paper's Flip-Flop OOD rates (21.7% vs 4.9%)
    are the clear case; both arms failing every sequence is saturated."""
    c = by_name(cope.CLAIMS, name)
    label, split = c.metric.split("/")
    base = c.arms[1]
    check(
        c,
        null=cope_data(label, split, {"cope": 0.1085, base: 0.217}, test=0.02),
        clear=cope_data(label, split, {"cope": 0.049, base: 0.217}, test=0.02),
        reversed_=cope_data(label, split, {"cope": 0.217, base: 0.049}, test=0.02),
        saturated=cope_data(label, split, {"cope": 1.0, base: 1.0}, test=0.02),
    )


@pytest.mark.parametrize("name", cope_claims("diff"))
def test_cope_counting_claims(name):
    """Counting: the paper's 5-variable rates (RoPE 22.4% vs CoPE 7.4% error) are the clear case."""
    c = by_name(cope.CLAIMS, name)
    label = c.metric.split("/")[0]
    base = c.arms[1]
    check(
        c,
        null=cope_data(label, "test", {"cope": 0.224, base: 0.224}),
        clear=cope_data(label, "test", {"cope": 0.074, base: 0.224}),
        reversed_=cope_data(label, "test", {"cope": 0.224, base: 0.074}),
        saturated=cope_data(label, "test", {"cope": 0.0, base: 0.0}),
    )


# --- CoPE language modelling: 142 held-out documents --------------------------------------------------------------

N_DOCS = 142  # the small scale's scored held-out files (the stdlib of Python 3.11)
UNIGRAM = 3.47  # the small scale's held-out unigram NLL (nats per byte)


def cope_lm_rows(
    rng: np.random.Generator, at_t: dict[str, float], rise: dict[str, float]
) -> dict[str, list[list[dict[str, Any]]]]:
    """``rows[position][seed]`` as ``cope_lm_arm.document_results`` gives them: each document's NLL at T is its own
    difficulty (1.3 +- 0.3 nats) plus the arm's ``at_t`` and a seed effect (+-0.005); at 2T and 4T it moves by the
    arm's ``rise`` (a third of it at 2T) plus per-document noise (sd 0.03 at every length). With a seed effect of
    +-0.01 (a seed-level sd about twice the documents' standard error) the non-inferiority null says held in about
    7% of datasets, not 5%: resampling 3 seeds under-covers when seeds dominate the variance (docs/cope.md)."""
    base = rng.normal(1.3, 0.3, N_DOCS)
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for pos in at_t:
        out[pos] = []
        for _ in range(SEEDS):
            level = base + at_t[pos] + rng.uniform(-0.005, 0.005)
            nll = {f: level + rise[pos] * (f - 1) / 3 + rng.normal(0, 0.03, N_DOCS) for f in (1, 2, 4)}
            out[pos].append([{"doc": f"d{i}", "tokens": 1024, **{f"nll_{f}T": float(nll[f][i]) for f in nll}}
                             for i in range(N_DOCS)])  # fmt: skip
    return out


def cope_lm_data(at_t: dict[str, float], rise: dict[str, float] | None = None, unigram: float = UNIGRAM) -> Callable:
    rise = rise or dict.fromkeys(at_t, 0.0)
    return lambda rng: cope_lm.claim_data(cope_lm_rows(rng, at_t, rise), [1, 2, 4], unigram)


def test_cope_lm_claim_data_from_document_rows():
    rows = cope_lm_rows(np.random.default_rng(0), {"cope": 0.0, "rope": 0.1}, {"cope": 0.0, "rope": 0.3})
    data = cope_lm.claim_data(rows, [1, 2, 4], UNIGRAM)
    arr = {p: {f: np.array([[r[f"nll_{f}T"] for r in seed] for seed in s]) for f in (1, 2, 4)} for p, s in rows.items()}
    want = {f"nll@{f}": vd.Units({p: a[f] for p, a in arr.items()}) for f in (1, 2, 4)}
    want["rise"] = vd.Units({p: a[4] - a[1] for p, a in arr.items()})
    want["nll@1: cope - rope"] = vd.Units({"cope - rope": arr["cope"][1] - arr["rope"][1]})
    assert_same_units(data, {"unigram": UNIGRAM, **want})


def test_cope_lm_non_inferiority_claim():
    """At most 0.02 nats above RoPE at T: exactly at the margin is the null; the paper's code lead (3.9 vs 4.1
    perplexity, -0.05 nats) is the clear case, 0.07 nats beyond the margin the reversed one."""
    c = by_name(cope_lm.CLAIMS, "at T, vs RoPE")
    check(
        c,
        null=cope_lm_data({"cope": cope_lm.MARGIN, "rope": 0.0}),
        clear=cope_lm_data({"cope": -0.05, "rope": 0.0}),
        reversed_=cope_lm_data({"cope": cope_lm.MARGIN + 0.07, "rope": 0.0}),
        saturated=cope_lm_data({"cope": 0.0, "rope": 0.0}, unigram=1.0),  # no arm beats the unigram floor
    )


def test_cope_lm_absolute_claim():
    """Below absolute PE at T: the paper's Wikitext-103 gap (22.55 vs 23.96, -0.061 nats) is the clear case."""
    c = by_name(cope_lm.CLAIMS, "at T, vs absolute")
    gap = float(np.log(22.55 / 23.96))
    check(
        c,
        null=cope_lm_data({"cope": 0.0, "abs": 0.0}),
        clear=cope_lm_data({"cope": gap, "abs": 0.0}),
        reversed_=cope_lm_data({"cope": -gap, "abs": 0.0}),
        saturated=cope_lm_data({"cope": 0.0, "abs": 0.0}, unigram=1.0),
    )


def test_cope_lm_length_claim():
    """Rises less from T to 4T than RoPE: Fig. 3 (CoPE -0.045 nats, relative +0.055 at 2.5x T) is the clear case."""
    c = by_name(cope_lm.CLAIMS, "T to 4T, vs RoPE")
    level = {"cope": 0.0, "rope": 0.0}
    check(
        c,
        null=cope_lm_data(level, {"cope": 0.05, "rope": 0.05}),
        clear=cope_lm_data(level, {"cope": -0.045, "rope": 0.055}),
        reversed_=cope_lm_data(level, {"cope": 0.055, "rope": -0.045}),
        saturated=cope_lm_data(level, {"cope": 0.0, "rope": 0.0}, unigram=1.0),
    )


# --- reasoning: IRPO (500 test questions) and RL for reasoning (300) -----------------------------------------------


def questions(
    rng: np.random.Generator,
    arms: dict[str, dict[str, float]],
    n: int,
    keys: tuple[str, ...] = ("maj@1",),
    spread: float = 0.25,
) -> dict[str, dict[str, np.ndarray]]:
    """Per metric key and arm, (seeds, questions) 0/1 outcomes at the arm's rate (``arm[key]``, default 0.4) plus
    each question's offset (uniform +-``spread``) and a seed effect."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for k in keys:
        offset = rng.uniform(-spread, spread, n)
        out[k] = {}
        for arm, arm_rates in arms.items():
            p = arm_rates.get(k, 0.4)
            if p in (0.0, 1.0):
                out[k][arm] = np.full((SEEDS, n), p)
                continue
            chance = p + offset + rng.uniform(-0.03, 0.03, (SEEDS, 1))
            out[k][arm] = (rng.random((SEEDS, n)) < chance).astype(float)
    return out


def question_rows(sim: dict[str, dict[str, np.ndarray]]) -> dict[str, list[list[dict[str, Any]]]]:
    """The simulated arrays as stored per-question rows (``questions.parquet``)."""
    first = next(iter(sim.values()))
    return {
        arm: [[{"id": f"q{i}", **{k: bool(sim[k][arm][s, i]) for k in sim}} for i in range(first[arm].shape[1])]
              for s in range(SEEDS)]
        for arm in first
    }  # fmt: skip


def irpo_data(accuracy: dict[str, float], logp: dict[str, float] | None = None, trained: int = 1000) -> Callable:
    """IRPO's claim data: greedy accuracy per arm on 500 test questions; per arm the mean change of the chosen
    solutions' log-prob (sd 2 per question) over ``trained`` training questions."""

    def make(rng: np.random.Generator) -> dict[str, vd.Units]:
        acc = questions(rng, {arm: {"maj@1": p} for arm, p in accuracy.items()}, 500)["maj@1"]
        changes = {arm: rng.normal(mu, 2.0, (SEEDS, trained)) for arm, mu in (logp or {"IRPO": 0.0}).items()}
        return irpo_claims.derive({"accuracy": vd.Units(acc), "chosen_logp": vd.Units(changes)})

    return make


def test_irpo_claim_data_from_rows():
    """Per-question rows to Units, the chosen log-prob averaged per question over its pairs (NaN in a seed where
    the question had none), and the gains of the first and last iteration."""
    rng = np.random.default_rng(0)
    sim = questions(rng, {"M_0": {}, "IRPO 1": {}, "IRPO 2": {}, "DPO alone": {}}, 20)
    pairs = [[{"id": "t0", "change": 1.0}, {"id": "t0", "change": 3.0}], [{"id": "t1", "change": -1.0}]]
    got = irpo_claims.claim_data(question_rows(sim), {"IRPO": [pairs[0], pairs[1], pairs[0]]})
    acc = sim["maj@1"]
    want = {
        "accuracy": vd.Units(acc),
        "chosen_logp": vd.Units({"IRPO": np.array([[2.0, np.nan], [np.nan, -1.0], [2.0, np.nan]])}),
        "gains": vd.Units({"first gain": acc["IRPO 1"] - acc["M_0"], "last gain": acc["IRPO 2"] - acc["IRPO 1"]}),
    }
    assert_same_units(got, want)


IRPO_CLAIMS = irpo_claims.claims_for(3)


@pytest.mark.parametrize("name", [c.name for c in IRPO_CLAIMS if c.metric == "accuracy"])
def test_irpo_accuracy_claims(name):
    c = by_name(IRPO_CLAIMS, name)
    a, b = c.arms
    check(
        c,
        null=irpo_data({a: 0.5, b: 0.5}),
        clear=irpo_data({a: 0.62, b: 0.5}),
        reversed_=irpo_data({a: 0.5, b: 0.62}),
        saturated=irpo_data({a: 1.0, b: 1.0}),
    )


def _iterations(m0: float, gains: tuple[float, float, float]) -> dict[str, float]:
    acc, out = m0, {"M_0": m0}
    for t, g in enumerate(gains, 1):
        acc += g
        out[f"IRPO {t}"] = acc
    return out


def test_irpo_gains_claim():
    """The first iteration's gain against the last's, per question; not testable without a first gain."""
    check(
        by_name(IRPO_CLAIMS, "gains shrink"),
        null=irpo_data(_iterations(0.3, (0.1, 0.05, 0.1))),
        clear=irpo_data(_iterations(0.3, (0.2, 0.05, 0.0))),
        reversed_=irpo_data(_iterations(0.25, (0.05, 0.05, 0.2))),
        saturated=irpo_data(_iterations(1.0, (0.0, 0.0, 0.0))),
    )


@pytest.mark.parametrize("name", ["chosen log-prob falls under DPO", "chosen log-prob rises with NLL"])
def test_irpo_logp_claims(name):
    c = by_name(IRPO_CLAIMS, name)
    arm, d = c.arms[0], c.direction
    check(
        c,
        null=irpo_data({"M_0": 0.4}, {arm: 0.0}),
        clear=irpo_data({"M_0": 0.4}, {arm: 0.5 * d}),
        reversed_=irpo_data({"M_0": 0.4}, {arm: -0.5 * d}),
        saturated=irpo_data({"M_0": 0.4}, {arm: 0.5 * d}, trained=5),  # too few training questions
    )


RL_KEYS = rl_claims.METRICS


def rl_data(arms: dict[str, dict[str, float]], **kw: float) -> Callable:
    return lambda rng: rl_claims.derive(
        {k: vd.Units(v) for k, v in questions(rng, {"EI": {}, "SFT": {}, **arms}, 300, RL_KEYS, **kw).items()}
    )


def test_rl_claim_data_from_rows():
    sim = questions(np.random.default_rng(0), {a: {} for a in ("SFT", "EI", "PPO", "PPO dense")}, 30, RL_KEYS)
    want = rl_claims.derive({k: vd.Units(v) for k, v in sim.items()})
    maj, hit = sim["maj@1"], sim["pass@K"]
    np.testing.assert_array_equal(want["gains"].arm("pass@K"), hit["EI"] - hit["SFT"])
    solved_outside = maj["EI"] * (1 - hit["SFT"])
    np.testing.assert_array_equal(want["EI solves"].arm("outside - 10%"), solved_outside - 0.1 * maj["EI"])
    assert_same_units(rl_claims.claim_data(question_rows(sim)), want)


@pytest.mark.parametrize("name", [c.name for c in rl_claims.CLAIMS if c.metric in RL_KEYS])
def test_rl_comparison_claims(name):
    c = by_name(rl_claims.CLAIMS, name)
    a, b = c.arms
    key = c.metric
    hi, lo = (0.52, 0.4) if c.direction > 0 else (0.4, 0.52)
    check(
        c,
        null=rl_data({a: {key: 0.4}, b: {key: 0.4}}),
        clear=rl_data({a: {key: hi}, b: {key: lo}}),
        reversed_=rl_data({a: {key: lo}, b: {key: hi}}),
        saturated=rl_data({a: {key: 1.0}, b: {key: 1.0}}),
    )


def test_rl_pass_at_k_claim():
    """EI's per-question gain over SFT in maj@1 against its gain in pass@K; not testable with pass@K at 100%."""
    check(
        by_name(rl_claims.CLAIMS, "pass@K barely moves"),
        null=rl_data({"SFT": {"maj@1": 0.4, "pass@K": 0.6}, "EI": {"maj@1": 0.5, "pass@K": 0.7}}),
        clear=rl_data({"SFT": {"maj@1": 0.4, "pass@K": 0.6}, "EI": {"maj@1": 0.55, "pass@K": 0.6}}),
        reversed_=rl_data({"SFT": {"maj@1": 0.4, "pass@K": 0.6}, "EI": {"maj@1": 0.4, "pass@K": 0.75}}),
        saturated=rl_data({"SFT": {"maj@1": 0.4, "pass@K": 1.0}, "EI": {"maj@1": 0.55, "pass@K": 1.0}}),
    )


def test_rl_exploration_claim():
    """Under 10% of EI's greedy solves outside SFT's pass@K set: with independent draws that share is SFT's
    pass@K miss rate, so 90% is the null; not testable when EI solves nothing."""
    ei = {"maj@1": 0.5}
    check(
        by_name(rl_claims.CLAIMS, "exploration limit"),
        null=rl_data({"EI": ei, "SFT": {"pass@K": 0.9}}, spread=0.05),
        clear=rl_data({"EI": ei, "SFT": {"pass@K": 0.98}}, spread=0.02),
        reversed_=rl_data({"EI": ei, "SFT": {"pass@K": 0.7}}, spread=0.05),
        saturated=rl_data({"EI": {"maj@1": 0.0}, "SFT": {"pass@K": 0.9}}),
    )


def test_rl_dense_reward_claim():
    """Dense reward raises greedy accuracy by under 10 pts (the finest bound 300 questions x 3 seeds resolve):
    +10 pts is the null, no change the clear case."""
    check(
        by_name(rl_claims.CLAIMS, "dense reward"),
        null=rl_data({"PPO": {"maj@1": 0.4}, "PPO dense": {"maj@1": 0.5}}),
        clear=rl_data({"PPO": {"maj@1": 0.4}, "PPO dense": {"maj@1": 0.4}}),
        reversed_=rl_data({"PPO": {"maj@1": 0.4}, "PPO dense": {"maj@1": 0.6}}),
        saturated=rl_data({"PPO": {"maj@1": 1.0}, "PPO dense": {"maj@1": 1.0}}),
    )


def rl_early(sparse: float, dense: float) -> Callable:
    """The early learning-curve point of the two PPO arms (per question), beside the final metrics."""

    def sim(rng: np.random.Generator) -> dict[str, vd.Units]:
        data = rl_data({"PPO": {}, "PPO dense": {}})(rng)
        early = questions(rng, {"PPO": {"maj@1": sparse}, "PPO dense": {"maj@1": dense}}, 300, ("maj@1",))
        return {**data, rl_claims.EARLY: vd.Units(early["maj@1"])}

    return sim


def test_rl_dense_reward_speeds_learning_claim():
    """At PPO's first held-out evaluation the dense arm is ahead: paired per question over the two PPO arms."""
    check(
        by_name(rl_claims.CLAIMS, "dense reward speeds learning"),
        null=rl_early(0.4, 0.4),
        clear=rl_early(0.4, 0.52),
        reversed_=rl_early(0.52, 0.4),
        saturated=rl_early(1.0, 1.0),
    )


def test_rl_early_curve_units_from_rows():
    sim = questions(np.random.default_rng(0), {a: {} for a in ("SFT", "EI", "PPO", "PPO dense")}, 30, RL_KEYS)
    early = questions(np.random.default_rng(1), {"PPO": {}, "PPO dense": {}}, 30, ("maj@1",))
    rows = question_rows({"maj@1": early["maj@1"]})
    got = rl_claims.claim_data(question_rows(sim), rows)
    np.testing.assert_array_equal(got[rl_claims.EARLY].arm("PPO dense"), early["maj@1"]["PPO dense"])
    assert rl_claims.EARLY not in rl_claims.claim_data(question_rows(sim))  # no curve: the claim is not testable


def rl_gap(sft: float, pretrained: float, ei: float, ei_pretrained: float) -> Callable:
    return rl_data({"SFT": {"maj@1": sft}, "pretrained": {"maj@1": pretrained}, "EI": {"maj@1": ei},
                    "EI from pretrained": {"maj@1": ei_pretrained}})  # fmt: skip


def test_rl_init_gap_claim():
    """The SFT-over-pretrained gap, per question, is smaller after EI from each init than before; not testable when
    the SFT init does not start ahead."""
    check(
        by_name(rl_claims.CLAIMS, "RL narrows the init gap"),
        null=rl_gap(0.5, 0.3, 0.55, 0.35),
        clear=rl_gap(0.5, 0.3, 0.55, 0.5),
        reversed_=rl_gap(0.5, 0.4, 0.6, 0.35),
        saturated=rl_gap(0.3, 0.5, 0.5, 0.45),  # the pretrained init starts ahead: no gap to narrow
    )
    sim = questions(np.random.default_rng(0), {a: {} for a in ("SFT", "pretrained", "EI", "EI from pretrained")}, 30,
                    RL_KEYS)  # fmt: skip
    gap = rl_claims.derive({k: vd.Units(v) for k, v in sim.items()})[rl_claims.INIT_GAP]
    m = sim["maj@1"]
    np.testing.assert_array_equal(gap.arm("gap after") - gap.arm("gap before"),
                                  (m["EI"] - m["EI from pretrained"]) - (m["SFT"] - m["pretrained"]))  # fmt: skip


def test_rl_claims_on_an_arm_the_scale_leaves_out():
    """Without the dense-reward PPO arm (the tiny scale) or the pretrained init, their claims are not testable; the
    others are decided."""
    sim = questions(np.random.default_rng(0), {a: {} for a in ("SFT", "longer SFT", "EI", "PPO", "RCRL")}, 50, RL_KEYS)
    verdicts = {v.name: v for v in rl_claims.decide_claims(rl_claims.derive({k: vd.Units(x) for k, x in sim.items()}))}
    dense = ("dense reward", "dense reward speeds learning")
    assert all(verdicts[n].verdict == vd.NOT_TESTABLE and "PPO dense" in verdicts[n].reason for n in dense)
    gap = verdicts["RL narrows the init gap"]
    assert gap.verdict == vd.NOT_TESTABLE and "EI from pretrained" in gap.reason
    absent = (*dense, gap.name)
    assert all(v.verdict != vd.NOT_TESTABLE for name, v in verdicts.items() if name not in absent)


# --- reverse training: per world, held-out questions at the small scale ----------------------------------------------

# subjects (symbolic: held-out pairs; bios: held-out people) and forward questions per subject
REVERSE_UNITS = {"symbolic": (300, 1), "bios": (100, 3)}


def reverse_sim(
    rng: np.random.Generator, world: str, forward: dict[str, float], reverse: dict[str, float]
) -> dict[str, np.ndarray]:
    """Per direction and arm, (seeds, questions) 0/1 outcomes at the arm's rate times each question's difficulty
    (shared by the arms: a subject factor uniform in 0.75-1.25, which a bioS person's forward questions share,
    times a question factor uniform in 0.75-1.25 for forward questions) and a seed factor (0.95-1.05); rates of
    exactly 0 and 1 are kept exact."""
    n, per = REVERSE_UNITS[world]
    person = rng.uniform(0.75, 1.25, n)
    hard = {"forward": np.repeat(person, per) * rng.uniform(0.75, 1.25, n * per), "reverse": person}
    out: dict[str, Any] = {}
    for d, arms in (("forward", forward), ("reverse", reverse)):
        out[d] = {}
        for arm, p in arms.items():
            if p in (0.0, 1.0):
                out[d][arm] = np.full((SEEDS, hard[d].size), p)
                continue
            chance = np.clip(p * hard[d] * rng.uniform(0.95, 1.05, (SEEDS, 1)), 0, 1)
            out[d][arm] = (rng.random((SEEDS, hard[d].size)) < chance).astype(float)
    return out


def reversal_units(world: str, sim: dict[str, Any]) -> dict[str, vd.Units]:
    n, per = REVERSE_UNITS[world]
    clusters = {"forward": np.repeat(np.arange(n), per), "reverse": np.arange(n)}
    return reverse_claims.derive({f"{world}/{d}": vd.Units(arms, clusters[d]) for d, arms in sim.items()})


def reverse_data(world: str, reverse: dict[str, float], forward: dict[str, float] | None = None) -> Callable:
    """The world's claim data; forward rates default to 50% for every arm."""
    fwd = forward or dict.fromkeys({reverse_claims.STANDARD, *reverse}, 0.5)
    rev = {reverse_claims.STANDARD: 0.0, **reverse}
    return lambda rng: reversal_units(world, reverse_sim(rng, world, fwd, rev))


def test_reverse_claim_data_from_question_rows():
    """Stored question rows (both directions mixed, a subject each) to per-direction Units clustered by subject."""
    world, arms = "bios", ("standard", "entity (data)")
    sim = reverse_sim(np.random.default_rng(0), world, dict.fromkeys(arms, 0.5), dict.fromkeys(arms, 0.3))
    n, per = REVERSE_UNITS[world]
    subjects = {"forward": [f"p{i // per}" for i in range(n * per)], "reverse": [f"p{i}" for i in range(n)]}

    def seed_rows(arm: str, s: int) -> list[dict[str, Any]]:
        return [{"id": f"{d}{i}", "direction": d, "subject": who, "correct": bool(sim[d][arm][s, i])}
                for d in ("forward", "reverse") for i, who in enumerate(subjects[d])]  # fmt: skip

    rows = {arm: [seed_rows(arm, s) for s in range(SEEDS)] for arm in arms}
    got = reverse_claims.claim_data({world: rows})
    assert_same_units(got, reversal_units(world, sim))
    diff = got["bios/forward vs standard"].arm("entity (data) - standard")
    np.testing.assert_array_equal(diff, sim["forward"]["entity (data)"] - sim["forward"]["standard"])


def reverse_kind(claim: vd.Claim) -> str:
    if claim.constant is not None:
        return "bound" if claim.direction < 0 else "forward"
    return "beats"


@pytest.mark.parametrize("name", [c.name for c in reverse_claims.CLAIMS if reverse_kind(c) == "bound"])
def test_reverse_standard_fails_claims(name):
    """Standard training at most 5% in reverse: exactly 5% is the null; not testable when the forward facts were not
    learned (standard training under 20% forward)."""
    c = by_name(reverse_claims.CLAIMS, name)
    world = c.metric.split("/")[0]
    check(
        c,
        null=reverse_data(world, {"standard": 0.05}),
        clear=reverse_data(world, {"standard": 0.0}),
        reversed_=reverse_data(world, {"standard": 0.15}),
        saturated=reverse_data(world, {"standard": 0.0}, forward={"standard": 0.05}),
    )


@pytest.mark.parametrize("name", [c.name for c in reverse_claims.CLAIMS if reverse_kind(c) == "beats"])
def test_reverse_recovery_claims(name):
    """An arm beats another on reverse questions: 15% against 2% is the clear case (the paper's gaps are larger)."""
    c = by_name(reverse_claims.CLAIMS, name)
    world, (a, b) = c.metric.split("/")[0], c.arms
    check(
        c,
        null=reverse_data(world, {a: 0.1, b: 0.1}),
        clear=reverse_data(world, {a: 0.15, b: 0.02}),
        reversed_=reverse_data(world, {a: 0.02, b: 0.15}),
        saturated=reverse_data(world, {a: 0.0, b: 0.0}),
    )
    # forward facts not learned: not testable whatever the reverse rates
    unlearned = reverse_data(world, {a: 0.15, b: 0.02}, forward={"standard": 0.1, a: 0.1, b: 0.1})
    assert rates(c, unlearned, datasets=20)[vd.NOT_TESTABLE] == 1


@pytest.mark.parametrize("name", [c.name for c in reverse_claims.CLAIMS if reverse_kind(c) == "forward"])
def test_reverse_forward_kept_claims(name):
    """At most 10 points below standard training on forward questions: exactly 10 below is the null, no change
    the clear case, 20 below the reversed one."""
    c = by_name(reverse_claims.CLAIMS, name)
    world = c.metric.split("/")[0]
    arm = c.arms[0].removesuffix(" - standard")

    def data(level: float, standard: float = 0.5) -> Callable:
        return reverse_data(world, {arm: 0.1}, forward={"standard": standard, arm: level})

    check(c, null=data(0.4), clear=data(0.5), reversed_=data(0.3), saturated=data(1.0, standard=1.0))
    assert rates(c, data(0.0, standard=0.0), datasets=20)[vd.NOT_TESTABLE] == 1  # forward facts not learned


def test_reverse_claims_on_what_a_scale_leaves_out():
    """Without the bios world (tiny) or the token arm (small) those claims are not testable, saying why."""
    arms = [a for a in reverse_claims.ARMS if not a.startswith("token")]
    data = reversal_units("symbolic", reverse_sim(np.random.default_rng(0), "symbolic", dict.fromkeys(arms, 0.5),
                                                 dict.fromkeys(arms, 0.1)))  # fmt: skip
    verdicts = {v.name: v for v in reverse_claims.decide_claims(data, n_resamples=RESAMPLES)}
    assert verdicts["bios: standard fails in reverse"].reason == "no bios world at this scale"
    token = verdicts["symbolic: forward kept, token (data)"]
    assert token.verdict == vd.NOT_TESTABLE and token.reason == "no token (data) arm on symbolic at this scale"
    decided = [v for n, v in verdicts.items() if n.startswith("symbolic") and "token" not in n]
    assert decided and all(v.verdict != vd.NOT_TESTABLE for v in decided)


# --- Dualformer for language models: 500 test questions ---------------------------------------------------------

DLM = dualformer_llm
DLM_CLAIMS = DLM.claims_for((0.1, 0.2), 8)
DLM_ARMS = (DLM.BASE, "p=0.1", "p=0.2", DLM.ANSWER_ONLY)


def dlm_sim(rng: np.random.Generator, slow: dict[str, float], fast: dict[str, float], steps: dict[str, float],
            n: int = 500) -> dict[str, dict[str, np.ndarray]]:  # fmt: skip
    """Per-question outcomes: slow greedy and pass@K (a question offset of +-25 pts, pass@K 20 pts above greedy),
    fast greedy, and the intermediate steps of each slow greedy response (a question difficulty of +-1 step and
    noise of sd 0.7, rounded, at least 0)."""
    rates = {a: {"maj@1": slow.get(a, 0.5), "pass@K": min(slow.get(a, 0.5) + 0.2, 1.0)} for a in DLM_ARMS[:3]}
    sim = questions(rng, rates, n, ("maj@1", "pass@K"))
    sim["fast"] = questions(rng, {a: {"maj@1": fast.get(a, 0.4)} for a in DLM_ARMS}, n)["maj@1"]
    hard = rng.uniform(-1, 1, n)
    sim["steps"] = {a: np.maximum(0, np.round(steps.get(a, 3.0) + hard + rng.normal(0, 0.7, (SEEDS, n))))
                    for a in DLM_ARMS[:3]}  # fmt: skip
    return sim


def dlm_units(sim: dict[str, dict[str, np.ndarray]]) -> dict[str, vd.Units]:
    right = {a: np.where(sim["maj@1"][a] == 1, sim["steps"][a], np.nan) for a in sim["steps"]}
    return DLM.derive({"slow maj@1": vd.Units(sim["maj@1"]), "slow pass@K": vd.Units(sim["pass@K"]),
                       "slow steps": vd.Units(right), "fast maj@1": vd.Units(sim["fast"])})  # fmt: skip


def dlm_data(slow: dict[str, float] | None = None, fast: dict[str, float] | None = None,
             steps: dict[str, float] | None = None) -> Callable:  # fmt: skip
    return lambda rng: dlm_units(dlm_sim(rng, slow or {}, fast or {}, steps or {}))


def test_dualformer_llm_claim_data_from_question_rows():
    sim = dlm_sim(np.random.default_rng(0), {}, {}, {}, n=30)

    def rows(s: int, arm: str, mode: str) -> list[dict[str, Any]]:
        if mode == "fast":
            return [{"id": f"q{i}", "maj@1": bool(sim["fast"][arm][s, i])} for i in range(30)]
        return [{"id": f"q{i}", "maj@1": bool(sim["maj@1"][arm][s, i]), "pass@8": bool(sim["pass@K"][arm][s, i]),
                 "response_steps": float(sim["steps"][arm][s, i])} for i in range(30)]  # fmt: skip

    slow = {a: [rows(s, a, "slow") for s in range(SEEDS)] for a in DLM_ARMS[:3]}
    fast = {a: [rows(s, a, "fast") for s in range(SEEDS)] for a in DLM_ARMS}
    assert_same_units(DLM.claim_data(slow, fast, 8), dlm_units(sim))


@pytest.mark.parametrize("name", [c.name for c in DLM_CLAIMS if " kept, " in c.name])
def test_dualformer_llm_kept_claims(name):
    """At most 10 points below p=0: exactly 10 below is the null, no change the clear case, 20 below reversed."""
    c = by_name(DLM_CLAIMS, name)
    arm = c.arms[0].removesuffix(f" - {DLM.BASE}")
    if "pass@" in name:  # pass@K sits 20 points above greedy in the simulation

        def data(level: float, base: float = 0.5) -> Callable:
            return dlm_data({arm: level - 0.2, DLM.BASE: base - 0.2})
    else:

        def data(level: float, base: float = 0.5) -> Callable:
            return dlm_data({arm: level, DLM.BASE: base})

    check(c, null=data(0.4), clear=data(0.5), reversed_=data(0.3), saturated=data(1.0, base=1.0))


@pytest.mark.parametrize("name", [c.name for c in DLM_CLAIMS if c.name.startswith("shorter chains")])
def test_dualformer_llm_shorter_chains_claims(name):
    """Fewer intermediate steps on the questions both arms answer right: 20% fewer (3.0 -> 2.4) is the clear case;
    with almost no question right in both arms, not testable."""
    c = by_name(DLM_CLAIMS, name)
    a, b = c.arms
    check(
        c,
        null=dlm_data(steps={a: 3.0, b: 3.0}),
        clear=dlm_data(steps={a: 2.4, b: 3.0}),
        reversed_=dlm_data(steps={a: 3.6, b: 3.0}),
        saturated=dlm_data({a: 0.0, b: 0.0}, steps={a: 2.4, b: 3.0}),
    )


@pytest.mark.parametrize("name", [c.name for c in DLM_CLAIMS if c.name.startswith("fast beats")])
def test_dualformer_llm_fast_mode_claims(name):
    c = by_name(DLM_CLAIMS, name)
    a, b = c.arms
    check(
        c,
        null=dlm_data(fast={a: 0.4, b: 0.4}),
        clear=dlm_data(fast={a: 0.52, b: 0.4}),
        reversed_=dlm_data(fast={a: 0.4, b: 0.52}),
        saturated=dlm_data(fast={a: 1.0, b: 1.0}),
    )


# --- BTX: 300 validation documents (100 per domain) -------------------------------------------------------------------

BTX_DOCS, BTX_EXPERTS = 300, 3


def btx_data(loss: dict[str, float], seed_loss: float = 1.5, **shares: dict[str, float]) -> Callable:
    """Per-document losses (a document difficulty of +-0.3 nats shared by the arms, a seed effect of +-0.01 and
    noise of sd 0.1 per arm and document) with the seed as an arm; ``own`` / ``least``: per-document expert shares
    (a document effect of +-0.05, a seed effect of +-0.01, noise of sd 0.1, clipped to [0, 1]). The seed effect is
    an assumption until the small run measures it: with seed effects several times the per-document noise, 3 seeds
    resampled hold a null more often than 5% (docs/verdicts.md, "How well it decides")."""

    def make(rng: np.random.Generator) -> dict[str, vd.Units]:
        hard = rng.uniform(-0.3, 0.3, BTX_DOCS)
        means = {btx_claims.SEED: seed_loss, **loss}
        data = {"loss": vd.Units({a: m + hard + rng.uniform(-0.01, 0.01, (SEEDS, 1))
                                  + rng.normal(0, 0.1, (SEEDS, BTX_DOCS)) for a, m in means.items()})}  # fmt: skip
        for key, metric in (("own", "own expert share"), ("least", "least-used expert share")):
            if key in shares:
                doc = rng.uniform(-0.05, 0.05, BTX_DOCS)
                data[metric] = vd.Units({a: np.clip(m + doc + rng.uniform(-0.01, 0.01, (SEEDS, 1))
                                                    + rng.normal(0, 0.1, (SEEDS, BTX_DOCS)), 0, 1)
                                         for a, m in shares[key].items()})  # fmt: skip
        return data

    return make


BTX_CLAIMS = btx_claims.claims(BTX_EXPERTS)


@pytest.mark.parametrize("name", [c.name for c in BTX_CLAIMS if c.metric == "loss"])
def test_btx_loss_claims(name):
    """BTX has a lower validation loss than a baseline: 0.08 nats lower is the clear case (no paper figure in
    nats); neither arm 5% under the seed's loss is not testable."""
    c = by_name(BTX_CLAIMS, name)
    a, b = c.arms
    check(
        c,
        null=btx_data({a: 1.0, b: 1.0}),
        clear=btx_data({a: 0.92, b: 1.0}),
        reversed_=btx_data({a: 1.08, b: 1.0}),
        saturated=btx_data({a: 1.45, b: 1.46}),
    )


def test_btx_specialisation_claim():
    c = by_name(BTX_CLAIMS, "experts specialise")
    learned = {btx_claims.BTX: 1.0}
    check(
        c,
        null=btx_data(learned, own={btx_claims.BTX: 1 / 3}),
        clear=btx_data(learned, own={btx_claims.BTX: 0.45}),
        reversed_=btx_data(learned, own={btx_claims.BTX: 0.25}),
        saturated=btx_data({btx_claims.BTX: 1.49}, own={btx_claims.BTX: 0.45}),
    )


def test_btx_load_balancing_claims():
    """Load balancing evens usage (both arms over 90% of the uniform share: not testable) and an expert starves
    without it (exactly half the uniform share is the null)."""
    a, b = btx_claims.BTX, btx_claims.NO_LB
    learned = {a: 1.0, b: 1.0}
    check(
        by_name(BTX_CLAIMS, "load balancing evens usage"),
        null=btx_data(learned, least={a: 0.2, b: 0.2}),
        clear=btx_data(learned, least={a: 0.28, b: 0.18}),
        reversed_=btx_data(learned, least={a: 0.18, b: 0.28}),
        saturated=btx_data(learned, least={a: 0.32, b: 0.32}),
    )
    check(
        by_name(BTX_CLAIMS, "without load balancing an expert is starved"),
        null=btx_data(learned, least={b: 0.5 / 3}),
        clear=btx_data(learned, least={b: 0.05}),
        reversed_=btx_data(learned, least={b: 0.3}),
        saturated=btx_data({b: 1.49}, least={b: 0.05}),
    )


def test_btx_claim_data_from_document_rows():
    """Stored validation rows to per-document loss (nats per token), own-expert share and the share of each arm's
    least-used expert (chosen per seed over all documents)."""
    rng = np.random.default_rng(0)
    domains = ("arith", "code", "facts")

    def seed_rows(mixture: bool) -> list[dict[str, Any]]:
        usage = rng.dirichlet([1.0, 2.0, 3.0], 12)  # expert 0 the least used
        return [{"id": f"{domains[i % 3]}{i}", "domain": domains[i % 3], "own": i % 3, "nll": float(rng.uniform(5, 9)),
                 "tokens": int(rng.integers(4, 9)), **({"usage": usage[i].tolist()} if mixture else {})}
                for i in range(12)]  # fmt: skip

    rows = {"seed": [seed_rows(False) for _ in range(2)], "btx": [seed_rows(True) for _ in range(2)]}
    got = btx_claims.claim_data(rows, 3)
    for arm, seeds in rows.items():
        want = [[r["nll"] / r["tokens"] for r in s] for s in seeds]
        np.testing.assert_allclose(got["loss"].arm(arm), want)
    assert set(got["own expert share"].values) == {"btx"}
    own = [[r["usage"][r["own"]] for r in s] for s in rows["btx"]]
    np.testing.assert_allclose(got["own expert share"].arm("btx"), own)
    for s, seed in enumerate(rows["btx"]):
        usage = np.array([r["usage"] for r in seed])
        least = usage[:, usage.mean(0).argmin()]
        assert usage.mean(0).argmin() == 0 or np.isclose(least.mean(), usage.mean(0).min())
        np.testing.assert_allclose(got["least-used expert share"].arm("btx")[s], least)


# --- Self-Rewarding: 400 test prompts, 300 judge pairs -----------------------------------------------------------

SR_PROMPTS, SR_PAIRS = 400, 300
SR_CLAIMS = self_rewarding_claims.claims("M3")


def sr_data(win: float = 0.3, loss: float = 0.3, agree: dict[str, float] | None = None,
            words: dict[str, float] | None = None, m1_score: float = 0.7) -> Callable:  # fmt: skip
    """Self-Rewarding's claim data: per test prompt M3's oracle outcome against M1 (win / loss probabilities, the rest
    ties; each prompt's own tilt of +-0.1 and a seed effect of +-0.03 moved from loss to win), M1's oracle score
    (fraction of 5) for the room precondition, per judge pair 0/1 agreement at each model's rate (a pair offset of
    +-0.2) and per prompt words (a prompt offset of +-2 words, noise of sd 1)."""
    agree = agree or {"M1": 0.7, "M3": 0.7}
    words = words or {"M1": 4.0, "M3": 4.0}

    def make(rng: np.random.Generator) -> dict[str, vd.Units]:
        tilt = rng.uniform(-0.1, 0.1, SR_PROMPTS) + rng.uniform(-0.03, 0.03, (SEEDS, 1))
        u = rng.random((SEEDS, SR_PROMPTS))
        outcome = np.where(u < win + tilt / 2, 1.0, np.where(u > 1 - loss + tilt / 2, 0.0, 0.5))
        spread = min(0.2, 1 - m1_score)  # a perfect M1 scores the maximum on every prompt
        score = np.clip(m1_score + rng.uniform(-spread, spread, SR_PROMPTS), 0, 1) * np.ones((SEEDS, 1))
        pair = rng.uniform(-0.2, 0.2, SR_PAIRS)
        prompt = rng.uniform(-2, 2, SR_PROMPTS)
        return {
            "outcome vs M1": vd.Units({"M3": outcome}),
            "oracle score": vd.Units({"M1": score, "M3": score}),
            "judge agrees": vd.Units({m: draw(rng, p, pair, SEEDS, 0.03) for m, p in agree.items()}),
            "answer words": vd.Units({m: w + prompt + rng.normal(0, 1, (SEEDS, SR_PROMPTS)) for m, w in words.items()}),
        }

    return make


def test_self_rewarding_win_claim():
    """M3 beats M1 on the oracle: 45% wins vs 25% losses is the clear case (a 60% win rate; the paper's AlpacaEval
    rate doubles from M1 to M3); M1 already at the maximum score leaves no room."""
    check(
        by_name(SR_CLAIMS, "M3 wins against M1"),
        null=sr_data(0.3, 0.3),
        clear=sr_data(0.45, 0.25),
        reversed_=sr_data(0.25, 0.45),
        saturated=sr_data(0.45, 0.25, m1_score=1.0),
    )


def test_self_rewarding_judge_claim():
    """The judge agrees with the oracle on more pairs: +10 points is the clear case (the paper: +3 points from a
    higher base, which 300 pairs cannot resolve); M1 agreeing on every pair leaves no room."""
    check(
        by_name(SR_CLAIMS, "the judge improves"),
        null=sr_data(agree={"M1": 0.7, "M3": 0.7}),
        clear=sr_data(agree={"M1": 0.7, "M3": 0.8}),
        reversed_=sr_data(agree={"M1": 0.8, "M3": 0.7}),
        saturated=sr_data(agree={"M1": 1.0, "M3": 1.0}),
    )


def test_self_rewarding_length_claim():
    """Answers get longer: +0.5 words per answer is the clear case (no precondition: length is always measured)."""
    c = by_name(SR_CLAIMS, "answers get longer")
    assert rates(c, sr_data(words={"M1": 4.0, "M3": 4.0}))[vd.HELD] <= 0.05
    r = rates(c, sr_data(words={"M1": 4.0, "M3": 4.5}))
    assert r[vd.HELD] >= 0.8 and r[vd.CONTRADICTED] == 0, r
    r = rates(c, sr_data(words={"M1": 4.5, "M3": 4.0}))
    assert r[vd.CONTRADICTED] >= 0.8 and r[vd.HELD] == 0, r


def test_self_rewarding_claim_data_from_rows():
    """Stored answers (oracle score, words) and judged pairs to the per-unit outcome against M1, M1's score share,
    agreement (a tie or a missing score counts as disagreement) and words; without the oracle only words remain."""
    m1 = [{"id": i, "oracle": o, "words": w} for i, (o, w) in enumerate([(3, 4), (5, 6), (2, 2)])]
    m3 = [{"id": i, "oracle": o, "words": w} for i, (o, w) in enumerate([(4, 5), (5, 6), (1, 3)])]
    pairs = [{"instruction": "a", "score_a": 5, "score_b": 2, "judge_a": 4.0, "judge_b": 1.0},
             {"instruction": "b", "score_a": 1, "score_b": 3, "judge_a": 2.0, "judge_b": 2.0},
             {"instruction": "c", "score_a": 1, "score_b": 3, "judge_a": None, "judge_b": 2.0},
             {"instruction": "d", "score_a": 1, "score_b": 3, "judge_a": 3.0, "judge_b": 1.0}]  # fmt: skip
    got = self_rewarding_claims.claim_data({"M1": [m1], "M3": [m3]}, {"M1": [pairs], "M3": [pairs]})
    np.testing.assert_array_equal(got["outcome vs M1"].arm("M3"), [[1.0, 0.5, 0.0]])
    np.testing.assert_array_equal(got["outcome vs M1"].arm("M1"), [[0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(got["oracle score"].arm("M1"), [[0.6, 1.0, 0.4]])
    np.testing.assert_array_equal(got["judge agrees"].arm("M1"), [[1.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(got["answer words"].arm("M3"), [[5, 6, 3]])
    bare = [[{k: v for k, v in r.items() if k != "oracle"} for r in m1]]
    got = self_rewarding_claims.claim_data({"M1": bare, "M3": bare}, {})
    assert set(got) == {"answer words"}
    verdicts = self_rewarding_claims.decide_claims(got, "M3", n_resamples=50)
    assert [v.verdict for v in verdicts][:2] == [vd.NOT_TESTABLE, vd.NOT_TESTABLE]


# --- Meta-Rewarding: 400 test prompts, 300 judge pairs, every arm from the same M1 -------------------------------

MR_CLAIMS = meta_rewarding_claims.claims()


def mr_data(agree: dict[str, float] | None = None, lc: dict[str, float] | None = None,
            words: dict[str, float] | None = None, stopped: str | None = None) -> Callable:  # fmt: skip
    """Meta-Rewarding's claim data: per judge pair 0/1 agreement per arm (a pair offset of +-0.2, a seed effect of
    +-0.03), per test prompt a length-adjusted outcome per arm (a win/tie/loss around the arm's rate with a prompt
    tilt of +-0.1) and words per answer (a prompt offset of +-2, noise sd 1); every arm trains all 4 iterations but
    ``stopped``, which stops after 2 in its last seed."""
    mc = meta_rewarding_claims
    trained = {a: [4] * SEEDS for a in (mc.SR, mc.SR_LC, mc.MR0, mc.MR)}
    if stopped:
        trained[stopped][-1] = 2
    agree = agree or {mc.SR: 0.7, mc.MR: 0.7}
    lc = lc or {mc.SR_LC: 0.45, mc.MR: 0.45}
    words = words or {mc.MR0: 5.0, mc.MR: 5.0}

    def make(rng: np.random.Generator) -> dict[str, vd.Units]:
        pair = rng.uniform(-0.2, 0.2, SR_PAIRS)
        tilt = rng.uniform(-0.1, 0.1, SR_PROMPTS)
        prompt = rng.uniform(-2, 2, SR_PROMPTS)
        return {
            "judge agrees": vd.Units({a: draw(rng, p, pair, SEEDS, 0.03) for a, p in agree.items()}),
            "length-adjusted outcome vs M1": vd.Units({a: draw(rng, p, tilt, SEEDS, 0.03) for a, p in lc.items()}),
            "answer words": vd.Units({a: w + prompt + rng.normal(0, 1, (SEEDS, SR_PROMPTS)) for a, w in words.items()}),
            mc.TRAINED: {"scheduled": 4, "arms": trained},
        }

    return make


def _rates3(claim: vd.Claim, null: Callable, clear: Callable, reversed_: Callable) -> None:
    """The three rates of ``check`` for a claim with no precondition (nothing to saturate)."""
    assert rates(claim, null)[vd.HELD] <= 0.05
    r = rates(claim, clear)
    assert r[vd.HELD] >= 0.8 and r[vd.CONTRADICTED] == 0, ("clear", r)
    r = rates(claim, reversed_)
    assert r[vd.CONTRADICTED] >= 0.8 and r[vd.HELD] == 0, ("reversed", r)


def test_meta_rewarding_claims():
    """A better judge (+10 points of agreement), a higher length-adjusted win rate (+10 points) and longer answers
    without length control (+0.5 words) are the clear cases; the actor claims are not testable when an arm stopped
    early, however clear its data (the judge claim still is)."""
    mc = meta_rewarding_claims
    c = by_name(MR_CLAIMS, "the meta-judge trains a better judge")
    _rates3(c, mr_data(), mr_data(agree={mc.SR: 0.7, mc.MR: 0.8}), mr_data(agree={mc.SR: 0.8, mc.MR: 0.7}))
    assert rates(c, mr_data(agree={mc.SR: 0.7, mc.MR: 0.8}, stopped=mc.MR), 20)[vd.HELD] >= 0.8
    c = by_name(MR_CLAIMS, "Meta-Rewarding wins at equal length")
    _rates3(c, mr_data(), mr_data(lc={mc.SR_LC: 0.4, mc.MR: 0.5}), mr_data(lc={mc.SR_LC: 0.5, mc.MR: 0.4}))
    for arm in (mc.MR, mc.SR_LC):
        assert rates(c, mr_data(lc={mc.SR_LC: 0.4, mc.MR: 0.5}, stopped=arm), 20)[vd.NOT_TESTABLE] == 1
    assert rates(c, mr_data(lc={mc.SR_LC: 0.4, mc.MR: 0.5}, stopped=mc.MR0), 20)[vd.HELD] >= 0.8  # not its arm
    c = by_name(MR_CLAIMS, "rho = 0 lets answers grow")
    assert rates(c, mr_data(words={mc.MR0: 5.5, mc.MR: 5.0}, stopped=mc.MR0), 20)[vd.NOT_TESTABLE] == 1
    _rates3(c, mr_data(), mr_data(words={mc.MR0: 5.5, mc.MR: 5.0}), mr_data(words={mc.MR0: 5.0, mc.MR: 5.5}))


def test_meta_rewarding_claim_data_and_the_length_adjustment():
    """The length-adjusted values average to the intercept of a least-squares fit of the outcome on the length
    feature (checked against numpy's polyfit), and are the plain outcomes when lengths do not vary."""
    from system2.judges.winrate import length_feature, outcome

    mc = meta_rewarding_claims
    rng = np.random.default_rng(0)
    base = [{"id": i, "oracle": int(rng.integers(0, 6)), "words": int(rng.integers(2, 8))} for i in range(40)]
    arm = [{"id": i, "oracle": int(rng.integers(0, 6)), "words": int(rng.integers(2, 10))} for i in range(40)]
    got = mc.length_adjusted(arm, base)
    y = [outcome(a["oracle"], b["oracle"]) for a, b in zip(arm, base, strict=True)]
    x = length_feature([a["words"] - b["words"] for a, b in zip(arm, base, strict=True)])
    _, intercept = np.polyfit(x, y, 1)
    assert np.mean([g["v"] for g in got]) == pytest.approx(intercept)
    same = [{**a, "words": b["words"]} for a, b in zip(arm, base, strict=True)]
    assert [g["v"] for g in mc.length_adjusted(same, base)] == y
    pairs = [{"instruction": f"i{k}", "score_a": 3, "score_b": 1, "judge_a": 2.0, "judge_b": 1.0} for k in range(3)]
    data = mc.claim_data({mc.M1: [base], mc.MR: [arm]}, {mc.M1: [pairs], mc.MR: [pairs]})
    assert set(data) == {"answer words", "length-adjusted outcome vs M1", "judge agrees", mc.TRAINED}
    assert mc.decide_claims(data, n_resamples=50)[0].verdict == vd.NOT_TESTABLE  # no Self-Rewarding arm here


# --- TPO --------------------------------------------------------------------------------------------------------
TPO_CLAIMS = tpo_claims.claims()
TPO_PROMPTS, TPO_HELPS, TPO_CANNOT = 400, 150, 100  # small: 400 test prompts, 3 of 8 families helped, 2 not


def tpo_data(m0: tuple[float, float] = (0.5, 0.5), last: tuple[float, float] = (0.5, 0.5),
             gains: tuple[float, float] = (0.0, 0.0), words: tuple[float, float] = (5.0, 5.0)) -> Callable:  # fmt: skip
    """TPO's claim data: per test prompt a 0/1 score share for (TPO, Direct) at M0 and at the last iteration (a
    prompt offset of +-0.2, a seed effect of +-0.03); per prompt of each family kind the training gain of TPO over
    Direct (the gap between two such draws around (helps, cannot) + 0.5 and 0.5 at the end, minus the gap between two
    draws around 0.5 at M0); thought words (last, first trained)
    with a prompt offset of +-2 and noise sd 1."""
    tc = tpo_claims

    def make(rng: np.random.Generator) -> dict[str, Any]:
        pair = rng.uniform(-0.2, 0.2, TPO_PROMPTS)
        prompt = rng.uniform(-2, 2, TPO_PROMPTS)

        def gain(g: float, n: int) -> np.ndarray:
            off = rng.uniform(-0.2, 0.2, n)
            end = draw(rng, min(0.5 + g, 1.0), off, SEEDS, 0.03) - draw(rng, 0.5, off, SEEDS, 0.03)
            return end - (draw(rng, 0.5, off, SEEDS, 0.03) - draw(rng, 0.5, off, SEEDS, 0.03))

        return {
            "M0 score": vd.Units({tc.TPO: draw(rng, m0[0], pair, SEEDS, 0.03),
                                  tc.DIRECT: draw(rng, m0[1], pair, SEEDS, 0.03)}),
            "last score": vd.Units({tc.TPO: draw(rng, last[0], pair, SEEDS, 0.03),
                                    tc.DIRECT: draw(rng, last[1], pair, SEEDS, 0.03)}),
            "gain by family kind": vd.Units({tc.HELPS: gain(gains[0], TPO_HELPS),
                                             tc.CANNOT: gain(gains[1], TPO_CANNOT)}, paired=False),
            "thought words": vd.Units({a: w + prompt + rng.normal(0, 1, (SEEDS, TPO_PROMPTS))
                                       for a, w in zip(("last", "first trained"), words, strict=True)}),
            "iterations": 4,
        }  # fmt: skip

    return make


def test_tpo_claims():
    """Thinking 10 points worse at M0 and 10 better at the end, a training gain 30 points larger where thinking helps
    (about the finest 250 unpaired prompts x 3 seeds resolve with the gap at M0 subtracted; 25 points is held two
    times in three), and thoughts a word shorter are the clear cases; both arms at 100% is a ceiling."""
    c = by_name(TPO_CLAIMS, "thinking starts worse")
    check(c, tpo_data(), tpo_data(m0=(0.4, 0.5)), tpo_data(m0=(0.5, 0.4)), tpo_data(m0=(1.0, 1.0)))
    c = by_name(TPO_CLAIMS, "thinking overtakes direct answering")
    check(c, tpo_data(), tpo_data(last=(0.5, 0.4)), tpo_data(last=(0.4, 0.5)), tpo_data(last=(1.0, 1.0)))
    c = by_name(TPO_CLAIMS, "the gain is where thinking helps")
    _rates3(c, tpo_data(), tpo_data(gains=(0.3, 0.0)), tpo_data(gains=(0.0, 0.3)))
    assert rates(c, tpo_data(last=(1.0, 1.0)), 20)[vd.NOT_TESTABLE] == 1  # both arms at the ceiling: no gain to place
    c = by_name(TPO_CLAIMS, "thoughts get shorter")
    _rates3(c, tpo_data(), tpo_data(words=(4.0, 5.0)), tpo_data(words=(5.0, 4.0)))


def test_tpo_claim_data_pairs_prompts_and_splits_families():
    """The claim data from answer rows: scores as shares paired by prompt, the gain split by family kind, the
    thought-words claim not testable before a second iteration."""
    tc = tpo_claims
    fams = ["sum", "copy", "numbers", "lookup"]

    def rows(scores: list[int], words: int = 3) -> list[dict[str, Any]]:
        return [{"id": i, "family": f, "oracle": s, "thought_words": words}
                for i, (f, s) in enumerate(zip(fams, scores, strict=True))]  # fmt: skip

    think = [[rows([1, 5, 2, 3])], [rows([5, 4, 2, 5], 6)]]
    direct = [[rows([2, 5, 2, 3])], [rows([3, 5, 1, 4])]]
    data = tc.claim_data({tc.TPO: think, tc.DIRECT: direct})
    assert data["M0 score"].arm(tc.TPO).tolist() == [[0.2, 1.0, 0.4, 0.6]]
    g = data["gain by family kind"]
    # the gap to Direct at the end minus the gap at M0: sum (+2) - (-1), lookup (+1) - 0; copy (-1) - 0
    assert g.arm(tc.HELPS).tolist() == [[0.6, 0.2]] and g.arm(tc.CANNOT).tolist() == [[-0.2]]
    assert "thought words" not in data
    verdicts = {v.name: v for v in tc.decide_claims(data, n_resamples=50)}
    assert verdicts["thoughts get shorter"].verdict == vd.NOT_TESTABLE
    assert "needs at least 2" in verdicts["thoughts get shorter"].reason
    assert verdicts["the gain is where thinking helps"].verdict == vd.NOT_TESTABLE  # 2 and 1 prompts: too few


# --- LIFT ----------------------------------------------------------------------------------------------------------
LIFT_CLAIMS = lift_claims.claims()
LIFT_PROMPTS = 300  # small: 300 benchmark prompts


def lift_data(violation: tuple[float, float] = (0.5, 0.05), li: tuple[float, float] = (0.3, 0.3),
              head: float = 0.5, ties: float = 0.5) -> Callable:  # fmt: skip
    """LIFT's claim data: per benchmark prompt 0/1 violations and length-instructed outcomes for (LIFT-DPO, DPO),
    each around its rate with a prompt offset of +-0.05 (violations) or +-0.2 (wins) and a seed effect of +-0.03;
    and the plain head-to-head outcome of LIFT-DPO against DPO: a tie (1/2) with probability ``ties``, otherwise a
    win or a loss, the mean ``head``."""
    lc = lift_claims

    def make(rng: np.random.Generator) -> dict[str, Any]:
        small, big = rng.uniform(-0.05, 0.05, LIFT_PROMPTS), rng.uniform(-0.2, 0.2, LIFT_PROMPTS)
        arms = (lc.LIFT, lc.DPO)
        decided = draw(rng, 0.5 + (head - 0.5) / (1 - ties), big, SEEDS, 0.03)
        tied = rng.random((SEEDS, LIFT_PROMPTS)) < ties
        return {
            "violation": vd.Units({a: draw(rng, p, small, SEEDS, 0.03) for a, p in zip(arms, violation, strict=True)}),
            "li win rate": vd.Units({a: draw(rng, p, big, SEEDS, 0.03) for a, p in zip(arms, li, strict=True)}),
            "plain head to head": vd.Units({lc.HEAD_TO_HEAD: np.where(tied, 0.5, decided)}),
        }  # fmt: skip

    return make


def test_lift_claims():
    """Violation rates at the claims' bounds (30%, 10%) are the null cases, 45% and 4% the clear ones; a
    length-instructed win rate 15 points higher is clear; for "quality holds" the null is LIFT-DPO winning exactly
    the margin under half of the plain head-to-heads and the clear case half (half of them tied)."""
    lc = lift_claims
    c = by_name(LIFT_CLAIMS, "standard DPO violates often")
    _rates3(c, lift_data(violation=(0.05, 0.30)), lift_data(violation=(0.05, 0.45)), lift_data(violation=(0.05, 0.15)))
    c = by_name(LIFT_CLAIMS, "LIFT-DPO rarely violates")
    _rates3(c, lift_data(violation=(0.10, 0.5)), lift_data(violation=(0.04, 0.5)), lift_data(violation=(0.2, 0.5)))
    c = by_name(LIFT_CLAIMS, "the length-instructed win rate is higher")
    check(c, lift_data(), lift_data(li=(0.4, 0.25)), lift_data(li=(0.25, 0.4)), lift_data(li=(0.0, 0.0)))
    c = by_name(LIFT_CLAIMS, "quality holds without a length instruction")
    _rates3(c, lift_data(head=0.5 - lc.MARGIN), lift_data(head=0.5), lift_data(head=0.35))


def test_lift_claim_data_pairs_prompts_by_kind():
    """The claim data from benchmark rows: violations and outcomes per prompt of each kind, paired by id, and the
    plain answers compared head to head by their oracle scores."""
    lc = lift_claims

    def rows(violates: list[bool], li: list[float], plain: list[float]) -> list[dict[str, Any]]:
        out = [{"id": f"li-{i}", "kind": "li", "violates": v, "outcome": w, "oracle": 1.0}
               for i, (v, w) in enumerate(zip(violates, li, strict=True))]  # fmt: skip
        out += [{"id": f"li-{i}", "kind": "x2", "violates": True, "outcome": None, "oracle": None} for i in range(2)]
        return out + [{"id": f"li-{i}", "kind": "plain", "violates": False, "outcome": 1.0, "oracle": s}
                      for i, s in enumerate(plain)]  # fmt: skip

    got = lc.claim_data({lc.LIFT: [rows([False, False], [1.0, 0.5], [3.0, 2.0])],
                         lc.DPO: [rows([True, False], [0.0, 0.0], [3.0, 4.0])]})  # fmt: skip
    assert_same_units(got, {
        "violation": vd.Units({lc.LIFT: np.array([[0.0, 0.0]]), lc.DPO: np.array([[1.0, 0.0]])}),
        "li win rate": vd.Units({lc.LIFT: np.array([[1.0, 0.5]]), lc.DPO: np.array([[0.0, 0.0]])}),
        "plain head to head": vd.Units({lc.HEAD_TO_HEAD: np.array([[0.5, 0.0]])}),
    })  # fmt: skip
