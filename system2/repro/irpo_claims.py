"""The claims of the IRPO reproduction (``irpo.py``; docs/selfimprove.md): each one's source in the paper (Table 1
and Fig. 3, GSM8K; ARC for the no-gold arm), the per-question quantities they compare, and their verdicts on the
verdict core (``verdicts.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from system2.repro import verdicts as vd


def decide_claims(
    iterations: int, questions: dict[str, list[list[dict[str, Any]]]], logp: dict[str, list[list[dict[str, Any]]]]
) -> list[vd.ClaimVerdict]:
    """The verdict of every claim of a run of ``iterations`` iterations (``claim_data``'s inputs)."""
    return vd.decide_all(claims_for(iterations), claim_data(questions, logp), absent=_absent)


def _absent(claim: vd.Claim, missing: list[str]) -> str:
    return f"this scale has no {', '.join(missing)} arm (full_sft_steps=0)"


def claim_data(
    questions: dict[str, list[list[dict[str, Any]]]], logp: dict[str, list[list[dict[str, Any]]]]
) -> dict[str, vd.Units]:
    """What the claims compare: ``questions[arm][seed]``, each evaluation's per-question rows (greedy correctness
    ``maj@1``); ``logp[arm][seed]``, per training pair the change of the chosen solution's log-prob (``id``,
    ``change``), for "DPO alone" and "IRPO" (iteration 1, the same pairs)."""
    acc = vd.units_from_rows(questions, lambda r: float(r["maj@1"]), "id")
    ids = sorted({r["id"] for seeds in logp.values() for rows in seeds for r in rows})
    logp_units = vd.Units({
        arm: np.stack([vd.per_unit([r["change"] for r in rows], [r["id"] for r in rows], ids) for rows in seeds])
        for arm, seeds in logp.items()
    })  # fmt: skip
    return derive({"accuracy": acc, "chosen_logp": logp_units})


def derive(data: dict[str, vd.Units]) -> dict[str, vd.Units]:
    """``data`` with the per-question gains of the first and the last IRPO iteration ("gains") when it holds
    the accuracy of M_0 and of every iteration."""
    acc = data["accuracy"]
    its = sorted(int(a.split()[1]) for a in acc.values if a.startswith("IRPO ") and a.split()[1].isdigit())
    chain = ["M_0"] + [f"IRPO {t}" for t in range(1, len(its) + 1)]
    if not its or not all(a in acc.values for a in chain):
        return data
    step = {t: acc.arm(chain[t]) - acc.arm(chain[t - 1]) for t in range(1, len(chain))}
    return {**data, "gains": vd.Units({"first gain": step[1], "last gain": step[len(chain) - 1]})}


def _beats(name: str, statement: str, paper: str, arms: tuple[str, str]) -> vd.Claim:
    return vd.Claim(
        name, statement, paper, metric="accuracy", arms=arms, direction=1, unit="questions",
        preconditions=(vd.saturated(),),
    )  # fmt: skip


def _logp(name: str, statement: str, arm: str, direction: int) -> vd.Claim:
    return vd.Claim(
        name, statement, "Fig. 3 (GSM8K)", metric="chosen_logp", arms=(arm,), constant=0.0, direction=direction,
        unit="training questions", missing="drop", percent=False, preconditions=(vd.min_units(10),),
    )  # fmt: skip


def _first_gain(units: vd.Units, data: Any) -> str | None:
    """Gains can only shrink from a first iteration that raised accuracy."""
    gain = units.mean("first gain")
    return None if gain > 0 else f"iteration 1 did not raise accuracy ({100 * gain:+.1f} pts): no gain to shrink"


PAPER_ACCURACY = ("55.6", "73.1", "78.0", "81.1", "81.6")  # GSM8K, M_0 and iterations 1-4 (Table 1)


def claims_for(iterations: int) -> list[vd.Claim]:
    """The IRPO claims for a run of ``iterations`` iterations."""
    rises = [
        _beats(f"iteration {t} rises", f"IRPO iteration {t} answers more test questions than "
               + ("M_0" if t == 1 else f"iteration {t - 1}"),
               f"{PAPER_ACCURACY[t - 1]} -> {PAPER_ACCURACY[t]}" if t < len(PAPER_ACCURACY) else "-",
               (f"IRPO {t}", "M_0" if t == 1 else f"IRPO {t - 1}"))
        for t in range(1, iterations + 1)
    ]  # fmt: skip
    claims = rises + [
        vd.Claim("gains shrink", f"the last iteration's gain (iteration {iterations}) is smaller than the first's",
                 "+17.5 -> +0.5 pts", metric="gains", arms=("last gain", "first gain"), direction=-1,
                 unit="questions", preconditions=(_first_gain,)),
        _beats("NLL term matters", "IRPO iteration 1 beats DPO without the NLL term", "73.1 vs 61.8 (GSM8K)",
               ("IRPO 1", "DPO alone")),
        _beats("preferences matter", "IRPO iteration 1 beats STaR (SFT on the chosen solutions)", "73.1 vs 65.2",
               ("IRPO 1", "STaR")),
        _beats("beats SFT on gold", "IRPO iteration 1 beats SFT on all gold solutions", "73.1 vs 63.5",
               ("IRPO 1", "SFT on gold")),
        _beats("improves without gold", "IRPO iteration 1 without gold chains among the winners beats M_0",
               "ARC (no gold chains): 77.8 -> 84.8", ("IRPO without gold", "M_0")),
        _logp("chosen log-prob falls under DPO", "under DPO alone the chosen solutions' log-prob falls",
              "DPO alone", -1),
        _logp("chosen log-prob rises with NLL", "with the NLL term the chosen solutions' log-prob rises", "IRPO", 1),
    ]  # fmt: skip
    if iterations >= 2:
        claims.append(_beats("iterations beat more pairs", "two iterations beat one iteration with twice the pairs",
                             "78.0 vs 74.8", ("IRPO 2", "IRPO 2x pairs")))  # fmt: skip
    else:
        claims = [c for c in claims if c.name != "gains shrink"]
    return claims
