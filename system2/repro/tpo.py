"""Thinking LLMs / TPO (arXiv 2410.10630) in miniature (docs/reproductions.md, docs/tpo.md).

World: the TPO world (``system2.tasks.thought_data``): the instruction world's list families and families where a
scratchpad helps (sum, sort, lookup) or cannot (copy, upper), an exact oracle that only evaluates, and M0's seed
rows (direct answers, a few filler-thought examples, worked scratchpads under another prompt). Per seed: M0 and a
reward model trained on oracle-labelled pairs (the ArmoRM analogue) are made once; then the TPO arm (thought prompt)
and the Direct arm (the paper's baseline) run the identical loop (``system2.selfimprove.tpo``) from them. Every model
answers the same test prompts; the claims (``tpo_claims.py``) compare the arms prompt by prompt. ``paper`` prints
the runs to launch (configs/selfimprove/tpo_paper.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from system2.judges.config import JudgeConfig
from system2.repro import tpo_claims as tc
from system2.repro.framework import (
    Table,
    measured_cell,
    print_claims,
    scale_with_settings,
    start_repro,
    with_overrides,
    write_report,
)
from system2.repro.self_rewarding import cpu_train
from system2.runs import read_parquet
from system2.selfimprove.self_rewarding_eval import ANSWERS
from system2.selfimprove.sft import TinyLMConfig, m0_dir
from system2.selfimprove.tpo import TPOConfig, run_tpo
from system2.tasks.thought_data import ThoughtDataConfig, generate
from system2.tasks.thought_world import (
    THOUGHT_FAMILIES,
    ThoughtWorldConfig,
    family_of,
    oracle_score,
    thought_progress,
)

PAPER_RECIPE = "configs/selfimprove/tpo_paper.yaml"
RUN_DIRS = {tc.TPO: "tpo", tc.DIRECT: "direct", tc.ORACLE_JUDGE: "tpo-oracle-judge"}  # each arm's runs/ENTRY-seedN


def cpu_run(d: int, layers: int, sft_steps: int, rm_steps: int, dpo_steps: int, prompts: int, iterations: int,
            samples: int = 8, rho: float = 0.2, dpo_lr: float = 4e-4, alpha: float = 0.0) -> TPOConfig:  # fmt: skip
    """The loop at a CPU scale (by default the DPO learning rate a fifth of SFT's, as in Self-Rewarding's
    reproduction)."""
    return TPOConfig(
        iterations=iterations, prompts_per_iteration=prompts, samples=samples, rho=rho, max_new_tokens=48,
        max_len=112, batch_size=128, eval_resamples=3, alpha=alpha,
        tiny=TinyLMConfig(d_model=d, layers=layers, heads=4, max_len=112),
        judge=JudgeConfig(backend="reward_model", template="compact", batch_size=128),
        sft=cpu_train(sft_steps, 2e-3, 32), rm=cpu_train(rm_steps, 1e-3, 32), train=cpu_train(dpo_steps, dpo_lr, 16),
    )  # fmt: skip


@dataclass(frozen=True)
class TPOScale:
    """The world's files (``data``; its ``out`` is set per run), the loop's settings shared by both arms (``run``;
    ``out``, ``data``, ``seed`` and ``thinking`` are set per arm and seed)."""

    data: ThoughtDataConfig = field(default_factory=ThoughtDataConfig)  # the TPO world's files
    run: TPOConfig = field(default_factory=TPOConfig)  # the loop, shared by both arms
    seeds: int = 3  # seeds (weights, prompt draws, samples)
    oracle_arm: bool = False  # also run TPO with the world's oracle as its judge (a diagnostic: judge or learner?)
    recipe: str = ""  # paper scale: the config to launch


# small: calibrated with the oracle as the judge (docs/tpo.md): sums of 1-2 digits (longer ones no model of this size
# works out), THINK rows that sometimes hold the scratchpad, and a DPO stage (lr 1e-4, NLL on the chosen output)
# under which perfect pairs do not hurt the direct answerer
SMALL_WORLD = ThoughtWorldConfig(sum_digits=(1, 2))
SCALES: dict[str, TPOScale] = {
    "tiny": TPOScale(ThoughtDataConfig(direct=300, format_examples=30, worked=60, rm_pairs=300, test=60),
                     cpu_run(48, 2, 300, 100, 10, 40, 2, samples=4), seeds=1, oracle_arm=True),
    "small": TPOScale(ThoughtDataConfig(direct=4000, format_examples=400, format_worked=0.5, worked=3000,
                                        rm_pairs=3000, test=400, world=SMALL_WORLD),
                      replace(cpu_run(128, 4, 6000, 600, 200, 800, 4, dpo_lr=1e-4, alpha=1.0), rm_own_samples=1500),
                      oracle_arm=True),
    "paper": TPOScale(seeds=1, recipe=PAPER_RECIPE),
}  # fmt: skip


def run(
    scale_name: str, out: Path, seeds: int | None = None, restart: bool = False, settings: dict | None = None
) -> dict[str, Any]:
    """Run both arms for every seed, decide the claims and write ``out/report.md``; at the paper scale print the
    runs to launch."""
    scale = scale_with_settings(with_overrides(SCALES[scale_name], seeds=seeds), settings)
    if scale.recipe:
        cmds = [f"accelerate launch -m system2.cli tpo --config {scale.recipe} thinking={v}" for v in ("true", "false")]
        print(f"tpo at paper scale is two runs on an 8B checkpoint, a local reward model and local files (set them in "
              f"{scale.recipe}; the Direct run with m0= and judge.model= of the first); score the answers "
              f"(iter-*/eval/answers.parquet) with AlpacaEval. Launch:\n  " + "\n  ".join(cmds))  # fmt: skip
        return {"scale": scale_name, "launch": cmds}
    start_repro(out, "tpo", scale_name, scale, restart)
    data_dir = out / "data"
    generate(replace(scale.data, out=str(data_dir)))
    r = scale.run
    arms = [(tc.TPO, True, r.judge_mode), (tc.DIRECT, False, r.judge_mode)]
    arms += [(tc.ORACLE_JUDGE, True, "oracle")] if scale.oracle_arm else []
    results: dict[str, list[list[dict[str, Any]]]] = {arm: [] for arm, _, _ in arms}
    answers: dict[str, list[list[list[dict[str, Any]]]]] = {arm: [] for arm, _, _ in arms}
    for seed in range(scale.seeds):
        first = out / "runs" / f"{RUN_DIRS[tc.TPO]}-seed{seed}"
        for arm, thinking, mode in arms:
            cfg = replace(r, data=str(data_dir), out=str(out / "runs" / f"{RUN_DIRS[arm]}-seed{seed}"), seed=seed,
                          thinking=thinking, judge_mode=mode, sft=replace(r.sft, seed=seed),
                          rm=replace(r.rm, seed=seed), train=replace(r.train, seed=seed))  # fmt: skip
            if arm != tc.TPO:  # the same M0 and reward model as the TPO arm
                cfg = replace(cfg, m0=str(m0_dir(first) / "model"),
                              judge=replace(r.judge, model=str(first / "rm" / "model")))  # fmt: skip
            print(f"seed {seed}: {arm}, {cfg.iterations} iteration(s) of {cfg.prompts_per_iteration} prompts")
            rows = run_tpo(cfg)
            for row in rows[1:]:
                row.update(pair_precision(Path(cfg.out) / f"iter-{row['iteration']}" / "pairs.parquet", cfg))
            results[arm].append(rows)
            evals = [Path(cfg.out) / "m0-eval"] + [Path(cfg.out) / f"iter-{x['iteration']}" / "eval"
                                                   for x in rows[1:] if "stopped" not in x]  # fmt: skip
            for t, ev in enumerate(evals):
                if len(answers[arm]) <= t:
                    answers[arm].append([])
                answers[arm][t].append(read_parquet(ev / ANSWERS).to_pylist())
    complete = {arm: [a for a in per_t if len(a) == scale.seeds] for arm, per_t in answers.items()}
    claims = tc.decide_claims(tc.claim_data(complete))
    metrics = {"scale": scale_name, "seeds": scale.seeds, "results": results}
    from system2.repro.tpo_figures import by_family, by_iteration

    figures = [by_family(complete, out), by_iteration(complete, out)]
    write_report(out, "TPO reproduction", _intro(scale_name, scale), [_table(results)], figures, claims, metrics)
    print_claims(claims)
    return metrics


def pair_precision(path: Path, cfg: TPOConfig) -> dict[str, float]:
    """How well the judge chose an iteration's pairs, by the oracle (evaluation only): the share of pairs whose
    chosen response part the oracle scores higher than the rejected one's (a parse failure's response is empty), and
    the share it scores the same; with thinking, on prompts where a scratchpad helps, the share of sampled thoughts
    and of chosen thoughts that hold the whole scratchpad (what TPO can select, and what it did)."""
    if not path.is_file():
        return {}
    pairs = read_parquet(path).to_pylist()
    if not pairs:
        return {}

    def score(p: dict[str, Any], side: str) -> int:
        split = cfg.split(p[side])
        return oracle_score(p["instruction"], split[1] if split else "")

    def whole(instruction: str, text: str) -> bool:
        split = cfg.split(text)
        return split is not None and thought_progress(instruction, split[0]) == 1.0

    gaps = [score(p, "chosen") - score(p, "rejected") for p in pairs]
    out = {"pairs_oracle_agrees": sum(g > 0 for g in gaps) / len(gaps),
           "pairs_oracle_ties": sum(g == 0 for g in gaps) / len(gaps)}  # fmt: skip
    samples = path.with_name("samples.parquet")
    if cfg.thinking and samples.is_file():
        helped = [s for s in read_parquet(samples).to_pylist() if _helps(s["instruction"])]
        chosen = [p for p in pairs if _helps(p["instruction"])]
        if helped and chosen:
            out["samples_whole_scratchpad"] = sum(whole(s["instruction"], s["text"]) for s in helped) / len(helped)
            out["chosen_whole_scratchpad"] = sum(whole(p["instruction"], p["chosen"]) for p in chosen) / len(chosen)
    return out


def _helps(instruction: str) -> bool:
    """Whether ``instruction`` is of a family where a scratchpad helps."""
    return bool(THOUGHT_FAMILIES.get(family_of(instruction) or ""))


COLUMNS = (  # (result key, header, percent)
    ("judge_accuracy", "judge accuracy (held-out pairs), %", True),
    ("mean_oracle_score", "oracle score (0-5)", False),
    ("win_rate_vs_m0", "win rate vs M0, %", True),
    ("mean_thought_words", "thought words", False),
    ("mean_response_words", "response words", False),
    ("thought_progress", "scratchpad progress, %", True),
    ("parse_failures", "parse failures (test)", False),
    ("pairs", "training pairs", False),
    ("pairs_rejecting_failures", "pairs rejecting a parse failure", False),
    ("pairs_oracle_agrees", "pairs the oracle agrees with, %", True),
    ("pairs_oracle_ties", "pairs the oracle ties, %", True),
    ("samples_whole_scratchpad", "samples with a whole scratchpad, %", True),
    ("chosen_whole_scratchpad", "chosen with a whole scratchpad, %", True),
)


def _table(results: dict[str, list[list[dict[str, Any]]]]) -> Table:
    rows = []
    for arm, seeds in results.items():
        for t in range(max(len(s) for s in seeds)):
            at = [s[t] for s in seeds if t < len(s)]
            cells = [measured_cell(at, key, pct) for key, _, pct in COLUMNS]
            rows.append([arm, f"M{t}" + (" (stopped)" if any("stopped" in r for r in at) else ""), *cells])
    return Table("Each model (mean ± sd over the seeds that reached it)", ["arm", "model", *(h for _, h, _ in COLUMNS)],
                 rows)  # fmt: skip


def _intro(name: str, scale: TPOScale) -> str:
    d, r = scale.data, scale.run
    own = f" (+ pairs of M0's own outputs to {r.rm_own_samples} prompts)" if r.rm_own_samples else ""
    return (
        f"Scale `{name}`: {scale.seeds} seed(s). World: families {', '.join(d.families)}; M0's seed rows "
        f"{d.direct} direct, {d.format_examples} THINK ({d.format_worked:.0%} of those where a scratchpad helps hold "
        f"it, the rest a filler thought), {d.worked} worked-scratchpad; the judge: a reward model on {d.rm_pairs} "
        f"oracle-labelled pairs{own}, mode {r.judge_mode}; "
        f"{d.test} test prompts. M0 is a tiny Llama (d_model {r.tiny.d_model}, {r.tiny.layers} layers, "
        f"{r.sft.steps} SFT steps). Each of {r.iterations} iterations: {r.prompts_per_iteration} fresh prompts, "
        f"{r.samples} samples each, rho {r.rho}, one DPO run of {r.train.steps} steps at lr {r.train.lr:g} (beta "
        f"{r.beta}, NLL weight {r.alpha}). Both arms share M0 and the reward model."
        + (
            f" The arm '{tc.ORACLE_JUDGE}' (a diagnostic, in no claim) runs TPO with the world's oracle as the judge: "
            "what TPO does when every pair is right."
            if scale.oracle_arm
            else ""
        )
        + " Unconfirmed choices: docs/tpo.md."
    )
