"""The claims of Self-Rewarding LMs (arXiv 2401.10020) on per-unit results, decided on the verdict core
(``verdicts.py``, docs/verdicts.md).

Units: a held-out test prompt (the AlpacaEval analogue: every model answers the same prompts greedily, so models are
paired) and a held-out response pair (the judge evaluation, Table 4's analogue); seeds are an outer level.

1. the final model wins against M1: per test prompt the oracle's outcome of the last model's answer against M1's
   (1 win, 1/2 tie, 0 loss), above 1/2 (paper: AlpacaEval 2 win rate vs GPT-4 Turbo 9.94% -> 20.44% from M1 to M3;
   our baseline is M1 itself, as the issue's "oracle win rate against M1");
2. the judge improves without new EFT data: per held-out pair, whether the model's own judge orders the two
   responses as the oracle does (a tie or an unscored response counts as wrong), the last model above M1 (paper:
   pairwise accuracy 78.7% -> 81.7%, M1 -> M3);
3. answers get longer: words per greedy answer, the last model above M1 (paper: AlpacaEval length 1092 -> 2552
   characters, flagged by the authors).

Claim 1 is not testable when M1 already scores the maximum on nearly every prompt (no room to win), claim 2 when M1's
judge already agrees on nearly every pair; both need the oracle (the instruction world) and the judge pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from system2.judges.winrate import outcome
from system2.repro import verdicts as vd

M1 = "M1"


def claim_data(
    answers: dict[str, Sequence[Sequence[dict[str, Any]]]], judged: dict[str, Sequence[Sequence[dict[str, Any]]]]
) -> dict[str, vd.Units]:
    """``answers[model][seed]``: one row per test prompt (``id``, ``words``, ``oracle`` when scored);
    ``judged[model][seed]``: one row per judge pair (``score_a/b`` the oracle's, ``judge_a/b`` the model's mean
    judgment or None). Returns the paired units of every claim's metric."""
    data = {"answer words": vd.units_from_rows(answers, lambda r: r["words"], "id")}
    if all("oracle" in r for seeds in answers.values() for s in seeds for r in s):
        base = {tuple(r["id"] for r in s): s for s in answers[M1]}
        outcomes = {m: [[{"id": r["id"], "outcome": outcome(r["oracle"], b["oracle"])}
                         for r, b in zip(s, base[tuple(r["id"] for r in s)], strict=True)] for s in seeds]
                    for m, seeds in answers.items()}  # fmt: skip
        data["outcome vs M1"] = vd.units_from_rows(outcomes, lambda r: r["outcome"], "id")
        data["oracle score"] = vd.units_from_rows(answers, lambda r: r["oracle"] / 5, "id")
    if judged and all(seeds and seeds[0] for seeds in judged.values()):
        data["judge agrees"] = vd.units_from_rows(judged, agrees, "instruction")
    return data


def agrees(r: dict[str, Any]) -> float:
    """1 when the judge orders a pair's responses as the oracle does; 0 for the other order, a tie or no score."""
    a, b = r["judge_a"], r["judge_b"]
    if a is None or b is None or a == b:
        return 0.0
    return float((a > b) == (r["score_a"] > r["score_b"]))


def room(metric: str, ceiling: float) -> vd.Precondition:
    """Not testable when M1's mean ``metric`` is already at or above ``ceiling`` (nothing left to improve)."""

    def check(units: vd.Units, data: Any) -> str | None:
        level = data[metric].mean(M1)
        if level >= ceiling:
            return f"M1's {metric} is already {level:.1%}: no room to improve"
        return None

    return check


def claims(last: str) -> list[vd.Claim]:
    """The claims comparing the last model ``last`` (``M3`` with two iterations) with M1."""
    return [
        vd.Claim(f"{last} wins against M1", f"the oracle prefers {last}'s answer to M1's on more than half the test "
                 "prompts (ties count one half)", "AlpacaEval 2 win rate 9.94% (M1) -> 15.38% (M2) -> 20.44% (M3) [S]",
                 metric="outcome vs M1", arms=(last,), constant=0.5, direction=1, unit="test prompts",
                 preconditions=(room("oracle score", 0.97),)),
        vd.Claim("the judge improves", f"{last}'s own judgments order held-out response pairs as the oracle does "
                 "more often than M1's, with no new EFT data", "pairwise accuracy 78.7% (M1) -> 81.7% (M3) [S]",
                 metric="judge agrees", arms=(last, M1), direction=1, unit="response pairs",
                 preconditions=(room("judge agrees", 0.97),)),
        vd.Claim("answers get longer", f"{last}'s greedy answers have more words than M1's",
                 "AlpacaEval length 1092 -> 1552 -> 2552 characters (M1 -> M3) [S]", metric="answer words",
                 arms=(last, M1), direction=1, unit="test prompts", percent=False),
    ]  # fmt: skip


def decide_claims(data: dict[str, vd.Units], last: str, n_resamples: int = 2000) -> list[vd.ClaimVerdict]:
    """Every claim's verdict; a claim whose metric this run lacks (no oracle, no judge pairs) is not testable."""
    return vd.decide_all(claims(last), data, n_resamples=n_resamples,
                         absent=lambda c, missing: f"no {c.metric} for {', '.join(missing)} in this run (it needs the "
                         "instruction world's oracle and the judge pairs)")  # fmt: skip
