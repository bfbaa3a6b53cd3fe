"""TPO's judge, beyond the reward model's training (``system2.judges.reward_model``; docs/tpo.md): its accuracy on
held-out pairs, and pairs made from M0's own outputs ranked by the world's oracle, so that the judge learns to order
outputs like the policy's (ours: the paper's ArmoRM was trained on many models' outputs; a reward model trained only
on the world's synthetic pairs could not order the policy's samples, docs/tpo.md "Calibrating the world").
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from system2.judges.pointwise import Judge
from system2.lm.sampling import SampleConfig, sample_completions
from system2.tasks import thought_data as td
from system2.tasks.thought_world import oracle_score


def judge_accuracy(judge: Judge, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The judge on held-out pairs: the share whose chosen response it scores strictly higher, and the ties."""
    verdicts = judge.score(
        [p["prompt"] for p in pairs] * 2, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    )
    n = len(pairs)
    a, b = [v.mean for v in verdicts[:n]], [v.mean for v in verdicts[n:]]
    return {"judge_accuracy": sum(x is not None and y is not None and x > y for x, y in zip(a, b, strict=True)) / n,
            "judge_ties": sum(x == y for x, y in zip(a, b, strict=True)), "judge_pairs": n}  # fmt: skip


def own_sample_pairs(cfg: Any, data: Any, m0: Path) -> list[dict[str, Any]]:
    """``cfg.rm_own_samples`` fresh prompts (none a test or seed prompt), each answered ``cfg.samples`` times by M0
    directly and as many times after the thought prompt; per prompt and mode the best response part against the
    worst by the oracle (ties skipped), as reward-model pairs (``prompt`` = the instruction)."""
    xs = td.draw(cfg.rm_own_samples, random.Random(f"tpo/{cfg.seed}/rm-own"), data.families, data.excluded,
                 data.world)  # fmt: skip
    model, tok = cfg.load(m0)
    sc = SampleConfig(n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed * 1000 + 999,
                      max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, backend=cfg.backend)  # fmt: skip
    rows = []
    for thinking in (False, True):
        mode = dataclasses.replace(cfg, thinking=thinking)
        outs = sample_completions(model, tok, [mode.prompt(x) for x in xs], sc, chat=cfg.chat,
                                  system=mode.system_turn, progress=False)  # fmt: skip
        for x, cands in zip(xs, outs, strict=True):
            responses = [s[1] for c in cands if not c.truncated and (s := mode.split(c.text))]
            ranked = sorted({r: oracle_score(x, r) for r in responses}.items(), key=lambda t: -t[1])
            if len(ranked) >= 2 and ranked[0][1] > ranked[-1][1]:
                rows.append({"prompt": x, "chosen": ranked[0][0], "rejected": ranked[-1][0], "thinking": thinking})
    return rows
