"""Thought Preference Optimization (Wu et al., "Thinking LLMs", arXiv 2410.10630, Sec. 2-3; docs/tpo.md).

M0 = the seed model (here SFT of a tiny model on the world's seed rows, ``system2.tasks.thought_data``). Iteration
t (t = 1..T), from M_{t-1}:
1. new prompts: ``prompts_per_iteration`` from the world's sampler, or the next unused slice of a prompt pool (the
   paper: 5,000 fresh instructions per iteration; earlier iterations' data are not reused);
2. ``samples`` outputs per prompt (paper: N = 8, T = 0.8, top-p 0.95) after the thought prompt;
3. each output is split at the response marker (``system2.tasks.thoughts``); the judge scores the response part only
   (paper: ArmoRM or a pairwise LLM judge with Elo; here by default a reward model trained on the world's
   oracle-labelled seed pairs, ``system2.judges.reward_model``: the oracle never judges inside the loop);
4. pair = the highest vs the lowest length-controlled score s = z(score) - rho z(len) (``tpo_pairs``); parse
   failures are rejected samples; both sides hold the full thought and response;
5. M_t = DPO from M_{t-1} on the pairs (the reference M_{t-1}).
``thinking=false`` runs the paper's baseline on the identical pipeline: direct answers, no thought.

Our choices where the paper is silent: an output cut at ``max_new_tokens`` counts as a parse failure (it may be
rejected, never chosen, and trains without an eos); the length is the response part's, in characters. Every model
M0..M_T answers the test prompts in its arm's mode (greedy; a parse failure is re-sampled ``eval_resamples`` times,
as the paper re-samples at evaluation), scored by the oracle (``tpo_eval``). Every stage lands in the run directory
and is skipped when present, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from system2 import dist
from system2.config import ConfigError, from_dict
from system2.judges.config import JudgeConfig
from system2.judges.pairwise import round_robin
from system2.judges.pointwise import Judge
from system2.judges.reward_model import train_reward_model
from system2.lm.sampling import SampleConfig, sample_completions
from system2.runs import read_run
from system2.selfimprove.dpo import dpo_finetune, fitting_pairs, reference_logprobs_rows
from system2.selfimprove.loop import PolicyConfig, finetune_sft, group_by_question
from system2.selfimprove.sft import TinyLMConfig, build_tiny, m0_dir
from system2.selfimprove.stages import cached_json, cached_rows, sharded_rows
from system2.selfimprove.tpo_judge import judge_accuracy, own_sample_pairs
from system2.selfimprove.tpo_pairs import thought_pair
from system2.tasks import thought_data as td
from system2.tasks.instructions import act_prompt, checked_rows
from system2.tasks.thought_world import ThoughtWorldConfig, oracle_score
from system2.tasks.thoughts import THOUGHT_KINDS, split_thought, system_prompt, thought_prompt
from system2.train import TrainConfig


@dataclass
class TPOConfig(PolicyConfig):
    """``model`` empty: a tiny Llama for the world's words is built and trained on ``ift`` first (M0)."""

    data: str = ""  # a TPO world directory (made by the thought-data command): ift, rm_pairs, test_prompts files
    ift: str = ""  # M0's seed rows (prompt, completion); "": DATA/ift.parquet (not read when model or m0 is set)
    rm_pairs: str = ""  # preference pairs (prompt, chosen, rejected) for the reward model; "": DATA/rm_pairs.parquet
    rm_eval: str = ""  # held-out pairs (prompt, chosen, rejected): the judge's accuracy; "": DATA/rm_eval.parquet
    test_prompts: str = ""  # held-out instructions (instruction, optional family); "": DATA/test_prompts.parquet
    prompts: str = ""  # a prompt pool (instruction or prompt column); "": the world's sampler (DATA/run.json)
    m0: str = ""  # a trained M0 to start from (another run's OUT/sft/model); "": SFT on ift (or model as it is)
    thinking: bool = True  # TPO: thought, then response; false: the direct-answer baseline on the same pipeline
    thought_prompt: str = "compact"  # compact (THINK: x ->, T: ... R: ...) | generic | specific (paper's, <R>) |
    #                                  system (the generic request in a system turn; needs prompt_format=chat)
    iterations: int = 4  # DPO iterations (paper: up to 5)
    prompts_per_iteration: int = 1000  # fresh prompts each iteration (paper: 5,000)
    samples: int = 8  # outputs sampled per prompt, N (paper: 8)
    temperature: float = 0.8  # sampling temperature (paper: 0.8)
    top_p: float = 0.95  # nucleus sampling mass (paper: 0.95)
    rho: float = 0.0  # length control: s = z(score) - rho z(response length) (paper: tuned in [0, 0.5])
    rm_own_samples: int = 0  # prompts whose M0 outputs (both modes) the oracle ranks into extra reward-model pairs
    #                          (ours: a judge trained on outputs like the policy's; needs the world's sampler)
    judge_mode: str = "pointwise"  # pointwise (a score per response) | pairwise (every pair of a prompt's responses
    #                                in both orders, Bradley-Terry Elo: the paper's Self-Taught Evaluator setting) |
    #                                oracle (a calibration diagnostic, not TPO: the world's oracle scores the responses)
    beta: float = 0.1  # DPO beta (not in the paper [R]: Meta-Rewarding's 0.1)
    alpha: float = 0.0  # NLL weight on the chosen output (paper: IRPO's loss gave no noticeable gain)
    eval_resamples: int = 3  # at evaluation, a parse failure is re-sampled up to this many times (paper: re-sampled)
    eval_limit: int = 0  # test prompts used at evaluation (0: all)
    eval_oracle: bool = True  # score test answers with the world's oracle (set false for real data)
    tiny: TinyLMConfig = field(default_factory=TinyLMConfig)  # the tiny Llama built when model is empty
    judge: JudgeConfig = field(  # the judge; reward_model with model empty: one trained on rm_pairs (stage rm)
        default_factory=lambda: JudgeConfig(backend="reward_model", template="compact")
    )
    sft: TrainConfig = field(  # M0: fine-tuning on the seed rows
        default_factory=lambda: TrainConfig(steps=1500, batch_size=32, lr=1e-3, warmup=100)
    )
    rm: TrainConfig = field(  # the reward model's training on rm_pairs
        default_factory=lambda: TrainConfig(steps=500, batch_size=32, lr=1e-3, warmup=50)
    )
    train: TrainConfig = field(  # each DPO iteration (paper: lr not given [R: 5e-6])
        default_factory=lambda: TrainConfig(steps=200, batch_size=16, lr=5e-5, warmup=10)
    )

    KIND = "tpo"  # the run record's kind

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field and its fix (the files are read by ``inputs``)."""
        if not self.out:
            raise ConfigError("set out=DIR (the run directory)")
        if not self.data and not self.test_prompts:
            raise ConfigError("set data=DIR (a TPO world directory: system2 thought-data --out DIR), or the files "
                              "one by one (ift=FILE rm_pairs=FILE test_prompts=FILE prompts=FILE)")  # fmt: skip
        self.check_models("model", "m0")
        self.check_runtime()
        if self.thought_prompt not in THOUGHT_KINDS:
            raise ConfigError(f"thought_prompt must be one of {', '.join(THOUGHT_KINDS)}, got {self.thought_prompt!r}")
        if self.thought_prompt == "system" and not self.chat:
            raise ConfigError("thought_prompt=system puts the thought request in a system turn, which only a chat "
                              "template renders: set prompt_format=chat (a model with a chat template)")  # fmt: skip
        if self.iterations < 0 or self.prompts_per_iteration < 1 or self.samples < 2:
            raise ConfigError("need iterations >= 0, prompts_per_iteration >= 1 and samples >= 2 (a pair needs two)")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or not 0 <= self.rho <= 1:
            raise ConfigError(f"need temperature >= 0, 0 < top_p <= 1 and 0 <= rho <= 1, got {self.temperature}, "
                              f"{self.top_p}, {self.rho}")  # fmt: skip
        if self.rm_own_samples < 0 or (self.rm_own_samples and not (self.eval_oracle and not self.prompts)):
            raise ConfigError("rm_own_samples needs the TPO world (eval_oracle=true, no prompts=FILE) and must be >= 0")
        if self.judge_mode not in ("pointwise", "pairwise", "oracle"):
            raise ConfigError(f"judge_mode must be pointwise, pairwise or oracle, got {self.judge_mode!r}")
        if self.judge_mode == "oracle" and not self.eval_oracle:
            raise ConfigError("judge_mode=oracle scores with the TPO world's oracle: it needs eval_oracle=true")
        if self.beta <= 0 or self.alpha < 0 or self.eval_limit < 0 or self.eval_resamples < 0:
            raise ConfigError("need beta > 0, alpha >= 0, eval_limit >= 0 and eval_resamples >= 0")
        trains_rm = self.judge.backend == "reward_model" and not self.judge.model  # the rm stage makes judge.model
        (dataclasses.replace(self.judge, model="rm") if trains_rm else self.judge).validate()
        if self.judge.backend == "policy":
            raise ConfigError("judge.backend=policy: TPO's judge is a separate model (reward_model, hf or http)")
        for name in ("sft", "rm", "train"):
            getattr(self, name).validate(name)

    def prompt(self, instruction: str) -> str:
        """The arm's prompt: the thought prompt, or the direct one (``ACT: x ->`` in the compact world)."""
        if self.thinking:
            return thought_prompt(instruction, self.thought_prompt)
        return act_prompt(instruction) if self.thought_prompt == "compact" else instruction

    @property
    def system_turn(self) -> str | None:
        """The thought request as a system turn (``thought_prompt=system`` with thinking), rendered before every
        prompt the policy samples, trains and is scored on; None otherwise."""
        return system_prompt(self.thought_prompt) if self.thinking else None

    def split(self, text: str) -> tuple[str, str] | None:
        """(thought, response) of an output in the arm's mode; None for a parse failure."""
        if not self.thinking:
            return ("", text.strip()) if text.strip() else None
        s = split_thought(text, self.thought_prompt)
        return None if s is None else (s.thought, s.response)


@dataclass(frozen=True)
class TPOInputs:
    """What a run reads: seed rows, reward-model pairs, test prompts, and where new prompts come from (``pool``, or
    the world's sampler with its ``families`` and ``world``); ``excluded``: instructions no new prompt may repeat."""

    ift: list[dict[str, Any]]
    rm_pairs: list[dict[str, Any]]
    rm_eval: list[dict[str, Any]]
    test: list[dict[str, Any]]  # id, instruction, family
    pool: list[str] | None
    families: list[str]
    world: ThoughtWorldConfig
    excluded: frozenset[str]


def read_inputs(cfg: TPOConfig) -> TPOInputs:
    """The inputs ``cfg`` names, read and checked before any compute (errors name the file, row and fix)."""
    need_ift = not (cfg.model or cfg.m0)
    ift = checked_rows("ift", cfg.file("ift", "ift.parquet"), ("prompt", "completion")) if need_ift else []
    need_rm = cfg.judge.backend == "reward_model" and not cfg.judge.model
    pair_fields = ("prompt", "chosen", "rejected")
    rm = checked_rows("rm_pairs", cfg.file("rm_pairs", "rm_pairs.parquet"), pair_fields) if need_rm else []
    eval_path = cfg.file("rm_eval", "rm_eval.parquet")
    given = cfg.rm_eval or Path(eval_path).is_file()  # optional
    rm_eval = checked_rows("rm_eval", eval_path, ("prompt", "chosen", "rejected")) if given else []
    test_path = cfg.file("test_prompts", "test_prompts.parquet")
    test = [{"id": f"test-{i}", "instruction": r.get("instruction") or r["prompt"],
             "family": r.get("family") or (td.family_of(r.get("instruction") or r["prompt"]) or "")}
            for i, r in enumerate(checked_rows("test_prompts", test_path, ()))]  # fmt: skip
    if any(not x["instruction"] for x in test):
        raise ConfigError(f"test_prompts ({test_path}): every row needs an instruction or prompt")
    pool, families, world = None, list(td.DEFAULT_FAMILIES), ThoughtWorldConfig()
    if cfg.prompts:
        pool = [r.get("instruction") or r.get("prompt") for r in checked_rows("prompts", cfg.prompts, ())]
        if any(not isinstance(p, str) or not p for p in pool):
            raise ConfigError(f"prompts ({cfg.prompts}): every row needs an instruction or prompt")
        if len(pool) < cfg.iterations * cfg.prompts_per_iteration:
            raise ConfigError(f"prompts: {len(pool)} prompts, but {cfg.iterations} iterations x "
                              f"{cfg.prompts_per_iteration} need {cfg.iterations * cfg.prompts_per_iteration}: add "
                              "prompts or lower prompts_per_iteration")  # fmt: skip
    else:
        record = read_run(cfg.data) if cfg.data and Path(cfg.data).is_dir() else None
        if record is None or record.get("kind") != "thought-dataset":
            raise ConfigError("new prompts come from a prompt pool or from the TPO world's sampler: set prompts=FILE, "
                              "or data=DIR made by system2 thought-data")  # fmt: skip
        settings = record.get("settings", {})
        families = list(settings.get("families", families))
        world = from_dict(ThoughtWorldConfig, settings.get("world", {}))
    if cfg.eval_oracle:
        for x in test[:1] + [{"instruction": p} for p in (pool or [])[:1]]:
            if td.family_of(x["instruction"]) is None:
                raise ConfigError(f"eval_oracle=true but {x['instruction'][:60]!r} is not an instruction of the "
                                  "TPO world, which the oracle scores: set eval_oracle=false")  # fmt: skip
    excluded = frozenset([x["instruction"] for x in test] + [str(r.get("instruction", "")) for r in ift]
                         + [r["prompt"] for r in rm + rm_eval])  # fmt: skip
    return TPOInputs(ift, rm, rm_eval, test, pool, families, world, excluded)


# ----- the loop ----------------------------------------------------------------------------------------------------
def run_tpo(cfg: TPOConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) M0, the reward model and every iteration; one result row per model (M0, M1, ...)."""
    from system2.selfimprove.tpo_eval import evaluate

    cfg.validate()
    data = read_inputs(cfg)
    out = cfg.start(cfg.KIND, restart)
    current = Path(cfg.m0) if cfg.m0 else Path(cfg.model) if cfg.model else train_m0(cfg, data, out, progress)
    judge_cfg = cfg.judge
    if judge_cfg.backend == "reward_model" and not judge_cfg.model:
        own = cached_rows(out / "rm_own_pairs.parquet", own_sample_pairs, cfg, data, current) if cfg.rm_own_samples \
            else []  # fmt: skip
        rm = train_reward_model(current, data.rm_pairs + own, cfg.rm, out / "rm", cfg.max_len, cfg.chat, progress)
        judge_cfg = dataclasses.replace(judge_cfg, model=str(rm))
    judge = Judge.from_config(judge_cfg, None, progress, cfg.backend)
    quality = cached_json(out / "judge.json", judge_accuracy, judge, data.rm_eval) if data.rm_eval else {}
    results = [{"model": "M0", "iteration": 0, **quality, **evaluate(cfg, data, current, out / "m0-eval", progress)}]
    seen = set(data.excluded)
    for t in range(1, cfg.iterations + 1):
        it = out / f"iter-{t}"
        prompts = cached_rows(it / "prompts.parquet", new_prompts, cfg, data, t, frozenset(seen))
        seen.update(r["instruction"] for r in prompts)
        model, tok = cfg.load(current)
        outputs = sharded_rows(it / "samples.parquet", prompts, partial(_sample, cfg, model, tok, t, progress))
        groups = list(group_by_question(outputs).values())  # a prompt's outputs stay on one process
        judged = sharded_rows(it / "judged.parquet", groups, partial(_judge, cfg, judge, judge_cfg.seed + t))
        pairs = cached_rows(it / "pairs.parquet", build_pairs, cfg, judged, tok)
        stats = sample_stats(judged, pairs)
        batch = cfg.train.batch_size * dist.world_size()
        if len(pairs) < batch:
            results.append({"model": f"M{t}", "iteration": t, **stats,
                            "stopped": f"{len(pairs)} pairs, fewer than one training batch ({batch})"})  # fmt: skip
            break
        ref = sharded_rows(it / "reference.parquet", pairs,
                           partial(reference_logprobs_rows, current, model, tok, cfg, progress))  # fmt: skip
        del model
        current = dpo_finetune(current, pairs, ref, cfg.train, it / "train", progress, beta=cfg.beta, alpha=cfg.alpha,
                               nll_norm="sequence", max_len=cfg.max_len, chat=cfg.chat,
                               system=cfg.system_turn)  # fmt: skip
        evaluation = evaluate(cfg, data, current, it / "eval", progress, baseline=out / "m0-eval")
        results.append({"model": f"M{t}", "iteration": t, **stats, **evaluation})
    return results


def train_m0(cfg: TPOConfig, data: TPOInputs, out: Path, progress: bool) -> Path:
    """M0: a new tiny Llama fine-tuned on the seed rows, the loss on the completions only."""
    words = [*td.vocabulary()]
    for r in data.ift + data.rm_pairs:
        words += " ".join(str(v) for v in r.values() if isinstance(v, str)).split()
    init = build_tiny(cfg.tiny, words, out / "init", cfg.seed)
    return finetune_sft(init, [r["prompt"] for r in data.ift], [r["completion"] for r in data.ift], cfg.max_len,
                        cfg.sft, m0_dir(out), progress, chat=cfg.chat)  # fmt: skip


def new_prompts(cfg: TPOConfig, data: TPOInputs, t: int, exclude: frozenset[str]) -> list[dict[str, Any]]:
    """Iteration ``t``'s prompts: the ``t``-th slice of the pool, or fresh instructions from the world's sampler
    (seeded by the run's seed and ``t``), none in ``exclude``."""
    n = cfg.prompts_per_iteration
    if data.pool is not None:
        xs = data.pool[(t - 1) * n : t * n]
    else:
        xs = td.draw(n, random.Random(f"tpo/{cfg.seed}/{t}"), data.families, exclude, data.world)
    return [{"id": f"{t}-{i}", "prompt": cfg.prompt(x), "instruction": x} for i, x in enumerate(xs)]


def _sample(cfg: TPOConfig, model: Any, tok: Any, t: int, progress: bool, part: list, offset: int) -> list[dict]:
    """``samples`` outputs for each prompt row of ``part``, split into thought and response (one row per output; a
    truncated output or one without the marker is a parse failure)."""
    sc = SampleConfig(n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed * 1000 + t,
                      max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, backend=cfg.backend)  # fmt: skip
    outs = sample_completions(model, tok, [r["prompt"] for r in part], sc, chat=cfg.chat, system=cfg.system_turn,
                              prompt_offset=offset,
                              progress=progress, label="thoughts" if cfg.thinking else "answers")  # fmt: skip
    rows = []
    for r, cands in zip(part, outs, strict=True):
        for j, c in enumerate(cands):
            split = None if c.truncated else cfg.split(c.text)
            rows.append({"id": r["id"], "prompt": r["prompt"], "instruction": r["instruction"], "sample": j,
                         "text": c.text, "truncated": c.truncated, "parsed": split is not None,
                         "thought": split[0] if split else "", "response": split[1] if split else ""})  # fmt: skip
    return rows


def _judge(cfg: TPOConfig, judge: Judge, seed: int, groups: list, offset: int) -> list[dict[str, Any]]:
    """The outputs of ``groups`` (one list per prompt) with a score for each parsed response (None: a parse failure,
    or no parseable judgment): the judge's score (``pointwise``), or the Bradley-Terry Elo of the prompt's responses
    judged pair by pair in both orders (``pairwise``; a lone parsed response scores 0), or the world's oracle score
    (``oracle``, a calibration diagnostic)."""
    rows = [r for g in groups for r in g]
    parsed = [r for r in rows if r["parsed"]]
    score: dict[tuple[str, int], float | None] = {}
    if cfg.judge_mode == "oracle":  # the diagnostic: which part of a failure is the judge's
        score = {(r["id"], r["sample"]): float(oracle_score(r["instruction"], r["response"])) for r in parsed}
    elif cfg.judge_mode == "pairwise":
        for group in group_by_question(parsed).values():
            elo = round_robin(judge, group[0]["instruction"], [r["response"] for r in group], seed=seed)[0] \
                if len(group) > 1 else [0.0]  # fmt: skip
            score.update({(r["id"], r["sample"]): float(e) for r, e in zip(group, elo, strict=True)})
    elif parsed:
        verdicts = judge.score([r["instruction"] for r in parsed], [r["response"] for r in parsed], seed=seed,
                               offset=offset * cfg.samples)  # fmt: skip
        score = {(r["id"], r["sample"]): v.mean for r, v in zip(parsed, verdicts, strict=True)}
    return [{**r, "score": score.get((r["id"], r["sample"]))} for r in rows]


def build_pairs(cfg: TPOConfig, judged: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """One pair per prompt in TRL's format (``prompt``, ``chosen``, ``rejected``: full outputs), chosen by
    ``tpo_pairs.thought_pair``; pairs longer than ``max_len`` tokens are dropped."""
    rows = []
    for qid, group in group_by_question(judged).items():
        pick = thought_pair([r["score"] for r in group], [len(r["response"]) for r in group], cfg.rho)
        if pick is None:
            continue
        c, r = group[pick.chosen], group[pick.rejected]
        rows.append({"prompt": c["prompt"], "chosen": c["text"], "rejected": r["text"], "id": qid,
                     "instruction": c["instruction"], "chosen_score": c["score"], "rejected_score": r["score"],
                     "rejected_unparsed": pick.rejected_unparsed, "rejected_ends": not r["truncated"]})  # fmt: skip
    return fitting_pairs(rows, tokenizer, cfg.max_len, cfg.chat, cfg.system_turn)


def sample_stats(judged: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """An iteration's sampling and judging: pairs, parse failures, and thought and response lengths."""
    n = len(judged) or 1
    parsed = [r for r in judged if r["parsed"]]
    return {
        "prompts": len({r["id"] for r in judged}),
        "pairs": len(pairs),
        "parse_failures": sum(not r["parsed"] for r in judged) / n,
        "pairs_rejecting_failures": sum(bool(p["rejected_unparsed"]) for p in pairs),
        "sample_thought_words": sum(len(r["thought"].split()) for r in parsed) / (len(parsed) or 1),
        "sample_response_words": sum(len(r["response"].split()) for r in parsed) / (len(parsed) or 1),
    }
