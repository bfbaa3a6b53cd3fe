"""Meta-Rewarding LMs (arXiv 2407.19594) in miniature (docs/reproductions.md, docs/self_rewarding.md).

World and M1 as in the Self-Rewarding reproduction, with meta-judge seed rows added to the seed data of every arm;
each seed's first arm trains M1 and the others start from it (``m1``), so every arm starts from the same model. Arms,
on the same prompts per iteration and the same budget (``system2.selfimprove.meta_rewarding``): Self-Rewarding (max
vs min, no judge pairs), Self-Rewarding with length control (rho = 0.3), Meta-Rewarding with rho = 0 and with rho =
0.3 (judge pairs from the meta-judge in iterations 1..``judge_iterations``). Every model is scored as in the
Self-Rewarding reproduction; the claims (``meta_rewarding_claims.py``) compare the arms' last models per test prompt
or judge pair, seeds as an outer level; the meta-judge's positional and score bias are reported. ``paper`` prints the
run to launch (configs/selfimprove/meta_rewarding_paper.yaml).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from system2.judges.prompts import MAX_SCORE, parse_score
from system2.repro import meta_rewarding_claims as mc
from system2.repro.framework import (
    Table,
    fmt,
    mean_std,
    print_claims,
    scale_with_settings,
    with_overrides,
    write_report,
)
from system2.repro.self_rewarding import cpu_run, pair_precision, start_or_launch
from system2.runs import read_parquet
from system2.selfimprove.meta_rewarding import MetaRewardingConfig, run_meta_rewarding
from system2.selfimprove.self_rewarding import m1_dir
from system2.selfimprove.self_rewarding_eval import ANSWERS, JUDGED_PAIRS
from system2.tasks.instructions import InstructionDataConfig
from system2.tasks.instructions_oracle import oracle_score

PAPER_RECIPE = "configs/selfimprove/meta_rewarding_paper.yaml"
# arm -> (rho per iteration, judge_iterations); rho 0.3 is "rho around 0.3" of the paper's 0.32 [S]
ARMS: dict[str, tuple[list[float], int]] = {
    mc.SR: ([], 0),
    mc.SR_LC: ([0.3], 0),
    mc.MR0: ([0.0], 2),
    mc.MR: ([0.3], 2),
}


def _meta_run(iterations: int, **kw: Any) -> MetaRewardingConfig:
    base = cpu_run(**kw)
    return MetaRewardingConfig(**{**asdict(base), "tiny": base.tiny, "judge": base.judge, "sft": base.sft,
                                  "train": base.train, "iterations": iterations, "meta_template": "compact",
                                  "max_judgment_chars": []})  # fmt: skip


@dataclass(frozen=True)
class MetaRewardingScale:
    """The world's files (``data``, with meta-judge seed rows), the loop's settings shared by the arms (``run``) and
    the arms."""

    data: InstructionDataConfig = field(default_factory=InstructionDataConfig)  # the instruction world's files
    run: MetaRewardingConfig = field(default_factory=MetaRewardingConfig)  # the loop; rho, judge_iterations per arm
    arms: tuple[str, ...] = tuple(ARMS)  # arms (see ARMS)
    seeds: int = 3  # seeds (weights, prompt draws, samples)
    recipe: str = ""  # paper scale: the config to launch


SCALES: dict[str, MetaRewardingScale] = {
    "tiny": MetaRewardingScale(InstructionDataConfig(ift=100, eft=150, eft_eval=0, test=60, pairs=60, meta=150),
                               _meta_run(2, d=64, layers=2, sft_steps=300, dpo_steps=20, prompts=60, judgments=3),
                               seeds=1),
    # the Self-Rewarding small world plus 1,630 meta-judge rows; the paper's 4 iterations
    "small": MetaRewardingScale(InstructionDataConfig(ift=3200, eft=1630, eft_eval=0, test=400, pairs=300, meta=1630),
                                _meta_run(4, d=128, layers=4, sft_steps=3000, dpo_steps=60, prompts=400,
                                          judgments=5)),
    "paper": MetaRewardingScale(seeds=1, recipe=PAPER_RECIPE),
}  # fmt: skip


def run(
    scale_name: str, out: Path, seeds: int | None = None, restart: bool = False, settings: dict | None = None
) -> dict[str, Any]:
    """Run every arm and seed, decide the claims and write ``out/report.md``; at the paper scale print the run."""
    scale = scale_with_settings(with_overrides(SCALES[scale_name], seeds=seeds), settings)
    data_dir = start_or_launch("meta-rewarding", scale_name, scale, out, restart,
                               "one run per arm on an 8B checkpoint and local files (Self-Rewarding: rho=[] "
                               "judge_iterations=0; after the first arm, m1=FIRST_OUT/sft/model skips retraining "
                               "M1)")  # fmt: skip
    if isinstance(data_dir, dict):
        return data_dir
    results: dict[str, list[list[dict[str, Any]]]] = {arm: [] for arm in scale.arms}
    answers: dict[str, list[list[dict[str, Any]]]] = {mc.M1: []}
    judged: dict[str, list[list[dict[str, Any]]]] = {mc.M1: []}
    trained: dict[str, list[int]] = {arm: [] for arm in scale.arms}
    for seed in range(scale.seeds):
        m1 = ""  # the seed's first arm trains M1, the others start from it
        for k, arm in enumerate(scale.arms):
            rho, judge_iterations = ARMS[arm]
            r = scale.run
            cfg = replace(r, data=str(data_dir), out=str(out / "runs" / f"{_slug(arm)}-seed{seed}"), seed=seed,
                          rho=rho, judge_iterations=judge_iterations, judge=replace(r.judge, seed=seed), m1=m1,
                          sft=replace(r.sft, seed=seed), train=replace(r.train, seed=seed))  # fmt: skip
            print(f"seed {seed}: {arm} (rho {rho or 'none'}, judge pairs in {judge_iterations} iteration(s))")
            rows = run_meta_rewarding(cfg)
            m1 = m1 or str(m1_dir(cfg.out) / "model")
            for row in rows[1:]:
                row.update(pair_precision(Path(cfg.out) / f"iter-{row['iteration']}" / "pairs.parquet"))
                row.update(judge_pair_precision(Path(cfg.out) / f"iter-{row['iteration']}"))
            results[arm].append(rows)
            trained[arm].append(trained_iterations(rows))
            evals = [Path(cfg.out) / "m1-eval"] + [Path(cfg.out) / f"iter-{r['iteration']}" / "eval"
                                                   for r in rows[1:] if "stopped" not in r]  # fmt: skip
            if k == 0:  # every arm's M1 is the same model
                answers[mc.M1].append(read_parquet(evals[0] / ANSWERS).to_pylist())
                judged[mc.M1].append(read_parquet(evals[0] / JUDGED_PAIRS).to_pylist())
            answers.setdefault(arm, []).append(read_parquet(evals[-1] / ANSWERS).to_pylist())
            judged.setdefault(arm, []).append(read_parquet(evals[-1] / JUDGED_PAIRS).to_pylist())
    claims = mc.decide_claims(mc.claim_data(answers, judged, trained, scale.run.iterations))
    metrics = {"scale": scale_name, "seeds": scale.seeds, "arms": list(scale.arms), "results": results}
    from system2.repro.meta_rewarding_figures import by_arm

    tables = [_table(results), _judge_table(results, scale.data.pairs)]
    write_report(out, "Meta-Rewarding reproduction", _intro(scale_name, scale), tables, [by_arm(results, out)],
                 claims, metrics)  # fmt: skip
    print_claims(claims)
    return metrics


def judge_pair_precision(iter_dir: Path) -> dict[str, float]:
    """How well the meta-judge chose an iteration's judge pairs, by the oracle (evaluation only): the share of pairs
    whose chosen judgment's score is nearer the oracle's score of the judged response than the rejected one's, the
    share farther, and the share whose chosen judgment gives the top score (the paper's score drift toward 5)."""
    pairs_path, disputed_path = iter_dir / "judge_pairs.parquet", iter_dir / "disputed.parquet"
    if not (pairs_path.is_file() and disputed_path.is_file()):
        return {}
    pairs = read_parquet(pairs_path).to_pylist()
    response = {r["id"]: r["response"] for r in read_parquet(disputed_path).to_pylist()}
    if not pairs:
        return {}
    nearer = farther = top = 0
    for p in pairs:
        truth = oracle_score(p["instruction"], response[p["id"]])
        chosen, rejected = parse_score(p["chosen"]), parse_score(p["rejected"])
        top += chosen == MAX_SCORE
        if chosen is not None and rejected is not None:
            nearer += abs(chosen - truth) < abs(rejected - truth)
            farther += abs(chosen - truth) > abs(rejected - truth)
    n = len(pairs)
    return {"judge_pairs_oracle_nearer": nearer / n, "judge_pairs_oracle_farther": farther / n,
            "judge_pairs_top_score": top / n}  # fmt: skip


def _slug(arm: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in arm.lower()).replace("--", "-")


COLUMNS = (  # (result key, header, percent), each from the last row that has it
    ("mean_oracle_score", "oracle score (0-5)", False),
    ("win_rate_vs_m1", "win rate vs M1, %", True),
    ("lc_win_rate_vs_m1", "length-controlled win rate, %", True),
    ("judge_pairwise_accuracy", "judge accuracy, %", True),
    ("mean_answer_words", "words per answer", False),
    ("judge_pairs", "judge pairs (last judge iteration)", False),
    ("meta_positional_bias", "meta-judge: first position wins, %", True),
    ("meta_score_bias", "meta-judge: higher score wins, %", True),
)


def trained_iterations(rows: list[dict[str, Any]]) -> int:
    """The DPO iterations a run trained: its result rows after M1's, less the one that stopped it."""
    return sum("stopped" not in r for r in rows[1:])


def last_value(rows: list[dict[str, Any]], key: str) -> Any:
    """The value of ``key`` in the last row that has it (None when none has)."""
    return next((r[key] for r in reversed(rows) if r.get(key) is not None), None)


def _table(results: dict[str, list[list[dict[str, Any]]]]) -> Table:
    out = []
    for arm, seeds in results.items():
        cells = []
        for key, _, pct in COLUMNS:
            values = [last_value(rows, key) for rows in seeds]
            cells.append("-" if any(v is None for v in values) else fmt(*mean_std(values), pct=pct))
        out.append([arm, ", ".join(str(trained_iterations(rows)) for rows in seeds), *cells])
    return Table("The last model of each arm (mean ± sd over seeds; DPO iterations per seed; meta-judge biases at its "
                 "last judge iteration)",
                 ["arm", "DPO iterations", *(h for _, h, _ in COLUMNS)], out)  # fmt: skip


JUDGE_COLUMNS = (  # (result key, header, percent), per Meta-Rewarding arm and iteration with judge pairs
    ("judge_pairs", "judge pairs", False),
    ("judge_pairs_oracle_nearer", "chosen judgment nearer the oracle, %", True),
    ("judge_pairs_oracle_farther", "chosen judgment farther, %", True),
    ("judge_pairs_top_score", "chosen judgment gives the top score, %", True),
    ("meta_positional_bias", "first position wins, %", True),
    ("meta_score_bias", "higher score wins, %", True),
    ("judge_pairwise_accuracy", "judge accuracy after training, %", True),
    ("judge_ties", "judge ties after training", False),
)


def _judge_table(results: dict[str, list[list[dict[str, Any]]]], held_out: int) -> Table:
    """The meta-judge's iterations: the judge pairs it chose (checked by the oracle), its biases, and the judge
    trained on them."""
    out = []
    for arm, seeds in results.items():
        for t in range(1, max(len(rows) for rows in seeds)):
            at = [rows[t] for rows in seeds if t < len(rows) and rows[t].get("judge_pairs") is not None]
            if not at:
                continue
            cells = []
            for key, _, pct in JUDGE_COLUMNS:
                values = [r[key] for r in at if r.get(key) is not None and r[key] == r[key]]
                cells.append(fmt(*mean_std(values), pct=pct) if values else "-")
            out.append([arm, str(t), str(len(at)), *cells])
    headers = [h if k != "judge_ties" else f"{h} (of {held_out} pairs)" for k, h, _ in JUDGE_COLUMNS]
    return Table("The meta-judge by iteration (mean ± sd over the seeds that reached it; the oracle checks the judge "
                 "pairs for this report only)", ["arm", "iteration", "seeds", *headers], out)  # fmt: skip


def _intro(name: str, scale: MetaRewardingScale) -> str:
    d, r = scale.data, scale.run
    return (
        f"Scale `{name}`: arms {', '.join(scale.arms)}; {scale.seeds} seed(s). World: the instruction world with "
        f"{d.ift} IFT, {d.eft} EFT and {d.meta} meta-judge seed rows (ours: the paper's model meta-judges zero-shot), "
        f"{d.test} test prompts and {d.pairs} judge pairs. Every arm's M1 is the same tiny Llama (d_model "
        f"{r.tiny.d_model}, {r.tiny.layers} layers, {r.sft.steps} SFT steps). Each of {r.iterations} iterations: "
        f"{r.prompts_per_iteration} new prompts, {r.responses_per_prompt} candidates, "
        f"{r.judge.judgments_per_response} judgments each; Meta-Rewarding arms add judge pairs in iterations 1-"
        f"{ARMS[mc.MR][1]} (every ordered pair of the most disputed candidate's judgments meta-judged once); one DPO "
        f"run of {r.train.steps} steps per iteration. Claims compare the arms' last models per test prompt or pair. "
        "Unconfirmed choices: docs/self_rewarding.md."
    )
