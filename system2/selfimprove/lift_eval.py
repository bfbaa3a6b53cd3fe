"""The length-instructed evaluation (LIFT, arXiv 2406.17744, Sec. 3; docs/lift.md), AlpacaEval-LI style.

For every benchmark row (``instruction`` under the length template with limit ``max_len``, ``original_instruction``,
and ``output``, the baseline: the shortest of three reference answers, whose length is the limit) the model answers
greedily:

- ``li``: the length-instructed prompt. A response over the limit (``length.word_count``) is a violation and loses
  without being judged; otherwise the judge compares it with the baseline without seeing the limit [V-draft]: win
  1, tie 1/2, loss 0;
- ``x<s>``: the same instruction with the limit scaled by each of ``limit_scales`` (rounded half up, at least one
  word), limits outside the training range: violations only;
- ``plain``: the original instruction, judged against the same baseline: quality without a length instruction
  (the paper checks it on plain AlpacaEval 2).

The judge is the world's oracle (``eval_oracle``: correct distinct facts minus twice the wrong ones, evaluation
only) or, on other data, a judge model asked in both orders (``judges.pairwise.compare``; a tie when it cannot
decide). Files: ``answers.parquet`` (one row per row and kind) and ``result.json``.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from system2 import dist
from system2.judges.winrate import outcome
from system2.lm.sampling import SampleConfig, sample_completions
from system2.runs import atomic_write_json, read_json
from system2.selfimprove.self_rewarding_eval import ANSWERS, mean_or_nan
from system2.selfimprove.stages import sharded_rows, stage_done
from system2.tasks import knowledge as kw
from system2.tasks.length import length_instruction, word_count

if TYPE_CHECKING:
    from system2.selfimprove.lift import LIFTConfig, LIFTInputs

JUDGED = ("li", "plain")  # the kinds compared with the baseline


def scale_name(scale: float) -> str:
    """The kind of the answers at limits scaled by ``scale`` (``x0.5``)."""
    return f"x{scale:g}"


def jobs(rows: list[dict[str, Any]], scales: list[float]) -> list[dict[str, Any]]:
    """The prompts to answer: per benchmark row its length-instructed prompt, one per scaled limit, and the plain
    instruction."""
    out = []
    for r in rows:
        base = {"id": r["id"], "original": r["original_instruction"], "baseline": r["output"]}
        out.append({**base, "kind": "li", "instruction": r["instruction"], "max_len": r["max_len"]})
        for s in scales:
            limit = max(1, math.floor(r["max_len"] * s + 0.5))  # halves round up
            out.append({**base, "kind": scale_name(s), "instruction": length_instruction(r["original_instruction"],
                        limit), "max_len": limit})  # fmt: skip
        out.append({**base, "kind": "plain", "instruction": r["original_instruction"], "max_len": 0})
    return out


def evaluate(cfg: LIFTConfig, data: LIFTInputs, model_dir: str | Path, out: Path, progress: bool = True
             ) -> dict[str, Any]:  # fmt: skip
    """The evaluation of the model at ``model_dir`` (``cfg``: a ``LIFTConfig``, ``data``: its ``LIFTInputs``),
    cached in ``out``."""
    if stage_done(out / "result.json"):
        return read_json(out / "result.json")
    model, tok = cfg.load(model_dir)
    todo = jobs(data.li_eval, list(cfg.limit_scales))
    answers = sharded_rows(out / ANSWERS, todo, partial(_answer, cfg, model, tok, data.kb, progress))
    result = summary(answers, list(cfg.limit_scales))
    if dist.is_main():
        atomic_write_json(out / "result.json", result)
    dist.barrier()
    return result


def _answer(cfg: LIFTConfig, model: Any, tok: Any, kb: kw.KB | None, progress: bool, part: list[dict[str, Any]],
            offset: int) -> list[dict[str, Any]]:  # fmt: skip
    """Greedy answers to the jobs of ``part``, each with its words, violation and (``li``, ``plain``) outcome."""
    sc = SampleConfig(n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                      batch_size=cfg.batch_size, backend=cfg.backend)  # fmt: skip
    outs = sample_completions(model, tok, [cfg.render(j["instruction"]) for j in part], sc, chat=cfg.chat,
                              prompt_offset=offset, progress=progress, label="benchmark answers")  # fmt: skip
    rows = []
    for j, (c,) in zip(part, outs, strict=True):
        words = word_count(c.text)
        rows.append({"id": j["id"], "kind": j["kind"], "max_len": j["max_len"], "text": c.text,
                     "truncated": c.truncated, "words": words,
                     "violates": bool(j["max_len"]) and words > j["max_len"]})  # fmt: skip
    judged = [i for i, j in enumerate(part) if j["kind"] in JUDGED and not rows[i]["violates"]]
    verdicts = _outcomes(cfg, kb, [part[i] for i in judged], [rows[i]["text"] for i in judged])
    for i, (v, extra) in zip(judged, verdicts, strict=True):
        rows[i].update(outcome=v, judged=v, **extra)
    for i, j in enumerate(part):
        if j["kind"] in JUDGED and rows[i]["violates"]:
            rows[i]["outcome"] = 0.0  # a violation loses, unjudged
    for r in rows:
        r.setdefault("outcome", None)
        r.setdefault("judged", None)
        r.setdefault("oracle", None)
        r.setdefault("baseline_oracle", None)
    return rows


def _outcomes(cfg: LIFTConfig, kb: kw.KB | None, part: list[dict[str, Any]], texts: list[str]
              ) -> list[tuple[float, dict[str, float]]]:  # fmt: skip
    """The judge's outcome of each response against its job's baseline (1 win, 1/2 tie, 0 loss), the limit unseen;
    with the oracle also both scores."""
    if not part:
        return []
    if cfg.eval_oracle:
        out = []
        for j, text in zip(part, texts, strict=True):
            mine, theirs = kw.oracle_score(kb, j["original"], text), kw.oracle_score(kb, j["original"], j["baseline"])
            out.append((outcome(mine, theirs), {"oracle": float(mine), "baseline_oracle": float(theirs)}))
        return out
    from system2.judges.pairwise import compare
    from system2.judges.pointwise import Judge

    judge = Judge.from_config(cfg.judge, None, False, cfg.backend)
    verdicts = compare(judge, [j["original"] for j in part], texts, [j["baseline"] for j in part])
    return [({"a": 1.0, "b": 0.0, None: 0.5}[v.winner], {}) for v in verdicts]


def summary(answers: list[dict[str, Any]], scales: list[float]) -> dict[str, Any]:
    """Violation rates, win rates and lengths per kind (rates are shares of the benchmark's rows)."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in answers:
        by_kind.setdefault(r["kind"], []).append(r)
    li, plain = by_kind.get("li", []), by_kind.get("plain", [])
    result = {
        "rows": len(li),
        "li_violation": mean_or_nan([float(r["violates"]) for r in li]),
        "li_win_rate": mean_or_nan([r["outcome"] for r in li]),
        "li_words": mean_or_nan([r["words"] for r in li]),
        "li_limit": mean_or_nan([r["max_len"] for r in li]),
        "plain_win_rate": mean_or_nan([r["outcome"] for r in plain]),
        "plain_words": mean_or_nan([r["words"] for r in plain]),
    }
    if li and li[0]["oracle"] is not None:
        result["li_oracle"] = mean_or_nan([r["oracle"] for r in li])
        result["plain_oracle"] = mean_or_nan([r["oracle"] for r in plain])
    for s in scales:
        rows = by_kind.get(scale_name(s), [])
        result[f"{scale_name(s)}_violation"] = mean_or_nan([float(r["violates"]) for r in rows])
    for kind, rows in by_kind.items():  # an answer cut at max_new_tokens: its words are a lower bound
        result[f"{kind}_truncated"] = mean_or_nan([float(r["truncated"]) for r in rows])
    return result
