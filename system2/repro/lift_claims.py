"""The claims of LIFT ("Following Length Constraints in Instructions", arXiv 2406.17744) on per-benchmark-prompt
results, decided on the verdict core (``verdicts.py``, docs/verdicts.md).

Both arms start from the same M0 and train on the same preference set (LIFT-DPO adds its length-instructed pairs),
so their models answer the same benchmark prompts and compare prompt by prompt; seeds are an outer level.

1. standard DPO violates length limits often: its violation rate's interval lies above 30% (R4 of the design brief;
   the paper: 65.8% for Llama-2-70B with DPO, 58.1% for Llama-3-8B, Table 3 [V-draft]);
2. LIFT-DPO rarely does: its violation rate's interval lies below 10% (7.1% and 6.1%, the same table);
3. LIFT-DPO's length-instructed win rate is higher than standard DPO's (13.6 vs 4.6 and 11.1 vs 5.0);
4. LIFT-DPO keeps quality without a length instruction: on the plain instructions, head to head against standard
   DPO's answer to the same prompt (the oracle decides; a tie counts one half, R4 of the design brief), it wins at
   least 50% - ``MARGIN`` (a non-inferiority claim: the paper finds no loss on plain AlpacaEval 2, Table 6
   [V-draft]).

The length-instructed win-rate claim is not testable when both arms win under 10% or over 97% of the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from system2.judges.winrate import outcome
from system2.repro import verdicts as vd

LIFT, DPO = "LIFT-DPO", "DPO"
MARGIN = 0.05  # "quality holds": LIFT-DPO wins at least 50% - MARGIN head to head against DPO on plain prompts
OFTEN, RARELY = 0.30, 0.10  # the violation-rate bounds of R4
HEAD_TO_HEAD = f"{LIFT} vs {DPO}"


def _of(kind: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["kind"] == kind]


def claim_data(answers: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """``answers[arm][seed]``: each trained model's benchmark rows (``id``, ``kind``, ``violates``, ``outcome``,
    ``oracle``). Returns the units of every claim."""
    li = {arm: [_of("li", s) for s in seeds] for arm, seeds in answers.items()}
    plain = {arm: [_of("plain", s) for s in seeds] for arm, seeds in answers.items()}
    if [[r["id"] for r in s] for s in plain[LIFT]] != [[r["id"] for r in s] for s in plain[DPO]]:
        raise ValueError("the arms answered other plain prompts: they cannot be compared head to head")
    head = [[outcome(a["oracle"], b["oracle"]) for a, b in zip(x, y, strict=True)]
            for x, y in zip(plain[LIFT], plain[DPO], strict=True)]  # fmt: skip
    return {
        "violation": vd.units_from_rows(li, lambda r: float(r["violates"]), "id"),
        "li win rate": vd.units_from_rows(li, lambda r: r["outcome"], "id"),
        "plain head to head": vd.Units({HEAD_TO_HEAD: np.array(head, dtype=float)}),
    }


def claims() -> list[vd.Claim]:
    return [
        vd.Claim("standard DPO violates often", f"{DPO}'s responses exceed the length limit in more than "
                 f"{OFTEN:.0%} of length-instructed prompts", "65.8% (Llama-2-70B), 58.1% (Llama-3-8B) on "
                 "AlpacaEval-LI (Table 3) [V-draft]", metric="violation", arms=(DPO,), constant=OFTEN, direction=1,
                 unit="benchmark prompts"),
        vd.Claim("LIFT-DPO rarely violates", f"{LIFT}'s responses exceed the limit in fewer than {RARELY:.0%} of "
                 "length-instructed prompts", "7.1% (Llama-2-70B), 6.1% (Llama-3-8B) (Table 3) [V-draft]",
                 metric="violation", arms=(LIFT,), constant=RARELY, direction=-1, unit="benchmark prompts"),
        vd.Claim("the length-instructed win rate is higher", f"{LIFT} beats the baseline under the limit more often "
                 f"than {DPO} (a violation loses)", "13.6 vs 4.6 (Llama-2-70B), 11.1 vs 5.0 (Llama-3-8B) "
                 "(Table 3) [V-draft]", metric="li win rate", arms=(LIFT, DPO), direction=1,
                 unit="benchmark prompts", preconditions=(vd.saturated(),)),
        vd.Claim("quality holds without a length instruction", f"on plain instructions {LIFT} wins at least "
                 f"{0.5 - MARGIN:.0%} head to head against {DPO} (ties count one half)", "plain AlpacaEval 2 LC 15.4 "
                 "vs 13.1 (Llama-2-70B), 15.7 vs 13.9 (Llama-3-8B) (Table 6) [V-draft]", metric="plain head to head",
                 arms=(HEAD_TO_HEAD,), constant=0.5 - MARGIN, direction=1, unit="benchmark prompts"),
    ]  # fmt: skip


def decide_claims(data: dict[str, Any], n_resamples: int = 2000) -> list[vd.ClaimVerdict]:
    """Every claim's verdict."""
    return [vd.decide(c, data, n_resamples) for c in claims()]
