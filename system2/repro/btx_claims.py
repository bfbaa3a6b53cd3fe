"""The claims of Branch-Train-MiX (arXiv 2403.07816) on per-document results, decided on the verdict core
(``verdicts.py``, docs/verdicts.md).

The unit is a validation document (the same documents for every arm, so arms are paired; each domain has the same
number, so the mean over documents is the domain average), its value the mean next-token loss over its tokens;
seeds are an outer level. The loss comparisons are at equal training compute (``6 x active parameters x
tokens``, ``system2.btx.scoring.active_params``):

1. BTX has a lower domain-average validation loss than dense continued training of the seed;
2. than sparse upcycling (every expert a copy of the seed FFN, trained jointly);
3. than Branch-Train-Merge (the dense experts, ensembled per document, no MoE fine-tuning);
4. experts specialise: a document's routed token slots go to its own domain's expert more than the uniform 1/N;
5. load balancing evens usage out: the least-used expert gets more of the slots with it than without;
6. without load balancing an expert is starved: the least-used expert gets under half its uniform share.

Every claim needs training to have taught the arms something: not testable when none of the claim's arms (for the
usage claims: the mixture arm) has a validation loss at least 5% under the seed's (the seed is evaluated as an arm
of its own); "load balancing evens usage" is not testable when both arms already route evenly (the least-used
expert at 90% of the uniform share or more). Which expert is "least used" is chosen per arm and seed on the same
validation documents (the expert with the fewest slots over all of them), a choice that lowers both arms' value
alike. Tags: [V] the paper's abstract,
[S] secondary summaries of the paper, [U] unconfirmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from system2.repro import verdicts as vd

BTX, DENSE, UPCYCLING, BTM, NO_LB, SEED = "btx", "dense", "upcycling", "btm", "btx no-LB", "seed"
STARVED = 0.5  # starved: under this fraction of the uniform share 1/N
LEARNED = 0.05  # an arm learned the domains when its loss is at least this fraction under the seed's
EVEN = 0.9  # usage is even when the least-used expert gets at least this fraction of the uniform share


def claim_data(rows: dict[str, Sequence[Sequence[dict[str, Any]]]], n_experts: int) -> dict[str, vd.Units]:
    """``rows[arm][seed]``: one row per validation document (``id``, ``domain``, ``own``: the index of the domain's
    expert, ``nll``, ``tokens``, ``usage`` for mixtures). Returns the loss of every arm, the own-expert share and
    the least-used expert's share of every mixture arm, and 1/N for reference."""
    loss = vd.units_from_rows(rows, lambda r: r["nll"] / max(r["tokens"], 1), "id")
    mixtures = {a: seeds for a, seeds in rows.items() if all("usage" in r for s in seeds for r in s)}
    data = {"loss": loss}
    if mixtures:
        data["own expert share"] = vd.units_from_rows(mixtures, lambda r: r["usage"][r["own"]], "id")
        least = {arm: [_least_used(seed) for seed in seeds] for arm, seeds in mixtures.items()}
        data["least-used expert share"] = vd.units_from_rows(least, lambda r: r["least"], "id")
    return data


def _least_used(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    usage = np.array([r["usage"] for r in rows])
    e = int(usage.mean(0).argmin())
    return [{"id": r["id"], "least": float(u[e])} for r, u in zip(rows, usage, strict=True)]


def learned(*arms: str) -> vd.Precondition:
    """Not testable unless one of ``arms`` has a validation loss at least ``LEARNED`` under the seed's."""

    def check(units: vd.Units, data: Any) -> str | None:
        loss = data["loss"]
        if SEED not in loss.values:
            return "the seed was not evaluated: nothing shows that training taught the arms anything"
        seed, best = loss.mean(SEED), min(loss.mean(a) for a in arms)
        if best > (1 - LEARNED) * seed:
            return (f"no arm of {', '.join(arms)} has a loss {LEARNED:.0%} under the seed's ({best:.3g} vs "
                    f"{seed:.3g}): training taught them nothing to compare")  # fmt: skip
        return None

    return check


def claims(n_experts: int) -> list[vd.Claim]:
    uniform = 1.0 / n_experts

    def beats(other: str, name: str, paper: str) -> vd.Claim:
        return vd.Claim(f"BTX beats {name}", f"BTX has a lower domain-average validation loss than {name} at equal "
                        "training compute", paper, metric="loss", arms=(BTX, other), direction=-1, unit="documents",
                        preconditions=(learned(BTX, other),), percent=False)  # fmt: skip

    return [
        beats(DENSE, "dense continued training", "BTX achieves the best accuracy-efficiency tradeoff [V: abstract]"),
        beats(UPCYCLING, "sparse upcycling", "BTX 47.9 vs sparse upcycling 46.3 average [S]"),
        beats(BTM, "Branch-Train-Merge", "BTX 47.9 vs BTM 43.4 average [S]"),
        vd.Claim("experts specialise", f"a document's routed token slots go to its own domain's expert more than "
                 f"the uniform share 1/{n_experts}", "router usage per domain differs by domain [S]",
                 metric="own expert share", arms=(BTX,), constant=uniform, direction=1, unit="documents",
                 preconditions=(learned(BTX),)),
        vd.Claim("load balancing evens usage", "the least-used expert gets more routed slots with load balancing "
                 "than without", "with load balancing the code expert comes back to life [S]",
                 metric="least-used expert share", arms=(BTX, NO_LB), direction=1, unit="documents",
                 preconditions=(learned(BTX, NO_LB), vd.saturated(0.0, EVEN * uniform))),
        vd.Claim("without load balancing an expert is starved", f"without load balancing the least-used expert gets "
                 f"under {STARVED:.0%} of its uniform share 1/{n_experts}",
                 "without load balancing the code expert is nearly dead [S]", metric="least-used expert share",
                 arms=(NO_LB,), constant=STARVED * uniform, direction=-1, unit="documents",
                 preconditions=(learned(NO_LB),)),
    ]  # fmt: skip


def decide_claims(data: dict[str, vd.Units], n_experts: int, n_resamples: int = 2000) -> list[vd.ClaimVerdict]:
    """Every claim's verdict; a claim on an arm this scale leaves out is not testable, saying which."""
    return vd.decide_all(claims(n_experts), data, n_resamples=n_resamples,
                         absent=lambda c, missing: f"no {', '.join(missing)} arm at this scale")  # fmt: skip
