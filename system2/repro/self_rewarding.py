"""Self-Rewarding LMs (arXiv 2401.10020) in miniature (docs/reproductions.md, docs/self_rewarding.md).

World: the instruction world (``system2.tasks.instructions``): IFT and deliberately imperfect EFT seed data, the
template sampler for new prompts, held-out test prompts and judge pairs, an exact oracle that only evaluates. Per
seed: a tiny Llama trained from scratch on IFT + EFT is M1; then ``iterations`` rounds of the paper's loop
(``system2.selfimprove.self_rewarding``: N candidates, the model's own judgments averaged, best vs worst, DPO from the
previous model), giving M2, M3. The world's files are the same for every seed (the seed sets the weights, the prompt
draws and every sample), so models and seeds answer the same test prompts. Every model is scored per test prompt by
the oracle (win rate against M1, its length-controlled version, words per answer) and per held-out pair as a judge;
the claims (``self_rewarding_claims.py``) compare the last model with M1. ``paper`` prints the run to launch
(configs/selfimprove/self_rewarding_paper.yaml): it is not run here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from system2.judges.config import JudgeConfig
from system2.repro import self_rewarding_claims as sc
from system2.repro.framework import (
    Table,
    fmt,
    mean_std,
    print_claims,
    scale_with_settings,
    start_repro,
    with_overrides,
    write_report,
)
from system2.runs import read_parquet
from system2.selfimprove.self_rewarding import SelfRewardingConfig, run_self_rewarding
from system2.selfimprove.self_rewarding_eval import ANSWERS, JUDGED_PAIRS
from system2.selfimprove.sft import TinyLMConfig
from system2.tasks.instructions import InstructionDataConfig, generate
from system2.tasks.instructions_oracle import oracle_score
from system2.train import TrainConfig

PAPER_RECIPE = "configs/selfimprove/self_rewarding_paper.yaml"


def cpu_train(steps: int, lr: float, batch: int) -> TrainConfig:
    """A training stage at a CPU scale: warm-up over 5% of the steps, two checkpoints, 50 metrics records."""
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup=max(1, steps // 20), ckpt_every=max(1, steps // 2),
                       log_every=max(1, steps // 50), tensorboard=False)  # fmt: skip


@dataclass(frozen=True)
class SelfRewardingScale:
    """The world's files (``data``; its ``out`` is set per run) and the loop's settings (``run``; ``out``, ``data``
    and ``seed`` are set per seed)."""

    data: InstructionDataConfig = field(default_factory=InstructionDataConfig)  # the instruction world's files
    run: SelfRewardingConfig = field(default_factory=SelfRewardingConfig)  # the loop (M1, then the iterations)
    seeds: int = 3  # seeds (weights, prompt draws, samples)
    recipe: str = ""  # paper scale: the config to launch


def cpu_run(
    d: int, layers: int, sft_steps: int, dpo_steps: int, prompts: int, judgments: int, dpo_lr: float = 4e-4
) -> SelfRewardingConfig:
    """The loop at a CPU scale; the DPO learning rate is the SFT one / 5, the paper's ratio (5.5e-6 vs 1e-6)."""
    return SelfRewardingConfig(
        iterations=2, prompts_per_iteration=prompts, responses_per_prompt=4, max_new_tokens=16, max_len=64,
        batch_size=128, tiny=TinyLMConfig(d_model=d, layers=layers, heads=4, max_len=64),
        judge=JudgeConfig(template="compact", max_new_tokens=14, judgments_per_response=judgments, batch_size=128),
        sft=cpu_train(sft_steps, 2e-3, 32), train=cpu_train(dpo_steps, dpo_lr, 16),
    )  # fmt: skip


SCALES: dict[str, SelfRewardingScale] = {
    # every stage and claim in minutes on one core
    "tiny": SelfRewardingScale(InstructionDataConfig(ift=100, eft=150, eft_eval=0, test=60, pairs=60),
                               cpu_run(64, 2, 300, 20, 60, 3), seeds=1),
    # the paper's seed-data sizes (3,200 IFT, 1,630 EFT): M1's judge then agrees with the oracle on 80% of held-out
    # pairs, the paper's M1 on 78.7% of human-ranked ones (calibration runs in docs/reproductions.md); 3 seeds
    "small": SelfRewardingScale(InstructionDataConfig(ift=3200, eft=1630, eft_eval=0, test=400, pairs=300),
                                cpu_run(128, 4, 3000, 60, 400, 3, dpo_lr=4e-4), seeds=3),
    "paper": SelfRewardingScale(seeds=1, recipe=PAPER_RECIPE),
}  # fmt: skip


def run(
    scale_name: str, out: Path, seeds: int | None = None, restart: bool = False, settings: dict | None = None
) -> dict[str, Any]:
    """Run every seed, decide the claims and write ``out/report.md``; at the paper scale print the run to launch."""
    scale = scale_with_settings(with_overrides(SCALES[scale_name], seeds=seeds), settings)
    data_dir = start_or_launch("self-rewarding", scale_name, scale, out, restart,
                               "one run on a 70B-class checkpoint and local files")  # fmt: skip
    if isinstance(data_dir, dict):
        return data_dir
    results: dict[str, list[dict[str, Any]]] = {}
    answers: dict[str, list[list[dict[str, Any]]]] = {}
    judged: dict[str, list[list[dict[str, Any]]]] = {}
    for seed in range(scale.seeds):
        cfg = replace(scale.run, data=str(data_dir), out=str(out / "runs" / f"seed{seed}"), seed=seed,
                      judge=replace(scale.run.judge, seed=seed), sft=replace(scale.run.sft, seed=seed),
                      train=replace(scale.run.train, seed=seed))  # fmt: skip
        print(f"seed {seed}: M1 then {cfg.iterations} iteration(s) of {cfg.prompts_per_iteration} prompts")
        rows = run_self_rewarding(cfg)
        for row in rows:
            if row["iteration"] > 0:
                row.update(pair_precision(Path(cfg.out) / f"iter-{row['iteration']}" / "pairs.parquet"))
            results.setdefault(row["model"], []).append(row)
            if "stopped" in row:
                continue
            ev = Path(cfg.out) / ("m1-eval" if row["iteration"] == 0 else f"iter-{row['iteration']}/eval")
            answers.setdefault(row["model"], []).append(read_parquet(ev / ANSWERS).to_pylist())
            if (ev / JUDGED_PAIRS).is_file():
                judged.setdefault(row["model"], []).append(read_parquet(ev / JUDGED_PAIRS).to_pylist())
    complete = [m for m, seeds in answers.items() if len(seeds) == scale.seeds]  # a model every seed reached
    last = complete[-1]
    data = sc.claim_data({m: answers[m] for m in complete}, {m: judged[m] for m in complete if m in judged})
    claims = sc.decide_claims(data, last) if last != sc.M1 else []
    metrics = {"scale": scale_name, "seeds": scale.seeds, "models": list(results), "results": results}
    from system2.repro.self_rewarding_figures import by_iteration

    plots = [by_iteration(results, out)]
    write_report(out, "Self-Rewarding reproduction", _intro(scale_name, scale), [_table(results)], plots, claims,
                 metrics)  # fmt: skip
    print_claims(claims)
    return metrics


def start_or_launch(command: str, scale_name: str, scale: Any, out: Path, restart: bool, what: str) -> Path | dict:
    """At a scale with a ``recipe`` (paper), print the ``accelerate launch`` of ``system2 COMMAND`` and return
    ``{"scale", "launch"}``; otherwise record the reproduction in ``out`` and write the world's files, returning their
    directory."""
    if scale.recipe:
        cmd = f"accelerate launch -m system2.cli {command} --config {scale.recipe}"
        print(f"{command} at paper scale is {what} (set them in {scale.recipe}); score the answers "
              f"(iter-*/eval/answers.parquet) with AlpacaEval. Launch:\n  {cmd}")  # fmt: skip
        return {"scale": scale_name, "launch": [cmd]}
    start_repro(out, command, scale_name, scale, restart)
    generate(replace(scale.data, out=str(out / "data")))
    return out / "data"


def pair_precision(path: Path) -> dict[str, float]:
    """How well the model's own judge chose an iteration's pairs, by the oracle (evaluation only): the share of pairs
    whose chosen response the oracle scores higher than the rejected one, and the share it scores the same."""
    if not path.is_file():
        return {}
    pairs = read_parquet(path).to_pylist()
    if not pairs:
        return {}
    gaps = [oracle_score(p["instruction"], p["chosen"]) - oracle_score(p["instruction"], p["rejected"]) for p in pairs]
    return {"pairs_oracle_agrees": sum(g > 0 for g in gaps) / len(gaps),
            "pairs_oracle_ties": sum(g == 0 for g in gaps) / len(gaps)}  # fmt: skip


COLUMNS = (  # (result key, header, percent)
    ("mean_oracle_score", "oracle score (0-5)", False),
    ("win_rate_vs_m1", "win rate vs M1, %", True),
    ("lc_win_rate_vs_m1", "length-controlled win rate, %", True),
    ("judge_pairwise_accuracy", "judge pairwise accuracy, %", True),
    ("judge_spearman", "judge Spearman", False),
    ("mean_answer_words", "words per answer", False),
    ("pairs", "training pairs", False),
    ("pairs_oracle_agrees", "pairs the oracle agrees with, %", True),
    ("pairs_oracle_ties", "pairs the oracle ties, %", True),
)


def _table(results: dict[str, list[dict[str, Any]]]) -> Table:
    rows = []
    for model, runs in results.items():
        cells = []
        for key, _, pct in COLUMNS:
            values = [r.get(key) for r in runs]
            cells.append("-" if any(v is None for v in values) else fmt(*mean_std(values), pct=pct))
        rows.append([model, str(len(runs)), *cells])
    return Table("Per model (mean ± sd over seeds; M1 is the SFT model, M2 and M3 the DPO iterations)",
                 ["model", "seeds", *(h for _, h, _ in COLUMNS)], rows)  # fmt: skip


def _intro(name: str, scale: SelfRewardingScale) -> str:
    d, r = scale.data, scale.run
    return (
        f"Scale `{name}`: {scale.seeds} seed(s). World: the instruction world (docs/instructions.md) with {d.ift} IFT "
        f"and {d.eft} EFT seed examples (check bits flipped with probability {d.world.flip}, a +1 length bias on open "
        f"prompts of {d.world.bias_items}+ items), {d.test} held-out test prompts and {d.pairs} held-out judge pairs; "
        f"the same files for every seed. M1: a tiny Llama (d_model {r.tiny.d_model}, {r.tiny.layers} layers) trained "
        f"from scratch on IFT + EFT for {r.sft.steps} steps. Each of {r.iterations} iterations: "
        f"{r.prompts_per_iteration} new prompts from the template sampler, {r.responses_per_prompt} candidates at "
        f"T={r.temperature}, top-p {r.top_p}, {r.judge.judgments_per_response} judgments each by the model itself "
        f"(T={r.judge.temperature}), best vs worst (ties dropped), DPO beta {r.beta} for {r.train.steps} steps from "
        "the previous model. Evaluation: greedy answers scored by the oracle (win = higher oracle score than M1's "
        "answer, ties one half; the length-controlled win rate reads a logistic regression of the outcome on the "
        "tanh-standardised word-count difference at zero difference), and the model's own judge on the held-out "
        "pairs. Claims compare the last model with M1 per test prompt or per pair, seeds as an outer level. "
        "Unconfirmed choices are listed in docs/self_rewarding.md."
    )
