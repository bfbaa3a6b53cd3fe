"""Evaluation of one Self-Rewarding model (arXiv 2401.10020, Sec. 3.2 and Table 4; docs/self_rewarding.md): its
greedy answers to the held-out test prompts (the AlpacaEval analogue) and its quality as a judge on held-out response
pairs (pairwise accuracy and Spearman against their reference scores). With ``eval_oracle`` the instruction world's
oracle scores every answer (evaluation only) and, against the baseline model's answers (M1's), gives the win rate
and its length-controlled version (``system2.judges.winrate``). Each model's files: ``answers.parquet`` (one row per
test prompt), ``judge_pairs.parquet`` (one row per pair) and ``result.json``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from system2 import dist
from system2.judges.pointwise import Judge
from system2.judges.quality import judge_quality
from system2.judges.winrate import win_rates
from system2.lm.sampling import SampleConfig, sample_completions
from system2.runs import atomic_write_json, read_json, read_parquet
from system2.selfimprove.stages import sharded_rows, stage_done
from system2.tasks.instructions_oracle import item_count, oracle_score

ANSWERS = "answers.parquet"  # a model's answers to the test prompts, next to its result.json
JUDGED_PAIRS = "judge_pairs.parquet"  # its judgments of the held-out pairs


def evaluate_model(
    cfg: Any, data: Any, model_dir: str | Path, out: Path, progress: bool = True, baseline: Path | None = None
) -> dict[str, Any]:
    """The evaluation of the model at ``model_dir`` (``cfg``: a ``SelfRewardingConfig``, ``data``: its
    ``SeedData``), cached in ``out``; ``baseline``: another model's evaluation directory to compute win rates
    against (M1's)."""
    if stage_done(out / "result.json"):
        return read_json(out / "result.json")
    model, tok = cfg.load(model_dir)
    answers = sharded_rows(out / ANSWERS, data.test, partial(_answer, cfg, model, tok, progress))
    result: dict[str, Any] = {
        "mean_answer_words": mean_or_nan([r["words"] for r in answers]),
        "truncated_answers": sum(bool(r["truncated"]) for r in answers),
    }
    if data.pairs:
        judge = Judge.from_config(cfg.judge, (model, tok), progress, cfg.backend)
        judged = sharded_rows(out / JUDGED_PAIRS, data.pairs, partial(_judge_pairs, judge, cfg.judge.seed))
        q = judge_quality(
            [(r["judge_a"], r["judge_b"]) for r in judged], [(r["score_a"], r["score_b"]) for r in judged]
        )
        result.update({"judge_pairwise_accuracy": q["pairwise_accuracy"], "judge_spearman": q["spearman"],
                       "judge_ties": q["judge_ties"], "judge_unscored": q["unscored_responses"]})  # fmt: skip
    if cfg.eval_oracle:
        result["mean_oracle_score"] = mean_or_nan([r["oracle"] for r in answers])
        result["mean_items"] = mean_or_nan([r["items"] for r in answers])
        if baseline is not None:
            base = read_parquet(baseline / ANSWERS).to_pylist()
            rates = win_rates([r["oracle"] for r in answers], [r["oracle"] for r in base],
                              [r["words"] for r in answers], [r["words"] for r in base])  # fmt: skip
            result.update({"win_rate_vs_m1": rates["win_rate"], "lc_win_rate_vs_m1": rates["lc_win_rate"]})
    if dist.is_main():
        atomic_write_json(out / "result.json", result)
    dist.barrier()
    return result


def _answer(cfg: Any, model: Any, tok: Any, progress: bool, part: list, offset: int) -> list[dict[str, Any]]:
    """Greedy answers to the test prompts of ``part``, with their length (and oracle score with ``eval_oracle``)."""
    sc = SampleConfig(n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                      batch_size=cfg.batch_size, backend=cfg.backend)  # fmt: skip
    outs = sample_completions(model, tok, [r["prompt"] for r in part], sc, chat=cfg.chat, prompt_offset=offset,
                              progress=progress, label="eval answers")  # fmt: skip
    rows = []
    for r, (c,) in zip(part, outs, strict=True):
        row = {"id": r["id"], "instruction": r["instruction"], "text": c.text, "truncated": c.truncated,
               "words": len(c.text.split())}  # fmt: skip
        if cfg.eval_oracle:
            row.update(oracle=oracle_score(r["instruction"], c.text), items=item_count(r["instruction"], c.text))
        rows.append(row)
    return rows


def _judge_pairs(judge: Judge, seed: int, part: list, offset: int) -> list[dict[str, Any]]:
    """The pairs of ``part`` with the judge's mean score of each response (None: no parseable judgment)."""
    instr = [r["instruction"] for r in part for _ in range(2)]
    resp = [x for r in part for x in (r["response_a"], r["response_b"])]
    verdicts = judge.score(instr, resp, seed=seed, offset=2 * offset)
    return [{**r, "judge_a": verdicts[2 * i].mean, "judge_b": verdicts[2 * i + 1].mean} for i, r in enumerate(part)]


def mean_or_nan(xs: list[float] | list[int]) -> float:
    """The mean of ``xs``; NaN when empty (a table shows "-")."""
    return sum(xs) / len(xs) if xs else float("nan")
