"""Evaluation of one TPO model (arXiv 2410.10630, Sec. 3; docs/tpo.md): its answers to the held-out test prompts in
its arm's mode, greedy, with a parse failure re-sampled up to ``eval_resamples`` times at the sampling temperature
(the paper re-samples at evaluation). With ``eval_oracle`` the TPO world's oracle scores each response part
(evaluation only: it never feeds training), per family and overall, against the baseline model's answers (M0's) as a
win rate, and measures how much of a correct scratchpad each thought holds (``thought_world.thought_progress``).
Files: ``answers.parquet`` (one row per test prompt) and ``result.json``.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

from system2 import dist
from system2.judges.winrate import outcome, win_rates
from system2.lm.sampling import SampleConfig, sample_completions
from system2.runs import atomic_write_json, read_json, read_parquet
from system2.selfimprove.self_rewarding_eval import ANSWERS, mean_or_nan
from system2.selfimprove.stages import sharded_rows, stage_done
from system2.tasks import thought_world as tw


def evaluate(cfg: Any, data: Any, model_dir: str | Path, out: Path, progress: bool = True,
             baseline: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """The evaluation of the model at ``model_dir`` (``cfg``: a ``TPOConfig``, ``data``: its ``TPOInputs``), cached
    in ``out``; ``baseline``: another model's evaluation directory to compute win rates against."""
    if stage_done(out / "result.json"):
        return read_json(out / "result.json")
    model, tok = cfg.load(model_dir)
    test = data.test[: cfg.eval_limit] if cfg.eval_limit else data.test
    answers = sharded_rows(out / ANSWERS, test, partial(_answer, cfg, model, tok, progress))
    result = summary(answers, cfg.eval_oracle)
    if cfg.eval_oracle and baseline is not None:
        base = read_parquet(baseline / ANSWERS).to_pylist()
        rates = win_rates([r["oracle"] for r in answers], [r["oracle"] for r in base],
                          [r["words"] for r in answers], [r["words"] for r in base])  # fmt: skip
        result.update({"win_rate_vs_m0": rates["win_rate"], "lc_win_rate_vs_m0": rates["lc_win_rate"]})
    if dist.is_main():
        atomic_write_json(out / "result.json", result)
    dist.barrier()
    return result


def _answer(cfg: Any, model: Any, tok: Any, progress: bool, part: list, offset: int) -> list[dict[str, Any]]:
    """The answers to the test prompts of ``part``: greedy, then the parse failures re-sampled."""
    prompts = [cfg.prompt(r["instruction"]) for r in part]
    texts: list[Any] = [None] * len(part)
    todo = list(range(len(part)))
    for attempt in range(cfg.eval_resamples + 1):
        sc = SampleConfig(n=1, temperature=0.0 if attempt == 0 else cfg.temperature, top_p=cfg.top_p,
                          seed=cfg.seed * 1000 + attempt, max_new_tokens=cfg.max_new_tokens,
                          batch_size=cfg.batch_size, backend=cfg.backend)  # fmt: skip
        outs = sample_completions(model, tok, [prompts[i] for i in todo], sc, chat=cfg.chat, system=cfg.system_turn,
                                  prompt_offset=offset if attempt == 0 else 0, progress=progress and attempt == 0,
                                  label="eval answers")  # fmt: skip
        for i, (c,) in zip(todo, outs, strict=True):
            texts[i] = (c, attempt)
        todo = [i for i in todo if texts[i][0].truncated or cfg.split(texts[i][0].text) is None]
        if not todo:
            break
    rows = []
    for r, (c, attempt) in zip(part, texts, strict=True):
        split = None if c.truncated else cfg.split(c.text)
        thought, response = split if split else ("", "")
        row = {"id": r["id"], "instruction": r["instruction"], "family": r["family"], "text": c.text,
               "truncated": c.truncated, "parsed": split is not None, "attempts": attempt + 1, "thought": thought,
               "response": response, "words": len(response.split()),
               "thought_words": len(thought.split())}  # fmt: skip
        if cfg.eval_oracle:
            row["oracle"] = tw.oracle_score(r["instruction"], response)
            thinks = cfg.thinking and tw.family_of(r["instruction"])  # the direct arm writes no thought to measure
            row["progress"] = tw.thought_progress(r["instruction"], thought) if thinks else None
        rows.append(row)
    return rows


def summary(answers: list[dict[str, Any]], oracle: bool) -> dict[str, Any]:
    """Means over the answers: lengths and parse failures, and with the oracle the score overall and per family and
    the thoughts' scratchpad progress (families where one helps)."""
    result: dict[str, Any] = {
        "parse_failures": sum(not r["parsed"] for r in answers),
        "mean_response_words": mean_or_nan([r["words"] for r in answers]),
        "mean_thought_words": mean_or_nan([r["thought_words"] for r in answers]),
    }
    if oracle:
        result["mean_oracle_score"] = mean_or_nan([r["oracle"] for r in answers])
        by_family: dict[str, list[int]] = defaultdict(list)
        for r in answers:
            by_family[r["family"]].append(r["oracle"])
        result["oracle_by_family"] = {f: mean_or_nan(v) for f, v in sorted(by_family.items())}
        result["thought_progress"] = mean_or_nan([r["progress"] for r in answers if r["progress"] is not None])
    return result


def outcomes_vs(answers: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[float]:
    """Per test prompt the oracle outcome of ``answers`` against ``other``'s (1 win, 0.5 tie, 0 loss), matched by
    id."""
    theirs = {r["id"]: r["oracle"] for r in other}
    return [outcome(r["oracle"], theirs[r["id"]]) for r in answers]
