"""LIFT ("Following Length Constraints in Instructions", arXiv 2406.17744) in miniature (docs/reproductions.md,
docs/lift.md).

World: the knowledge world (``system2.tasks.lift_data``): entities with a few facts each, answers that list facts,
an oracle that scores correct distinct facts minus twice the wrong ones (longer is better, R4 of the design brief),
and a length-instructed benchmark over held-out entities whose limit is the shortest of three reference answers.
Per seed: the standard-DPO arm trains M0 and ranks M0's samples into the preference set by the oracle; the LIFT-DPO
arm starts from that M0 and trains on the same preference set plus its length-instructed pairs
(``system2.selfimprove.lift``). The claims (``lift_claims.py``) compare the arms prompt by prompt. ``paper`` prints
the runs to launch (configs/selfimprove/lift_paper.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from system2.repro import lift_claims as lc
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
from system2.selfimprove import lift_eval
from system2.selfimprove.lift import LIFTConfig, run_lift
from system2.selfimprove.self_rewarding_eval import ANSWERS
from system2.selfimprove.sft import TinyLMConfig, m0_dir
from system2.tasks.knowledge import KnowledgeConfig
from system2.tasks.lift_data import LIFTDataConfig, generate

PAPER_RECIPE = "configs/selfimprove/lift_paper.yaml"
M0 = "M0"


def cpu_run(d: int, layers: int, sft_steps: int, gap: int, epochs: float, dpo_lr: float) -> LIFTConfig:
    """The run at a CPU scale: facts are two words, so the paper's 10-word gap and slack become ``gap`` (ours); both
    arms train DPO+NLL (alpha 1), since plain DPO on the length-instructed pairs collapsed here (docs/lift.md)."""
    return LIFTConfig(
        max_new_tokens=40, max_len=80, batch_size=128, pair_samples=4, min_gap=gap, slack=gap, epochs=epochs, alpha=1.0,
        tiny=TinyLMConfig(d_model=d, layers=layers, heads=4, max_len=80),
        sft=cpu_train(sft_steps, 2e-3, 32), train=cpu_train(1, dpo_lr, 16),
    )  # fmt: skip


@dataclass(frozen=True)
class LIFTScale:
    """The world's files (``data``; its ``out`` is set per run) and the run's settings shared by both arms
    (``run``; ``out``, ``data``, ``seed``, ``method``, ``m0`` and ``pairs`` are set per arm and seed)."""

    data: LIFTDataConfig = field(default_factory=LIFTDataConfig)  # the LIFT world's files
    run: LIFTConfig = field(default_factory=LIFTConfig)  # the run, shared by both arms
    seeds: int = 3  # seeds (weights, samples, limits drawn for the pairs)
    recipe: str = ""  # paper scale: the config to launch


SCALES: dict[str, LIFTScale] = {
    "tiny": LIFTScale(LIFTDataConfig(test_entities=12, sft_per_entity=30, world=KnowledgeConfig(entities=40)),
                      cpu_run(48, 2, 300, 2, 2.0, 1e-4), seeds=1),
    "small": LIFTScale(LIFTDataConfig(test_entities=300, sft_per_entity=30, pair_prompts_per_entity=8,
                                      world=KnowledgeConfig(entities=500)),
                       cpu_run(128, 4, 3000, 4, 4.0, 1e-4)),
    "paper": LIFTScale(seeds=1, recipe=PAPER_RECIPE),
}  # fmt: skip


def run(
    scale_name: str, out: Path, seeds: int | None = None, restart: bool = False, settings: dict | None = None
) -> dict[str, Any]:
    """Run both arms for every seed, decide the claims and write ``out/report.md``; at the paper scale print the
    runs to launch."""
    scale = scale_with_settings(with_overrides(SCALES[scale_name], seeds=seeds), settings)
    if scale.recipe:
        cmds = [
            f"accelerate launch -m system2.cli lift --config {scale.recipe} method=lift",
            f"accelerate launch -m system2.cli lift --config {scale.recipe} method=dpo out=runs/lift-dpo",
        ]
        print(f"lift at paper scale is two runs on an 8B (or 70B) SFT checkpoint with a local preference set, the "
              f"AlpacaEval-LI file and a judge server (set them in {scale.recipe}). "
              f"Launch:\n  " + "\n  ".join(cmds))  # fmt: skip
        return {"scale": scale_name, "launch": cmds}
    start_repro(out, "lift", scale_name, scale, restart)
    data_dir = out / "data"
    generate(replace(scale.data, out=str(data_dir)))
    results: dict[str, list[dict[str, Any]]] = {M0: [], lc.DPO: [], lc.LIFT: []}
    answers: dict[str, list[list[dict[str, Any]]]] = {M0: [], lc.DPO: [], lc.LIFT: []}
    for seed in range(scale.seeds):
        r = scale.run
        first = out / "runs" / f"dpo-seed{seed}"
        for arm, method in ((lc.DPO, "dpo"), (lc.LIFT, "lift")):
            cfg = replace(r, data=str(data_dir), out=str(out / "runs" / f"{method}-seed{seed}"), seed=seed,
                          method=method, sft=replace(r.sft, seed=seed), train=replace(r.train, seed=seed))  # fmt: skip
            if method == "lift":  # the same M0 and the same preference set as the DPO arm
                cfg = replace(cfg, m0=str(m0_dir(first) / "model"), pairs=str(first / "preferences.parquet"))
            print(f"seed {seed}: {arm}")
            m0_row, row = run_lift(cfg)
            if "stopped" in row:
                raise RuntimeError(f"seed {seed}, {arm}: {row['stopped']}; give the preference set more prompts "
                                   "(data.pair_prompts_per_entity) or lower run.train.batch_size")  # fmt: skip
            if method == "dpo":
                results[M0].append(m0_row)
                answers[M0].append(read_parquet(Path(cfg.out) / "m0-eval" / ANSWERS).to_pylist())
            results[arm].append({**row, **{k: v for k, v in m0_row.items() if k.endswith("pairs")}})
            answers[arm].append(read_parquet(Path(cfg.out) / "eval" / ANSWERS).to_pylist())
    claims = lc.decide_claims(lc.claim_data({a: answers[a] for a in (lc.DPO, lc.LIFT)}))
    metrics = {"scale": scale_name, "seeds": scale.seeds, "results": results}
    from system2.repro.lift_figures import limits_figure

    figure = limits_figure(answers, list(scale.run.limit_scales), out)
    table = _table(results, list(scale.run.limit_scales))
    write_report(out, "LIFT reproduction", _intro(scale_name, scale), [table], [figure], claims, metrics)
    print_claims(claims)
    return metrics


COLUMNS = (  # (result key, header, percent); the scaled limits' columns follow the first
    ("li_violation", "violations, %", True),
    ("li_win_rate", "length-instructed win rate, %", True),
    ("li_words", "words (length-instructed)", False),
    ("li_limit", "mean limit", False),
    ("plain_win_rate", "plain win rate, %", True),
    ("plain_words", "words (plain)", False),
    ("plain_oracle", "oracle score (plain)", False),
    ("training_pairs", "training pairs", False),
    ("flipped_pairs", "flipped pairs", False),
)


def _table(results: dict[str, list[dict[str, Any]]], scales: list[float]) -> Table:
    kinds = [lift_eval.scale_name(s) for s in scales]
    columns = [COLUMNS[0], *((f"{k}_violation", f"violations at limits {k}, %", True) for k in kinds), *COLUMNS[1:]]
    rows = []
    for arm, seeds in results.items():
        cells = [
            "-" if arm == M0 and key.endswith("pairs") else measured_cell(seeds, key, pct) for key, _, pct in columns
        ]
        rows.append([arm, *cells])
    return Table("Each model on the benchmark (mean ± sd over seeds)", ["model", *(h for _, h, _ in columns)], rows)


def _intro(name: str, scale: LIFTScale) -> str:
    d, r = scale.data, scale.run
    return (
        f"Scale `{name}`: {scale.seeds} seed(s). World: {d.world.entities} entities with {d.world.min_facts}-"
        f"{d.world.max_facts} facts of two words each; M0 is a tiny Llama (d_model {r.tiny.d_model}, "
        f"{r.tiny.layers} layers) fine-tuned {r.sft.steps} steps on {d.sft_per_entity} answers per entity "
        f"({d.li_share:.0%} of them under a length limit). The preference set: {r.pair_samples} samples of "
        f"M0 for each of {d.pair_prompts_per_entity} prompts per non-benchmark entity, best against worst by the "
        f"oracle. LIFT-DPO adds two length-instructed pairs per pair at least {r.min_gap} words apart (slack "
        f"{r.slack}), {'keeping' if r.keep_original else 'without'} the original pairs; both arms train "
        f"{r.epochs:g} epochs over their pairs from M0 with DPO (beta {r.beta:g}) plus {r.alpha:g} x the chosen "
        f"response's NLL. The benchmark: "
        f"{d.test_entities} held-out entities, limit = the shortest of three reference answers. Unconfirmed choices: "
        f"docs/lift.md."
    )
