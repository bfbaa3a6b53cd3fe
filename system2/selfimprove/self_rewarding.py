"""Self-Rewarding Language Models (Yuan et al., arXiv 2401.10020, Sec. 2-3; docs/self_rewarding.md).

M1 = SFT of the base model on IFT + EFT seed data. Iteration t (t = 1..T), from M_t:
1. new prompts: ``prompts_per_iteration`` from the instruction world's template sampler (standing in for the paper's
   fixed Llama-2-Chat generator), or the next unused slice of a local prompt pool; never a seed or test prompt;
2. ``responses_per_prompt`` candidates per prompt (paper: N = 4, T = 0.7, top-p 0.9);
3. the model judges every candidate ``judge.judgments_per_response`` times (paper: 3) with the additive 5-point
   prompt it learnt from EFT; the candidate's score is the mean of the parseable judgments;
4. pair = the highest-scored vs the lowest-scored candidate; prompts whose scores all tie are dropped;
5. M_{t+1} = DPO from M_t on the pairs (beta 0.1), the reference M_t.
Two iterations by default (M2, M3), as in the paper.

Where the paper is silent (our choices): a candidate cut at ``max_new_tokens`` is never chosen (it would train an end
the model never wrote) but may be rejected; among equal top (bottom) scores the first sampled wins; the judge's
sampling settings are ``JudgeConfig``'s. Every model M1..M_{T+1} answers the test prompts greedily and judges the
held-out response pairs (pairwise accuracy and Spearman against their reference scores, Table 4's analogue); with
``eval_oracle`` the instruction world's oracle scores the answers (evaluation only: it never feeds training), with
the win rate against M1 and its length-controlled version (``system2.judges.winrate``).

Every stage lands in the run directory (``iter-T/prompts``, ``responses``, ``judgments``, ``pairs`` in TRL's
preference format, ``reference``, ``train/``, ``eval/``) and is skipped when present: a killed run resumes where it
stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from system2 import dist
from system2.config import ConfigError
from system2.judges.config import JudgeConfig
from system2.judges.pointwise import Judge
from system2.lm.sampling import SampleConfig, sample_completions
from system2.selfimprove.dpo import dpo_finetune, fitting_pairs, reference_logprobs_rows
from system2.selfimprove.loop import PolicyConfig, finetune_sft, group_by_question
from system2.selfimprove.self_rewarding_data import SeedData, read_seed_data
from system2.selfimprove.self_rewarding_eval import evaluate_model, mean_or_nan
from system2.selfimprove.sft import TinyLMConfig, build_tiny
from system2.selfimprove.stages import cached_rows, sharded_rows
from system2.tasks import instructions
from system2.train import TrainConfig


@dataclass
class SelfRewardingConfig(PolicyConfig):
    """``model`` empty: a tiny Llama for the seed data's words is built first; ``data``: an instruction-world
    directory (``system2 instructions``), or give the files one by one (real data)."""

    data: str = (
        ""  # an instruction-world directory: its ift, eft, test_prompts and pairs files (and its prompt sampler)
    )
    ift: str = ""  # IFT rows (prompt, completion, or TRL messages; JSONL or Parquet); "": DATA/ift.parquet
    eft: str = ""  # EFT rows (judge prompt, judgment ending in 'Score: s'); "": DATA/eft.parquet
    prompts: str = ""  # a prompt pool for the new prompts (JSONL or Parquet); "": the world's template sampler
    test_prompts: str = ""  # held-out prompts every model answers (the AlpacaEval analogue); "": DATA/test_prompts
    judge_pairs: str = ""  # held-out response pairs with reference scores (judge accuracy); "": DATA/pairs.parquet
    m1: str = ""  # a trained M1 to start from (another run's OUT/sft/model on the same seed data); "": SFT here
    iterations: int = 2  # DPO iterations after M1 (paper: 2, giving M2 and M3)
    prompts_per_iteration: int = 500  # new prompts each iteration
    responses_per_prompt: int = 4  # candidates sampled per prompt, N (paper: 4)
    temperature: float = 0.7  # candidate sampling temperature (paper: 0.7)
    top_p: float = 0.9  # candidate nucleus sampling mass (paper: 0.9)
    rho: list[float] = field(default_factory=list)  # length control per iteration, the last repeats (Meta-Rewarding's
    #                                                  rule, docs/self_rewarding.md); empty: Self-Rewarding's max vs min
    max_chosen_chars: list[int] = field(default_factory=list)  # per iteration: drop pairs whose chosen response is
    #                                                            longer (0 or past the list's end: no limit)
    beta: float = 0.1  # DPO beta: how closely M_{t+1} is held to M_t (paper: 0.1)
    alpha: float = 0.0  # weight of an NLL term on the chosen response (paper: 0, plain DPO)
    eval_limit: int = 0  # test prompts and judge pairs used at evaluation (0: all)
    eval_oracle: bool = True  # score test answers with the instruction world's oracle (set false for real data)
    tiny: TinyLMConfig = field(default_factory=TinyLMConfig)  # the tiny Llama built when model is empty
    judge: JudgeConfig = field(  # the judge (default: the policy itself, the paper's self-rewarding)
        default_factory=lambda: JudgeConfig(template="compact", max_new_tokens=16)
    )
    sft: TrainConfig = field(  # M1: fine-tuning on IFT + EFT (paper: lr 5.5e-6, batch 16)
        default_factory=lambda: TrainConfig(steps=1500, batch_size=32, lr=1e-3, warmup=100)
    )
    train: TrainConfig = field(  # each DPO iteration (paper: lr 1e-6, batch 16)
        default_factory=lambda: TrainConfig(steps=200, batch_size=16, lr=5e-5, warmup=10)
    )

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field and its fix (the files are read by ``seed_data``)."""
        if not self.out:
            raise ConfigError("set out=DIR (the run directory)")
        if not self.data and not (self.ift and self.eft and self.test_prompts):
            raise ConfigError("set data=DIR (an instruction-world directory: system2 instructions --out DIR), or "
                              "ift=FILE, eft=FILE and test_prompts=FILE")  # fmt: skip
        self.check_models("model", "m1")
        if self.prompt_format not in ("raw", "chat"):
            raise ConfigError(f"prompt_format must be raw or chat (the prompts come formatted), got "
                              f"{self.prompt_format!r}")  # fmt: skip
        self.check_runtime()
        if self.iterations < 0 or self.prompts_per_iteration < 1 or self.responses_per_prompt < 2:
            raise ConfigError("need iterations >= 0, prompts_per_iteration >= 1 and responses_per_prompt >= 2 (a "
                              "pair needs two candidates)")  # fmt: skip
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ConfigError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.beta <= 0 or self.alpha < 0 or self.eval_limit < 0:
            raise ConfigError("need beta > 0, alpha >= 0 and eval_limit >= 0")
        if any(not 0 <= r < 0.5 for r in self.rho) or any(c < 0 for c in self.max_chosen_chars):
            raise ConfigError("rho values must lie in [0, 0.5) (the bands must not overlap) and max_chosen_chars >= 0")
        self.judge.validate()
        if self.judge.backend == "policy" and self.judge.chat != self.chat:
            raise ConfigError(f"judge.chat={self.judge.chat} but prompt_format={self.prompt_format}: the policy "
                              "judges as it answers, set judge.chat=true exactly when prompt_format=chat")  # fmt: skip
        self.sft.validate("sft")
        self.train.validate()

    KIND = "self-rewarding"  # the run record's kind

    def rho_at(self, t: int) -> float | None:
        """Iteration ``t``'s length control (None: Self-Rewarding's rule)."""
        return self.rho[min(t, len(self.rho)) - 1] if self.rho else None

    def judge_stage(
        self, model: Any, tok: Any, judged: list[dict[str, Any]], it: Path, t: int, progress: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Pairs that train the judge in iteration ``t``, and what made them: none in Self-Rewarding (its judge
        improves only through the actor's training); Meta-Rewarding's meta-judge overrides this."""
        return [], {}

    def seed_data(self) -> SeedData:
        """Every input, read and checked before any compute (errors name the file, the row and the fix)."""
        return read_seed_data(self)


def run_self_rewarding(cfg: SelfRewardingConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) SFT and every iteration; one result row per model (M1, M2, ...)."""
    cfg.validate()
    data = cfg.seed_data()
    out = cfg.start(cfg.KIND, restart)
    current = Path(cfg.m1) if cfg.m1 else train_m1(cfg, data, out, progress)
    m1_eval = evaluate_model(cfg, data, current, out / "m1-eval", progress)
    results = [{"model": "M1", "iteration": 0, **m1_eval}]
    seen = set(data.excluded)
    for t in range(1, cfg.iterations + 1):
        it = out / f"iter-{t}"
        prompts = cached_rows(it / "prompts.parquet", new_prompts, cfg, data, t, frozenset(seen))
        seen.update(r["instruction"] for r in prompts)
        model, tok = cfg.load(current)
        responses = sharded_rows(it / "responses.parquet", prompts, partial(_generate, cfg, model, tok, t, progress))
        judge = Judge.from_config(cfg.judge, (model, tok), progress, cfg.backend)
        judged = sharded_rows(it / "judgments.parquet", responses, partial(_judge, judge, cfg.judge.seed + t))
        pairs = cached_rows(it / "pairs.parquet", build_pairs, cfg, judged, tok, t)
        judge_pairs, judge_stats = cfg.judge_stage(model, tok, judged, it, t, progress)
        stats = {**pair_stats(judged, pairs), **judge_stats}
        train_pairs = pairs + judge_pairs  # one DPO run on actor and judge pairs (Meta-Rewarding)
        batch = cfg.train.batch_size * dist.world_size()
        if len(train_pairs) < batch:  # nothing to learn from: every prompt's scores tied (or too few prompts)
            stop = f"{len(train_pairs)} pairs, fewer than one training batch ({batch})"
            results.append({"model": f"M{t + 1}", "iteration": t, **stats, "stopped": stop})
            break
        ref = sharded_rows(it / "reference.parquet", train_pairs,
                           partial(reference_logprobs_rows, current, model, tok, cfg, progress))  # fmt: skip
        del model, judge
        current = dpo_finetune(current, train_pairs, ref, cfg.train, it / "train", progress, beta=cfg.beta,
                               alpha=cfg.alpha, nll_norm="sequence", max_len=cfg.max_len, chat=cfg.chat)  # fmt: skip
        evaluation = evaluate_model(cfg, data, current, it / "eval", progress, baseline=out / "m1-eval")
        results.append({"model": f"M{t + 1}", "iteration": t, **stats, **evaluation})
    return results


def m1_dir(out: str | Path) -> Path:
    """Where a run trains its M1 (``OUT/sft``); its weights end in ``m1_dir(out) / "model"``."""
    return Path(out) / "sft"


def train_m1(cfg: SelfRewardingConfig, data: SeedData, out: Path, progress: bool) -> Path:
    """M1: the base model (or a new tiny one) fine-tuned on IFT + EFT (+ meta-judge seed rows), the loss on the
    completions only."""
    init = Path(cfg.model) if cfg.model else init_tiny(cfg, data, out / "init")
    rows = data.ift + data.eft + data.meta
    return finetune_sft(init, [r["prompt"] for r in rows], [r["completion"] for r in rows], cfg.max_len, cfg.sft,
                        m1_dir(out), progress, chat=cfg.chat)  # fmt: skip


def init_tiny(cfg: SelfRewardingConfig, data: SeedData, path: Path) -> Path:
    """A tiny Llama whose word-level tokenizer knows the instruction world's words and every word of the seed data
    (the main process writes it once)."""
    rows = data.ift + data.eft + data.meta
    words = [*instructions.vocabulary(), *" ".join(f"{r['prompt']} {r['completion']}" for r in rows).split()]
    return build_tiny(cfg.tiny, words, path, cfg.seed)


def new_prompts(cfg: SelfRewardingConfig, data: SeedData, t: int, exclude: frozenset[str]) -> list[dict[str, Any]]:
    """Iteration ``t``'s prompts: the ``t``-th slice of the prompt pool, or new instructions from the world's
    template sampler (seeded by the run's seed and ``t``), none of them in ``exclude``."""
    n = cfg.prompts_per_iteration
    if data.pool is not None:
        chosen = data.pool[(t - 1) * n : t * n]
        return [{"id": f"{t}-{i}", "prompt": p, "instruction": instructions.instruction_of(p)}
                for i, p in enumerate(chosen)]  # fmt: skip
    xs = instructions.sample_prompts(n, cfg.seed * 1000 + t, exclude, data.world)
    return [{"id": f"{t}-{i}", "prompt": instructions.act_prompt(x, data.template), "instruction": x}
            for i, x in enumerate(xs)]  # fmt: skip


def _generate(
    cfg: SelfRewardingConfig, model: Any, tok: Any, t: int, progress: bool, part: list, offset: int
) -> list[dict[str, Any]]:
    """``responses_per_prompt`` candidates for each prompt row of ``part`` (one row per candidate)."""
    sc = SampleConfig(n=cfg.responses_per_prompt, temperature=cfg.temperature, top_p=cfg.top_p,
                      seed=cfg.seed * 1000 + t, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                      backend=cfg.backend)  # fmt: skip
    outs = sample_completions(model, tok, [r["prompt"] for r in part], sc, chat=cfg.chat, prompt_offset=offset,
                              progress=progress, label="candidates")  # fmt: skip
    return [{"id": r["id"], "prompt": r["prompt"], "instruction": r["instruction"], "sample": j, "text": c.text,
             "truncated": c.truncated}
            for r, cands in zip(part, outs, strict=True) for j, c in enumerate(cands)]  # fmt: skip


def _judge(judge: Judge, seed: int, part: list, offset: int) -> list[dict[str, Any]]:
    """The candidates of ``part`` with their judgments, parsed scores and mean score (None: none parseable)."""
    verdicts = judge.score([r["instruction"] for r in part], [r["text"] for r in part], seed=seed, offset=offset)
    return [{**r, "score": v.mean, "scores": list(v.scores), "unparsed": v.unparsed, "judgments": list(v.judgments)}
            for r, v in zip(part, verdicts, strict=True)]  # fmt: skip


def select_pair(
    candidates: list[dict[str, Any]], rho: float | None = None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(chosen, rejected) of one prompt's judged candidates; None when fewer than two are scored, when the scores tie,
    or when both sides are the same text. A candidate cut at ``max_new_tokens`` is never chosen.

    ``rho`` None: Self-Rewarding's rule, the highest-scored untruncated candidate vs the lowest-scored one, the first
    sampled among equals. ``rho`` in [0, 0.5): Meta-Rewarding's length control (arXiv 2407.19594, Sec. 3.3 [S]):
    chosen = the shortest (in characters) candidate scored in [(1 - rho) S_max + rho S_min, S_max], rejected = the
    longest scored in [S_min, (1 - rho) S_min + rho S_max]; rho = 0 is max vs min with length breaking the ties."""
    scored = [c for c in candidates if c["score"] is not None]
    if len(scored) < 2:
        return None
    hi, lo = max(c["score"] for c in scored), min(c["score"] for c in scored)
    if hi <= lo:
        return None
    eligible = [c for c in scored if not c["truncated"]]
    if rho is None:
        best = max(eligible, key=lambda c: c["score"]) if eligible else None  # max/min keep the first of equals
        worst = min(scored, key=lambda c: c["score"])
    else:
        top = [c for c in eligible if c["score"] >= (1 - rho) * hi + rho * lo]
        bottom = [c for c in scored if c["score"] <= (1 - rho) * lo + rho * hi]
        best = min(top, key=lambda c: len(c["text"])) if top else None  # min/max keep the first of equals
        worst = max(bottom, key=lambda c: len(c["text"]))
    if best is None or best is worst or best["text"] == worst["text"] or best["score"] <= worst["score"]:
        return None
    return best, worst


def build_pairs(
    cfg: SelfRewardingConfig, judged: list[dict[str, Any]], tokenizer: Any, t: int = 1
) -> list[dict[str, Any]]:
    """Iteration ``t``'s actor pairs in TRL's format (``prompt``, ``chosen``, ``rejected``) with their scores, chosen
    with the iteration's ``rho``; pairs whose chosen response is over the iteration's ``max_chosen_chars``, or longer
    than ``max_len`` tokens, are dropped."""
    limit = cfg.max_chosen_chars[t - 1] if t <= len(cfg.max_chosen_chars) else 0
    rows = []
    for qid, group in group_by_question(judged).items():
        picked = select_pair(group, cfg.rho_at(t))
        if picked is None or (limit and len(picked[0]["text"]) > limit):
            continue
        c, r = picked
        rows.append({"prompt": c["prompt"], "chosen": c["text"], "rejected": r["text"], "id": qid,
                     "instruction": c["instruction"], "chosen_score": c["score"], "rejected_score": r["score"],
                     "rejected_ends": not r["truncated"]})  # fmt: skip
    return fitting_pairs(rows, tokenizer, cfg.max_len, cfg.chat)


def pair_stats(judged: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """What an iteration's judging gave: pairs, candidates the judge could not score, and the mean score gap."""
    n = len(judged)
    gap = [p["chosen_score"] - p["rejected_score"] for p in pairs]
    return {
        "prompts": len({r["id"] for r in judged}),
        "pairs": len(pairs),
        "unscored_share": sum(r["score"] is None for r in judged) / n if n else 0.0,
        "unparsed_judgments": sum(int(r["unparsed"]) for r in judged),
        "mean_self_score": mean_or_nan([r["score"] for r in judged if r["score"] is not None]),
        "mean_pair_gap": mean_or_nan(gap),
        "mean_chosen_words": mean_or_nan([len(p["chosen"].split()) for p in pairs]),
        "mean_rejected_words": mean_or_nan([len(p["rejected"].split()) for p in pairs]),
    }
