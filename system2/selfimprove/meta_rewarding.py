"""Meta-Rewarding Language Models (Wu et al., arXiv 2407.19594, Sec. 3; docs/self_rewarding.md, "Meta-Rewarding").

The Self-Rewarding loop (``self_rewarding.py``) with the model also judging its own judgments. Iteration t:
1. actor data as in Self-Rewarding, with the paper's length control: chosen = the shortest candidate in the top score
   band, rejected = the longest in the bottom band (``rho`` per iteration; ``select_pair``), and a length limit on
   the chosen response;
2. judge data (iterations 1..``judge_iterations``): per prompt the candidate whose judgments disagree most; every
   ordered pair of its valid judgments goes to the meta-judge (the same model, ``META:`` prompt); position-weighted
   battle results, a Bradley-Terry fit, chosen = the highest-Elo judgment, rejected = the lowest, dropped when the
   chosen judgment is over the iteration's length limit (``system2.judges.meta``);
3. one DPO run on actor + judge pairs from the previous model.
The paper's schedule (4 iterations; rho 0, 0.32, 0.32, 0.4; judge pairs in iterations 1-2 with chosen judgments of at
most 1,100 and 1,000 characters; chosen responses of at most 2,500 characters in iteration 1) is the paper config
(configs/selfimprove/meta_rewarding_paper.yaml) [S: second-hand]. The paper's Llama-3-8B-Instruct meta-judges zero-shot;
a tiny model trained from scratch is taught by meta-judge seed rows (``system2 instructions meta=N``), our addition.
Stages land in ``iter-T/``: ``disputed.parquet`` (the response per prompt and its judgments), ``meta.parquet`` (the
meta-judge's winners and texts), ``judge_pairs.parquet`` (TRL format), then the shared ``reference`` and ``train/``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from system2.config import ConfigError
from system2.judges import meta
from system2.judges.backends import make_backend
from system2.judges.prompts import META_TEMPLATES, judge_prompt, meta_prompt, parse_score, parse_winner
from system2.selfimprove.dpo import fitting_pairs
from system2.selfimprove.loop import group_by_question
from system2.selfimprove.self_rewarding import SelfRewardingConfig, run_self_rewarding
from system2.selfimprove.self_rewarding_data import SeedData
from system2.selfimprove.stages import cached_rows, sharded_rows
from system2.tasks import instructions


@dataclass
class MetaRewardingConfig(SelfRewardingConfig):
    """Self-Rewarding's settings plus the meta-judge's; ``rho`` defaults to the paper's schedule (an empty ``rho``
    and no judge iterations is Self-Rewarding on the same seed data)."""

    KIND = "meta-rewarding"

    rho: list[float] = field(  # length control per iteration, the last repeats (paper: 0, 0.32, 0.32, 0.4 [S]);
        default_factory=lambda: [0.0, 0.32, 0.32, 0.4]  # empty: Self-Rewarding's max vs min
    )
    meta: str = ""  # meta-judge seed rows (prompt, 'Winner: A|B'); "": DATA/meta.parquet if it exists, else none
    judge_iterations: int = 2  # iterations whose judge pairs are trained (paper: 2, then the meta-judge is biased)
    max_judgment_chars: list[int] = field(  # per iteration: drop judge pairs whose chosen judgment is longer (0: none)
        default_factory=lambda: [1100, 1000]
    )
    meta_template: str = "compact"  # meta-judge prompt: paper | compact | a string with its four fields
    meta_max_new_tokens: int = 8  # longest meta-judgment in tokens (the paper's explain, then 'Winner: ...')

    def validate(self) -> None:
        super().validate()
        if self.judge_iterations < 0 or self.meta_max_new_tokens < 1 or any(c < 0 for c in self.max_judgment_chars):
            raise ConfigError("need judge_iterations >= 0, meta_max_new_tokens >= 1 and max_judgment_chars >= 0")
        if self.judge.backend == "reward_model":
            raise ConfigError("judge.backend=reward_model writes no judgments for a meta-judge to compare: use policy")
        fields = ("{instruction}", "{response}", "{judgment_a}", "{judgment_b}")
        if self.meta_template not in META_TEMPLATES and not all(f in self.meta_template for f in fields):
            raise ConfigError(f"meta_template must be one of {', '.join(META_TEMPLATES)} or contain "
                              f"{', '.join(fields)}, got {self.meta_template!r}")  # fmt: skip

    def seed_data(self) -> SeedData:
        data = super().seed_data()
        path = self.meta or (str(Path(self.data) / "meta.parquet") if self.data else "")
        if not path or (not self.meta and not Path(path).is_file()):
            return data
        try:
            rows = instructions.read_ift(path)  # prompt/completion rows, as IFT
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"meta: {e}") from None
        bad = [i for i, r in enumerate(rows) if parse_winner(r["completion"]) is None]
        if bad:
            raise ConfigError(f"meta: {path}: row {bad[0]}'s completion names no winner: it must end 'Winner: A' "
                              "or 'Winner: B'")  # fmt: skip
        return replace(data, meta=rows)

    def judge_stage(
        self, model: Any, tok: Any, judged: list[dict[str, Any]], it: Path, t: int, progress: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Iteration ``t``'s judge pairs and the meta-judge's statistics (none after ``judge_iterations``)."""
        if t > self.judge_iterations:
            return [], {}
        tasks = cached_rows(it / "disputed.parquet", disputed, self, judged, t)
        backend = make_backend(replace(self.judge, max_new_tokens=self.meta_max_new_tokens), (model, tok), progress,
                               self.backend)  # fmt: skip
        battles = sharded_rows(it / "meta.parquet", tasks, partial(_battles, self, backend, t))
        pairs = cached_rows(it / "judge_pairs.parquet", judge_pairs, self, battles, tok, t)
        return pairs, meta_stats(battles, pairs)


def disputed(cfg: MetaRewardingConfig, judged: list[dict[str, Any]], t: int) -> list[dict[str, Any]]:
    """Per prompt, the candidate whose valid judge scores vary most (ties broken at random, seeded by the run, the
    iteration and the prompt) with its valid judgments; prompts without two valid judgments of one candidate sit
    out. ``first``: the index of the row's first battle in the whole iteration (keys the meta-judge's samples)."""
    rows, first = [], 0
    for qid, group in group_by_question(judged).items():
        i = meta.most_disputed([c["scores"] for c in group], random.Random(f"disputed/{cfg.seed}/{t}/{qid}"))
        if i is None:
            continue
        valid = [j for j in group[i]["judgments"] if parse_score(j) is not None]
        rows.append({"id": qid, "instruction": group[i]["instruction"], "response": group[i]["text"],
                     "judgments": valid, "first": first})  # fmt: skip
        first += len(meta.battle_pairs(len(valid)))
    return rows


def _battles(cfg: MetaRewardingConfig, backend: Any, t: int, part: list, offset: int) -> list[dict[str, Any]]:
    """The meta-judge's verdict on every ordered pair of each row's judgments (one sample each)."""
    prompts = [meta_prompt(r["instruction"], r["response"], r["judgments"][m], r["judgments"][n], cfg.meta_template)
               for r in part for m, n in meta.battle_pairs(len(r["judgments"]))]  # fmt: skip
    texts = backend.generate(prompts, 1, cfg.judge.seed * 1000 + 500 + t, part[0]["first"] if part else 0)
    out, k = [], 0
    for r in part:
        n = len(meta.battle_pairs(len(r["judgments"])))
        said = [x[0] for x in texts[k : k + n]]
        out.append({**r, "meta_judgments": said, "winners": [parse_winner(x) or "" for x in said]})
        k += n
    return out


def judge_pairs(
    cfg: MetaRewardingConfig, battles: list[dict[str, Any]], tokenizer: Any, t: int
) -> list[dict[str, Any]]:
    """The judge's training pairs in TRL's format: the judge prompt of the disputed response, the highest-Elo
    judgment as chosen and the lowest as rejected; dropped per ``judge_pair`` and past ``max_len`` tokens."""
    limit = cfg.max_judgment_chars[t - 1] if t <= len(cfg.max_judgment_chars) else 0
    rows = []
    for b in battles:
        r = meta.battle_matrix(len(b["judgments"]), [w or None for w in b["winners"]])
        pick = meta.judge_pair(b["judgments"], r, limit)
        if pick is None:
            continue
        rows.append({"prompt": judge_prompt(b["instruction"], b["response"], cfg.judge.template),
                     "chosen": b["judgments"][pick.chosen], "rejected": b["judgments"][pick.rejected], "id": b["id"],
                     "instruction": b["instruction"], "role": "judge", "rejected_ends": True})  # fmt: skip
    return fitting_pairs(rows, tokenizer, cfg.max_len, cfg.chat)


def meta_stats(battles: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The meta-judge's iteration: judge pairs, battles it decided, and its positional and score biases over all
    decided battles (the paper: 68% and 97.7% by iteration 2)."""
    first = second = higher = scored = total = 0
    for b in battles:
        r = meta.battle_matrix(len(b["judgments"]), [w or None for w in b["winners"]])
        total += r.size - len(r)
        first, second = first + int((r == 1).sum()), second + int((r == -1).sum())
        h, n = meta.score_battles(b["judgments"], r)
        higher, scored = higher + h, scored + n
    decided = first + second
    return {
        "judge_pairs": len(pairs),
        "meta_battles": total,
        "meta_decided_share": decided / total if total else float("nan"),
        "meta_positional_bias": first / decided if decided else float("nan"),
        "meta_score_bias": higher / scored if scored else float("nan"),
    }


def run_meta_rewarding(cfg: MetaRewardingConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) SFT and every iteration; one result row per model (M1, M2, ...)."""
    return run_self_rewarding(cfg, progress, restart)
