"""The claims of Thinking LLMs / TPO (arXiv 2410.10630) on per-test-prompt results, decided on the verdict core
(``verdicts.py``, docs/verdicts.md).

Both arms (TPO: thought then response; Direct: the paper's baseline on the identical pipeline) start from the same
M0 and are judged by the same reward model, so their models answer the same test prompts and compare prompt by
prompt; seeds are an outer level. Scores are the oracle's 0-5 divided by 5 (a share, so a ceiling is visible).

1. thinking starts below direct answering: M0 with the thought prompt vs M0 answering directly (Table 1: AlpacaEval
   LC 17.3 vs 24.9 for the seed model);
2. thinking overtakes direct answering: the last TPO model vs the last Direct model (Table 2: 52.5 vs 47.0 for
   UltraFeedback + ArmoRM at iteration 3 [V-draft]);
3. the gain concentrates where thinking helps: what TPO's training gained over Direct's, per prompt its gap to Direct
   at the last iteration minus its gap at M0, is larger on prompts of the families where a scratchpad helps (sum,
   sort, lookup) than where it cannot (copy, upper) (the paper: gains largest in some categories, none or losses in
   others, Sec. 4.3). Ours: the gap at M0 is subtracted, so a thought format that costs M0 less on some families
   cannot pass the claim without any training gain;
4. thoughts get shorter: the last TPO model's thoughts have fewer words than the first trained one's (Table 5: 815 ->
   314 characters over 4 iterations; M0's thoughts are the seed data's fillers, so M1 is the start).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from system2.repro import verdicts as vd
from system2.tasks.thought_world import THOUGHT_FAMILIES

TPO, DIRECT = "TPO", "Direct"
ORACLE_JUDGE = "TPO, oracle judge"  # a diagnostic arm, in no claim: what TPO does with a perfect judge
HELPS, CANNOT = "scratchpad helps", "scratchpad cannot help"


def _share(rows: Sequence[dict[str, Any]]) -> list[float]:
    return [r["oracle"] / 5 for r in rows]


def _gap(think: Sequence[dict[str, Any]], direct: Sequence[dict[str, Any]]) -> dict[Any, int]:
    """Per test prompt id, the thinking model's oracle score minus the direct one's."""
    theirs = {r["id"]: r["oracle"] for r in direct}
    return {r["id"]: r["oracle"] - theirs[r["id"]] for r in think}


def claim_data(answers: dict[str, list[list[list[dict[str, Any]]]]]) -> dict[str, Any]:
    """``answers[arm][iteration][seed]``: the rows per test prompt (``id``, ``family``, ``oracle``,
    ``thought_words``) of each model every seed reached, M0 first. Returns the units of every claim."""
    think, direct = answers[TPO], answers[DIRECT]
    last = min(len(think), len(direct)) - 1
    data: dict[str, Any] = {
        "M0 score": vd.units_from_rows({TPO: think[0], DIRECT: direct[0]}, lambda r: r["oracle"] / 5, "id"),
        "last score": vd.units_from_rows({TPO: think[last], DIRECT: direct[last]}, lambda r: r["oracle"] / 5, "id"),
        "iterations": last,
    }
    gains: dict[str, list[np.ndarray]] = {HELPS: [], CANNOT: []}
    for t_last, d_last, t_m0, d_m0 in zip(think[last], direct[last], think[0], direct[0], strict=True):
        start, end = _gap(t_m0, d_m0), _gap(t_last, d_last)
        for kind, helps in ((HELPS, True), (CANNOT, False)):
            picked = [r["id"] for r in t_last if THOUGHT_FAMILIES.get(r["family"]) is helps]
            gains[kind].append(np.array([(end[i] - start[i]) / 5 for i in picked]))
    data["gain by family kind"] = vd.Units({k: np.stack(v) for k, v in gains.items()}, paired=False) \
        if all(len(v) and v[0].size for v in gains.values()) else None  # fmt: skip
    if last >= 2:
        data["thought words"] = vd.units_from_rows({"last": think[last], "first trained": think[1]},
                                                   lambda r: r["thought_words"], "id")  # fmt: skip
    return data


def claims() -> list[vd.Claim]:
    return [
        vd.Claim("thinking starts worse", f"M0 answers worse after the thought prompt ({TPO}) than directly "
                 f"({DIRECT})", "AlpacaEval LC 17.3 vs 24.9 (Table 1) [V-draft]", metric="M0 score",
                 arms=(TPO, DIRECT), direction=-1, unit="test prompts", preconditions=(vd.saturated(),)),
        vd.Claim("thinking overtakes direct answering", f"after the last iteration {TPO} answers better than {DIRECT}",
                 "52.5 vs 47.0 at iteration 3, UltraFeedback + ArmoRM (Table 2) [V-draft]", metric="last score",
                 arms=(TPO, DIRECT), direction=1, unit="test prompts", preconditions=(vd.saturated(),)),
        vd.Claim("the gain is where thinking helps", f"what {TPO}'s training gained over {DIRECT}'s (the gap at the "
                 "last iteration minus the gap at M0) is larger where a scratchpad helps (sum, sort, lookup) than "
                 "where it cannot (copy, upper)", "largest gains in some categories, none "
                 "or losses in others (Sec. 4.3) [V-draft]", metric="gain by family kind", arms=(HELPS, CANNOT),
                 direction=1, unit="test prompts",
                 preconditions=(vd.min_units(10), vd.saturated(on=("last score", (TPO, DIRECT))))),
        vd.Claim("thoughts get shorter", f"the last {TPO} model writes shorter thoughts than the first trained one",
                 "815 -> 314 characters over 4 iterations (Table 5) [V-draft]", metric="thought words",
                 arms=("last", "first trained"), direction=-1, unit="test prompts", percent=False),
    ]  # fmt: skip


def decide_claims(data: dict[str, Any], n_resamples: int = 2000) -> list[vd.ClaimVerdict]:
    """Every claim's verdict; a claim whose units this run lacks is not testable, saying why."""
    out = []
    for c in claims():
        if data.get(c.metric) is None:
            why = {"gain by family kind": "the test prompts lack families where a scratchpad helps or cannot help",
                   "thought words": f"{data['iterations']} iteration(s): needs at least 2"}[c.metric]  # fmt: skip
            out.append(vd.not_testable(c, why))
        else:
            out.append(vd.decide(c, data, n_resamples))
    return out
