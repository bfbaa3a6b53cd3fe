"""The claims of reverse training (arXiv 2403.13799) on per-question results, decided on the verdict core
(``verdicts.py``, docs/verdicts.md).

The unit is a held-out question, scored by greedy exact match; arms are paired (every arm answers the same
questions of the same world), seeds are an outer level, and the questions about one subject (a bioS person's
three attributes) form one cluster. Per world (symbolic, bios):

1. standard training is near 0% on reverse questions: its upper 95% bound is at most 5%;
2. entity-preserving reversal answers more reverse questions than standard training (data- and compute-matched);
3. so does random-segment reversal with segments up to the entity length (k = L);
4. word reversal fails on multi-word names: entity-preserving reversal beats it on reverse questions;
5. forward questions are not hurt: every data-matched reversal arm is at most 10 points below standard training
   on forward questions (10 points: the finest bound 100-300 questions x 3 seeds resolve at mid-range accuracy,
   see tests/test_claim_simulations.py; the paper states no margin).

Every claim needs standard training to have learned the forward facts (at least 20% of the forward questions):
on a world whose facts were not learned, 0% in reverse says nothing about the reversal curse.
A tie at the floor or the ceiling is not testable: both arms of a reverse comparison under 2% (or over 98%), both
arms of a forward comparison over 97%.
Tags: [V] the paper's abstract, [S] secondary summaries of the paper, [U] unconfirmed (figures not checked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from system2.repro import verdicts as vd
from system2.tasks.reversal import DIRECTIONS

STANDARD = "standard"
DATA_ARMS = ("token (data)", "word (data)", "entity (data)", "segment k=L (data)", "segment k=1 (data)")
COMPUTE_ARMS = ("entity (compute)", "segment k=L (compute)")
ARMS = (STANDARD, *DATA_ARMS, *COMPUTE_ARMS)
FORWARD_LEARNED = 0.20  # standard training's forward accuracy below which no claim is testable
REVERSE_BOUND = 0.05  # "near 0%": the upper 95% bound of standard training's reverse accuracy
FORWARD_MARGIN = 0.10  # "not hurt": at most this far below standard training on forward questions
REVERSE_FLOOR = 0.02  # both arms of a reverse comparison under this: a tie at the floor, not testable
WORLD_NOUNS = {"symbolic": "pairs", "bios": "people"}  # what one cluster of questions is about


def claim_data(rows: dict[str, dict[str, Sequence[Sequence[dict[str, Any]]]]]) -> dict[str, vd.Units]:
    """What the claims compare: per world and direction (``"symbolic/reverse"``) the paired ``Units`` of every arm,
    one 0/1 value per question and seed, clustered by the question's subject; and the forward differences
    (``derive``). ``rows[world][arm][seed]``: the arm's ``questions.parquet`` rows (``reverse_arm.evaluate_arm``)."""
    data: dict[str, vd.Units] = {}
    for world, arms in rows.items():
        for d in DIRECTIONS:
            picked = {arm: [[r for r in seed if r["direction"] == d] for seed in seeds] for arm, seeds in arms.items()}
            data[f"{world}/{d}"] = vd.units_from_rows(picked, lambda r: float(r["correct"]), "id", "subject")
    return derive(data)


def derive(data: dict[str, vd.Units]) -> dict[str, vd.Units]:
    """``data`` with, per world, each reversal arm's forward accuracy minus standard training's, per question and
    seed (``"symbolic/forward vs standard"``, arms ``"entity (data) - standard"``, ...)."""
    out = dict(data)
    for key, units in data.items():
        if key.endswith("/forward") and STANDARD in units.values:
            base = units.arm(STANDARD)
            diffs = {f"{a} - {STANDARD}": units.arm(a) - base for a in units.values if a != STANDARD}
            out[f"{key} vs {STANDARD}"] = vd.Units(diffs, clusters=units.clusters)
    return out


def learned_forward(world: str) -> vd.Precondition:
    """Not testable unless standard training answered at least ``FORWARD_LEARNED`` of the world's forward questions."""

    def check(units: vd.Units, data: Any) -> str | None:
        forward = data[f"{world}/forward"]
        if STANDARD not in forward.values:
            return f"no standard arm on {world}: nothing shows the forward facts were learned"
        level = forward.mean(STANDARD)
        if level < FORWARD_LEARNED:
            return (
                f"standard training answered {level:.1%} of the {world} forward questions (under "
                f"{FORWARD_LEARNED:.0%}): the facts were not learned, so reverse accuracy says nothing"
            )
        return None

    return check


def claims_for(world: str) -> list[vd.Claim]:
    """The claims on one world (``symbolic`` or ``bios``)."""
    noun, rev, pre = WORLD_NOUNS[world], f"{world}/reverse", (learned_forward(world),)

    def beats(name: str, statement: str, paper: str, arms: tuple[str, str]) -> vd.Claim:
        return vd.Claim(f"{world}: {name}", statement, paper, metric=rev, arms=arms, direction=1, unit="questions",
                        cluster=noun, preconditions=(*pre, vd.saturated(REVERSE_FLOOR, 0.98)))  # fmt: skip

    def not_hurt(arm: str) -> vd.Claim:
        return vd.Claim(
            f"{world}: forward kept, {arm}",
            f"{arm} answers at most {FORWARD_MARGIN * 100:.0f} points fewer forward questions than standard training",
            "data-matched reverse training is better on standard tasks [V: abstract]",
            metric=f"{world}/forward vs {STANDARD}", arms=(f"{arm} - {STANDARD}",), constant=-FORWARD_MARGIN,
            direction=1, unit="questions", cluster=noun,
            preconditions=(*pre, vd.saturated(on=(f"{world}/forward", (arm, STANDARD)))),
        )  # fmt: skip

    return [
        vd.Claim(f"{world}: standard fails in reverse",
                 f"standard training answers at most {REVERSE_BOUND:.0%} of the reverse questions (upper 95% bound)",
                 "the reversal curse: near 0% [S]", metric=rev, arms=(STANDARD,), constant=REVERSE_BOUND,
                 direction=-1, unit="questions", cluster=noun, preconditions=pre),
        beats("entity reversal recovers", "entity-preserving reversal (data-matched) answers more reverse questions "
              "than standard training", "entity-preserving reversal is among the most effective [S]",
              ("entity (data)", STANDARD)),
        beats("entity reversal recovers, compute-matched", "entity-preserving reversal with standard training's "
              "token budget answers more reverse questions than standard training",
              "compute-matched reverse training is far superior on reversal tasks [V: abstract]",
              ("entity (compute)", STANDARD)),
        beats("random segments recover", "random-segment reversal with segments up to the entity length "
              "(data-matched) answers more reverse questions than standard training",
              "random-segment reversal is among the most effective [S]", ("segment k=L (data)", STANDARD)),
        beats("random segments recover, compute-matched", "random-segment reversal (k = L) with standard training's "
              "token budget answers more reverse questions than standard training",
              "compute-matched reverse training is far superior on reversal tasks [V: abstract]",
              ("segment k=L (compute)", STANDARD)),
        beats("word reversal fails on multi-word names", "entity-preserving reversal answers more reverse questions "
              "than word reversal, which breaks multi-word names", "[U]", ("entity (data)", "word (data)")),
        *(not_hurt(a) for a in DATA_ARMS),
    ]  # fmt: skip


CLAIMS = claims_for("symbolic") + claims_for("bios")


def decide_claims(data: dict[str, vd.Units], n_resamples: int = 2000) -> list[vd.ClaimVerdict]:
    """Every claim's verdict; a claim on a world or an arm this scale leaves out is not testable, saying which."""

    def absent(claim: vd.Claim, missing: list[str]) -> str:
        world = claim.name.split(":")[0]
        if f"{world}/forward" not in data:
            return f"no {world} world at this scale"
        return f"no {', '.join(m.removesuffix(f' - {STANDARD}') for m in missing)} arm on {world} at this scale"

    return vd.decide_all(CLAIMS, data, n_resamples=n_resamples, absent=absent)
