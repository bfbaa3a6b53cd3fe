"""The claims of Meta-Rewarding LMs (arXiv 2407.19594) on per-unit results, decided on the verdict core
(``verdicts.py``, docs/verdicts.md).

Every arm starts from the same M1 (the same seed data, meta-judge seed rows included, and the same seed), so its last
model can be compared with the other arms' last models unit by unit: a held-out test prompt for the actor, a
held-out response pair for the judge; seeds are an outer level.

1. Meta-Rewarding's judge ends more accurate than Self-Rewarding's (per pair: the model's own judge orders it as the
   oracle does; paper: agreement with GPT-4 55.9% for Self-Rewarding vs 61.2% for Meta-Rewarding at iteration 3);
2. Meta-Rewarding ends with a higher length-controlled win rate than Self-Rewarding with length control (per test
   prompt: the oracle outcome against M1's answer, adjusted for the length difference by ``length_adjusted``;
   paper: AlpacaEval 2 LC 39.4 vs 35.5 at iteration 4);
3. without length control answers grow: Meta-Rewarding with rho = 0 ends with more words per answer than with
   rho = 0.3 (paper: length about 2,212 vs 2,003 characters, with LC dropping).

The two actor claims are about the models after the paper's full schedule: they are not testable when an arm stopped
early (its own judge left too few pairs to train on), since its last model then had fewer DPO iterations and the
comparison would be between training budgets. The judge claim needs no such guard: judge training ends after
iteration 2 by the schedule, and a judge that stopped ordering pairs has lost accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from system2.judges.winrate import length_feature, outcome
from system2.repro import verdicts as vd
from system2.repro.self_rewarding_claims import agrees

M1, SR, SR_LC, MR0, MR = "M1", "Self-Rewarding", "Self-Rewarding+LC", "Meta-Rewarding, rho 0", "Meta-Rewarding"
TRAINED = "iterations trained"  # claim data key: {"scheduled": n, "arms": {arm: [iterations trained per seed]}}


def claim_data(
    answers: dict[str, Sequence[Sequence[dict[str, Any]]]],
    judged: dict[str, Sequence[Sequence[dict[str, Any]]]],
    trained: dict[str, Sequence[int]] | None = None,
    scheduled: int = 0,
) -> dict[str, Any]:
    """``answers[arm][seed]``: the arm's last model's rows per test prompt (``id``, ``words``, ``oracle``), M1 as an
    arm; ``judged[arm][seed]``: rows per judge pair; ``trained[arm]``: DPO iterations each seed's arm ran, of
    ``scheduled``. Returns paired units per claim metric, and the iterations under ``TRAINED``."""
    base = answers[M1]
    lc = {arm: [length_adjusted(s, base[i]) for i, s in enumerate(seeds)] for arm, seeds in answers.items()
          if arm != M1}  # fmt: skip
    return {
        "answer words": vd.units_from_rows(answers, lambda r: r["words"], "id"),
        "length-adjusted outcome vs M1": vd.units_from_rows(lc, lambda r: r["v"], "id"),
        "judge agrees": vd.units_from_rows(judged, agrees, "instruction"),
        TRAINED: {"scheduled": scheduled, "arms": dict(trained or {})},
    }


def full_schedule(units: vd.Units, data: dict[str, Any]) -> str | None:
    """Precondition: every seed of the claim's arms ran all scheduled DPO iterations."""
    t = data.get(TRAINED, {})
    short = [f"{a} seed {s}: {n}" for a in units.values for s, n in enumerate(t.get("arms", {}).get(a, []))
             if n < t["scheduled"]]  # fmt: skip
    if not short:
        return None
    return (
        f"an arm stopped before the last of {t['scheduled']} iterations ({', '.join(short)} trained), its own "
        "judge leaving too few pairs; its last model would be compared at a smaller training budget"
    )


def length_adjusted(rows: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per test prompt the oracle outcome against M1's answer minus b x, with x = tanh(word difference / its sd)
    (AlpacaEval 2's length feature, ``system2.judges.winrate``) and b the least-squares slope of the outcomes on x
    over these prompts: the values average to the regression's intercept, the win rate at zero length difference (a
    linear-probability form of the length-controlled win rate that splits into per-prompt units; b is held fixed in
    the bootstrap)."""
    y = np.array([outcome(r["oracle"], b["oracle"]) for r, b in zip(rows, base, strict=True)])
    x = length_feature([r["words"] - b["words"] for r, b in zip(rows, base, strict=True)])
    slope = float(np.cov(x, y, bias=True)[0, 1] / x.var()) if x.var() > 0 else 0.0
    return [{"id": r["id"], "v": float(v)} for r, v in zip(rows, y - slope * x, strict=True)]


def claims() -> list[vd.Claim]:
    return [
        vd.Claim("the meta-judge trains a better judge", f"{MR}'s own judge orders held-out pairs as the oracle does "
                 f"more often than {SR}'s", "agreement with GPT-4: 55.9% (Self-Rewarding) vs 61.2% (Meta-Rewarding), "
                 "iteration 3 [S]", metric="judge agrees", arms=(MR, SR), direction=1, unit="response pairs"),
        vd.Claim("Meta-Rewarding wins at equal length", f"{MR}'s length-adjusted win rate against M1 is higher "
                 f"than {SR_LC}'s", "AlpacaEval 2 LC 39.4 vs 35.5, iteration 4 [S]",
                 metric="length-adjusted outcome vs M1", arms=(MR, SR_LC), direction=1, unit="test prompts",
                 preconditions=(full_schedule,)),
        vd.Claim("rho = 0 lets answers grow", f"{MR0}'s answers have more words than {MR}'s (rho about 0.3)",
                 "length about 2,212 vs 2,003 characters [S]", metric="answer words", arms=(MR0, MR), direction=1,
                 unit="test prompts", percent=False, preconditions=(full_schedule,)),
    ]  # fmt: skip


def decide_claims(data: dict[str, vd.Units], n_resamples: int = 2000) -> list[vd.ClaimVerdict]:
    """Every claim's verdict; a claim on an arm the scale leaves out is not testable, saying which."""
    return vd.decide_all(claims(), data, n_resamples=n_resamples,
                         absent=lambda c, missing: f"no {', '.join(missing)} arm at this scale")  # fmt: skip
