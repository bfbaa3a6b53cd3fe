"""LIFT-DPO and standard DPO on one preference set ("Following Length Constraints in Instructions", Yuan et al.,
arXiv 2406.17744, Sec. 4-5; docs/lift.md).

Stages, each kept in the run directory and skipped when present (a killed run resumes):

1. M0: the starting policy (``model``, or another run's ``m0``, or a tiny Llama fine-tuned on ``sft_data``: the
   paper's SFT on OpenAssistant);
2. the preference set: ``pairs`` as given (the paper: OpenAssistant rank-0 vs rank-1 pairs), or, in the knowledge
   world, ``pair_samples`` samples of M0 per prompt ranked by the world's oracle, best against worst (ties and
   truncated samples left out; R4 of the design brief);
3. the training pairs: the preference set itself (``method=dpo``) or the LIFT-DPO pairs made from it
   (``method=lift``, ``lift_pairs``);
4. one DPO run from M0 with M0 as the reference;
5. M0 and the trained model answer the length-instructed benchmark (``lift_eval``).

Our choices where the paper is silent: DPO's beta and learning rate [R]; with ``epochs`` the steps follow the
number of training pairs, so both methods pass over their pairs equally often (LIFT-DPO's set is about three times
as large); the preference set's prompts are plain instructions, rendered as every other prompt (``prompt_format``).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from system2 import dist
from system2.config import ConfigError
from system2.judges.config import JudgeConfig
from system2.lm.sampling import SampleConfig, sample_completions
from system2.selfimprove.dpo import dpo_finetune, fitting_pairs, reference_logprobs_rows
from system2.selfimprove.lift_pairs import lift_pairs
from system2.selfimprove.loop import PolicyConfig, finetune_sft, group_by_question
from system2.selfimprove.sft import TinyLMConfig, build_tiny, m0_dir
from system2.selfimprove.stages import cached_rows, sharded_rows
from system2.tasks import knowledge as kw
from system2.tasks.instructions import checked_rows
from system2.tasks.length import TEMPLATE, read_li_eval, word_count
from system2.tasks.lift_data import read_kb
from system2.train import TrainConfig

METHODS = ("lift", "dpo")


@dataclass
class LIFTConfig(PolicyConfig):
    """``model`` and ``m0`` empty: a tiny Llama for the world's words is built and trained on ``sft_data`` first."""

    data: str = ""  # a LIFT world directory (made by the lift-data command): kb, sft, pair_prompts, li_eval files
    sft_data: str = ""  # M0's seed rows (prompt, completion); "": DATA/sft.parquet (read only without model and m0)
    pairs: str = ""  # a preference set (prompt, chosen, rejected); "": M0's samples on DATA/pair_prompts, ranked
    #                  by the world's oracle
    li_eval: str = ""  # the benchmark (instruction, original_instruction, max_len, output); "": DATA/li_eval.jsonl
    li_baselines: str = ""  # MT-Bench-LI only: its baseline answers file (li_eval then holds its question file)
    m0: str = ""  # a trained M0 to start from (another run's OUT/sft/model); "": SFT on sft_data (or model as it is)
    method: str = "lift"  # lift (LIFT-DPO pairs) | dpo (standard DPO on the same preference set)
    keep_original: bool = True  # lift: keep the original pairs beside the length-instructed ones [R: not stated]
    min_gap: int = 10  # lift: pairs whose responses differ by fewer words are dropped (paper: 10)
    slack: int = 10  # lift: the order-keeping pair's limit is the longer response's words + slack (paper: 10)
    pair_samples: int = 4  # world only: M0 samples per preference prompt, ranked by the oracle (best vs worst)
    temperature: float = 1.0  # world only: sampling temperature of those samples
    top_p: float = 1.0  # world only: their nucleus sampling mass
    epochs: float = 0.0  # > 0: DPO steps = epochs x training pairs / batch (train.steps ignored); 0: train.steps
    beta: float = 0.1  # DPO beta [R: not stated]
    alpha: float = 0.0  # NLL weight on the chosen response (0: plain DPO)
    limit_scales: list[float] = field(default_factory=lambda: [0.5, 2.0])  # benchmark limits also x these (OOD)
    eval_limit: int = 0  # benchmark rows used (0: all)
    eval_oracle: bool = True  # the world's oracle decides wins (needs DATA/kb.parquet); false: judge (both orders)
    tiny: TinyLMConfig = field(default_factory=TinyLMConfig)  # the tiny Llama built when model is empty
    judge: JudgeConfig = field(default_factory=lambda: JudgeConfig(backend="hf"))  # eval_oracle=false: the judge
    #                                                   that compares a response with the baseline (hf or http)
    sft: TrainConfig = field(  # M0: fine-tuning on the seed rows
        default_factory=lambda: TrainConfig(steps=1500, batch_size=32, lr=1e-3, warmup=100)
    )
    train: TrainConfig = field(  # the DPO run (paper: lr not stated [R])
        default_factory=lambda: TrainConfig(steps=200, batch_size=16, lr=5e-6, warmup=10)
    )

    KIND = "lift"  # the run record's kind

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field and its fix (the files are read by ``read_inputs``)."""
        if not self.out:
            raise ConfigError("set out=DIR (the run directory)")
        if not self.data and not self.li_eval:
            raise ConfigError("set data=DIR (a LIFT world: system2 lift-data --out DIR), or the files one by one "
                              "(li_eval=FILE pairs=FILE and model=DIR or sft_data=FILE)")  # fmt: skip
        self.check_models("model", "m0")
        self.check_runtime()
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.min_gap < 1 or self.slack < 0 or self.pair_samples < 2:
            raise ConfigError(f"need min_gap >= 1, slack >= 0 and pair_samples >= 2, got {self.min_gap}, "
                              f"{self.slack}, {self.pair_samples}")  # fmt: skip
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.epochs < 0 or self.eval_limit < 0:
            raise ConfigError("need temperature >= 0, 0 < top_p <= 1, epochs >= 0 and eval_limit >= 0")
        if self.beta <= 0 or self.alpha < 0:
            raise ConfigError(f"need beta > 0 and alpha >= 0, got {self.beta} and {self.alpha}")
        if any(not (s > 0 and math.isfinite(s)) for s in self.limit_scales):
            raise ConfigError(f"limit_scales must be positive numbers, got {self.limit_scales}")
        if not self.eval_oracle:
            self.judge.validate()
            if self.judge.backend == "policy":
                raise ConfigError("judge.backend=policy: the judge is another model (hf or http), or eval_oracle=true")
        for name in ("sft", "train"):
            getattr(self, name).validate(name)

    def render(self, instruction: str) -> str:
        """The prompt the policy sees for ``instruction`` (raw and chat: as it is; the chat template is applied
        by the sampler and the trainer)."""
        return instruction if self.prompt_format in ("raw", "chat") else self.prompt_format.format(question=instruction)


@dataclass(frozen=True)
class LIFTInputs:
    """What a run reads: M0's seed rows, the preference set (or the prompts to make it from), the benchmark, and
    the knowledge base when the oracle scores."""

    sft: list[dict[str, Any]]
    pairs: list[dict[str, Any]] | None
    pair_prompts: list[str]
    li_eval: list[dict[str, Any]]
    kb: kw.KB | None


def read_inputs(cfg: LIFTConfig) -> LIFTInputs:
    """The inputs ``cfg`` names, read and checked before any compute (errors name the file, row and fix)."""
    need_sft = not (cfg.model or cfg.m0)
    sft = checked_rows("sft_data", cfg.file("sft_data", "sft.parquet"), ("prompt", "completion")) if need_sft else []
    pairs = checked_rows("pairs", cfg.pairs, ("prompt", "chosen", "rejected")) if cfg.pairs else None
    prompt_rows = [] if pairs is not None else checked_rows("pairs", cfg.file("", "pair_prompts.parquet"),
                                                            ("instruction",))  # fmt: skip
    prompts = [r["instruction"] for r in prompt_rows]
    path = cfg.file("li_eval", "li_eval.jsonl")
    try:
        li_eval = read_li_eval(path, cfg.li_baselines)[: cfg.eval_limit or None]
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"li_eval: {e}") from None
    kb = None
    if cfg.eval_oracle or pairs is None:
        kb_path = cfg.file("", "kb.parquet")
        if not kb_path or not Path(kb_path).is_file():
            raise ConfigError("the world's oracle needs DATA/kb.parquet (data=DIR made by system2 lift-data); on "
                              "other data set eval_oracle=false and pairs=FILE")  # fmt: skip
        kb = read_kb(kb_path)
        for text in [r["original_instruction"] for r in li_eval] + prompts:
            if kw.entity_of(text) not in kb:
                raise ConfigError(f"{text[:60]!r} does not ask for an entity of {kb_path}: the oracle cannot score "
                                  "it; set eval_oracle=false (and pairs=FILE) for other data")  # fmt: skip
    return LIFTInputs(sft, pairs, prompts, li_eval, kb)


# ----- the run -----------------------------------------------------------------------------------------------------
def run_lift(cfg: LIFTConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) every stage; one result row per model (M0, then the trained one)."""
    from system2.selfimprove.lift_eval import evaluate

    cfg.validate()
    data = read_inputs(cfg)
    out = cfg.start(cfg.KIND, restart)
    m0 = Path(cfg.m0) if cfg.m0 else Path(cfg.model) if cfg.model else train_m0(cfg, data, out, progress)
    m0_eval = evaluate(cfg, data, m0, out / "m0-eval", progress)  # before the sampler loads: one copy at a time
    model, tok = cfg.load(m0)
    if data.pairs is not None:
        preferences = data.pairs
    else:
        samples = sharded_rows(out / "pair_samples.parquet", data.pair_prompts,
                               partial(_sample, cfg, model, tok, progress))  # fmt: skip
        preferences = cached_rows(out / "preferences.parquet", rank_samples, samples, data.kb)
    pairs = cached_rows(out / "train_pairs.parquet", training_pairs, cfg, preferences, tok)
    results = [{"model": "M0", **m0_eval, **pair_stats(preferences, pairs)}]
    batch = cfg.train.batch_size * dist.world_size()
    if len(pairs) < batch:
        return results + [{"model": cfg.method, "stopped": f"{len(pairs)} pairs, fewer than one batch ({batch})"}]
    ref = sharded_rows(out / "reference.parquet", pairs,
                       partial(reference_logprobs_rows, m0, model, tok, cfg, progress))  # fmt: skip
    del model
    trained = dpo_finetune(m0, pairs, ref, dpo_settings(cfg, len(pairs)), out / "train", progress, beta=cfg.beta,
                           alpha=cfg.alpha, nll_norm="sequence", max_len=cfg.max_len, chat=cfg.chat)  # fmt: skip
    return results + [{"model": cfg.method, **evaluate(cfg, data, trained, out / "eval", progress)}]


def train_m0(cfg: LIFTConfig, data: LIFTInputs, out: Path, progress: bool) -> Path:
    """M0: a new tiny Llama fine-tuned on the seed rows, the loss on the completions only."""
    words = [*kw.vocabulary(data.kb or {}), *TEMPLATE.format(max_len="", instruction="").split()]
    words += [str(n) for n in range(1, _largest_limit(cfg, data) + 1)]  # every limit a prompt can state
    texts = [f"{r['prompt']} {r['completion']}" for r in data.sft] + data.pair_prompts
    texts += [f"{p['prompt']} {p['chosen']} {p['rejected']}" for p in data.pairs or []]
    texts += [f"{r['instruction']} {r['original_instruction']} {r['output']}" for r in data.li_eval]
    words += " ".join(texts).split()
    init = build_tiny(cfg.tiny, words, out / "init", cfg.seed)
    return finetune_sft(init, [cfg.render(r["prompt"]) for r in data.sft], [r["completion"] for r in data.sft],
                        cfg.max_len, cfg.sft, m0_dir(out), progress, chat=cfg.chat)  # fmt: skip


def _largest_limit(cfg: LIFTConfig, data: LIFTInputs) -> int:
    """The largest limit a prompt of this run can state: a benchmark limit at its largest scale, or a training pair's
    (a response's words, at most ``max_new_tokens``, plus ``slack``)."""
    bench = max((r["max_len"] for r in data.li_eval), default=1) * max([1.0, *cfg.limit_scales])
    pairs = max((word_count(t) for p in data.pairs or [] for t in (p["chosen"], p["rejected"])), default=0)
    return math.floor(bench + 0.5) + max(pairs, cfg.max_new_tokens) + cfg.slack


def _sample(cfg: LIFTConfig, model: Any, tok: Any, progress: bool, part: list, offset: int) -> list[dict[str, Any]]:
    """``pair_samples`` samples of M0 for each preference prompt of ``part`` (one row per sample)."""
    sc = SampleConfig(n=cfg.pair_samples, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed,
                      max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, backend=cfg.backend)  # fmt: skip
    outs = sample_completions(model, tok, [cfg.render(x) for x in part], sc, chat=cfg.chat, prompt_offset=offset,
                              progress=progress, label="preference samples")  # fmt: skip
    return [{"id": str(offset + i), "instruction": x, "sample": j, "text": c.text, "truncated": c.truncated}
            for i, (x, cands) in enumerate(zip(part, outs, strict=True)) for j, c in enumerate(cands)]  # fmt: skip


def rank_samples(samples: list[dict[str, Any]], kb: kw.KB) -> list[dict[str, Any]]:
    """One pair per prompt (its ``prompt`` the instruction): the finished, non-empty sample the oracle scores
    highest against the one it scores lowest (among equals, the earliest is chosen and the latest rejected); a
    prompt with fewer than two such samples, or whose samples all score the same, gives none."""
    rows = []
    for qid, group in group_by_question(samples).items():
        done = [(kw.oracle_score(kb, r["instruction"], r["text"]), r) for r in group
                if not r["truncated"] and r["text"].strip()]  # fmt: skip
        if len(done) < 2:
            continue
        (s_best, best), (s_worst, worst) = max(done, key=lambda x: x[0]), min(done[::-1], key=lambda x: x[0])
        if s_best > s_worst:
            rows.append({"id": qid, "prompt": best["instruction"], "chosen": best["text"], "rejected": worst["text"],
                         "chosen_score": s_best, "rejected_score": s_worst})  # fmt: skip
    return rows


def training_pairs(cfg: LIFTConfig, preferences: list[dict[str, Any]], tok: Any) -> list[dict[str, Any]]:
    """The preference set as it is (``dpo``) or LIFT-DPO's pairs from it (``lift``, limits drawn with the run's
    seed), their instructions rendered as prompts; pairs longer than ``max_len`` tokens are dropped."""
    if cfg.method == "dpo":
        rows = [{**p, "kind": "original", "max_len": 0, "flipped": False} for p in preferences]
    else:
        rows = lift_pairs(preferences, random.Random(f"lift/{cfg.seed}/limits"), min_gap=cfg.min_gap,
                          slack=cfg.slack, keep_original=cfg.keep_original)  # fmt: skip
    rows = [{**r, "instruction": r["prompt"], "prompt": cfg.render(r["prompt"])} for r in rows]
    return fitting_pairs(rows, tok, cfg.max_len, cfg.chat)


def dpo_settings(cfg: LIFTConfig, n_pairs: int) -> TrainConfig:
    """``train``, with the steps set by ``epochs`` when it is > 0 (warm-up capped at the steps)."""
    if not cfg.epochs:
        return cfg.train
    steps = max(1, math.ceil(cfg.epochs * n_pairs / (cfg.train.batch_size * dist.world_size())))
    return dataclasses.replace(cfg.train, steps=steps, warmup=min(cfg.train.warmup, steps),
                               ckpt_every=min(cfg.train.ckpt_every, steps))  # fmt: skip


def pair_stats(preferences: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The preference set and the training pairs: counts, how often the longer response wins, and the flips."""
    from system2.tasks.length import word_count

    longer = [word_count(p["chosen"]) > word_count(p["rejected"]) for p in preferences]
    return {
        "preference_pairs": len(preferences),
        "longer_chosen": sum(longer) / len(longer) if longer else float("nan"),
        "training_pairs": len(pairs),
        "length_instructed_pairs": sum(p["kind"] != "original" for p in pairs),
        "flipped_pairs": sum(bool(p["flipped"]) for p in pairs),
    }
