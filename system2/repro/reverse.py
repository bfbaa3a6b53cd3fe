"""Reverse training ("Reverse Training to Nurse the Reversal Curse", arXiv 2403.13799) in miniature.

Worlds (``system2.tasks.reversal``): the symbolic reverse task (pairs of two-word entities, ``a has a feature b``)
and, at ``small``, a bioS-lite world of biographies (``system2.tasks.bios``). Each arm trains a fresh tiny Llama
from scratch on the world's documents with one reversal (``system2.reverse``): standard training (none); token,
word, entity-preserving and random-segment reversal (k = L, the answer entity's length, and k = 1, below it),
data-matched (every document forward and reversed: the same epochs over the unique data, twice the steps); and
entity-preserving and random-segment reversal compute-matched (standard training's steps, about half of the
documents reversed). Every held-out question is answered greedily and scored by exact match; the claims
(``reverse_claims.py``) compare arms per question, seeds as an outer level. Finished arms are reused, so a rerun
resumes. ``paper`` prints the pretraining runs to launch (``reverse_pretrain.py``): it is not run here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.repro.framework import Table, fmt, mean_std, print_claims, start_repro, with_overrides, write_report
from system2.repro.reverse_arm import LlamaSize, ReverseArmConfig, accuracy, evaluate_arm, train_arm
from system2.repro.reverse_claims import ARMS, STANDARD, claim_data, decide_claims
from system2.repro.reverse_figures import accuracy_bars
from system2.reverse import Reversal
from system2.runs import read_json
from system2.tasks.bios import BioWorldConfig
from system2.tasks.reversal import META_FILE, SymbolicWorldConfig, write_world
from system2.train import TrainConfig


@dataclass(frozen=True)
class WorldRun:
    """One world of a scale and how each of its arms trains."""

    world: SymbolicWorldConfig | BioWorldConfig
    model: LlamaSize = field(default_factory=LlamaSize)
    epochs: float = 100.0  # passes over the unique documents; data-matched arms take twice the steps
    batch_size: int = 32
    lr: float = 3e-3


@dataclass(frozen=True)
class ReverseScale:
    worlds: dict[str, WorldRun]  # label (symbolic | bios) -> its world and training
    arms: tuple[str, ...] = ARMS  # names from reverse_claims.ARMS
    seeds: int = 1
    recipe: str = ""  # paper scale: the pretraining recipe to launch per arm


BIOS_ATTRIBUTES = ("birth_date", "birth_city", "university")
PAPER_RECIPE = "configs/reverse/pretrain_paper.yaml"
SCALES: dict[str, ReverseScale] = {
    # every arm and code path in a few minutes on one core: 50 held-out pairs
    "tiny": ReverseScale({"symbolic": WorldRun(SymbolicWorldConfig(n_pairs=100), LlamaSize(64, 2, 4), epochs=100)}),
    # 3 seeds within the 2-hour budget (an estimate, docs/reproductions.md); token reversal is left out: with a
    # word-level tokenizer it trains on exactly the sequences of word reversal
    "small": ReverseScale(
        {"symbolic": WorldRun(SymbolicWorldConfig(n_pairs=600), LlamaSize(64, 2, 4), epochs=100),
         "bios": WorldRun(BioWorldConfig(n_people=200, attributes=BIOS_ATTRIBUTES), LlamaSize(64, 2, 4),
                          epochs=100)},
        arms=tuple(a for a in ARMS if not a.startswith("token")),
        seeds=3,
    ),
    "paper": ReverseScale({}, arms=(STANDARD, "entity (data)", "entity (compute)", "segment k=L (data)",
                                    "segment k=L (compute)"), recipe=PAPER_RECIPE),
}  # fmt: skip


def entity_length(cfg: SymbolicWorldConfig | BioWorldConfig) -> int:
    """L: the words of the entity a reverse question asks for (a symbolic entity; a bioS full name)."""
    return cfg.entity_words if isinstance(cfg, SymbolicWorldConfig) else 3


def arm_reversal(arm: str, length: int, seed: int) -> Reversal:
    """The reversal of an arm name (``"segment k=L (data)"``: random segments of up to ``length`` words,
    data-matched), seeded per run."""
    if arm == STANDARD:
        return Reversal("none", seed=seed)
    name, mode = arm.removesuffix(")").split(" (")
    kind, _, k = name.partition(" k=")
    return Reversal(kind, k=length if k == "L" else int(k or 2), mode=mode, seed=seed)


def slug(arm: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in arm.replace("=", "")).replace("--", "-").strip("-")


def arm_config(run: WorldRun, arm: str, seed: int, world_dir: Path, out: Path, n_docs: int) -> ReverseArmConfig:
    """One arm: steps = epochs x the arm's examples per epoch / batch (data-matched: 2 x documents)."""
    rev = arm_reversal(arm, entity_length(run.world), seed)
    steps = math.ceil(run.epochs * rev.epoch_size(n_docs) / run.batch_size)
    train = TrainConfig(steps=steps, batch_size=run.batch_size, lr=run.lr, warmup=max(1, steps // 20), seed=seed,
                        ckpt_every=max(1, steps // 2), log_every=max(1, steps // 50), tensorboard=False)  # fmt: skip
    return ReverseArmConfig(out=str(out), world=str(world_dir), reversal=rev, model=run.model, train=train)


def launch_commands(scale: ReverseScale, out: Path) -> list[str]:
    """The ``accelerate launch`` command of each arm of the pretraining recipe (paper scale)."""
    cmds = []
    for arm in scale.arms:
        rev = arm_reversal(arm, 2, 0)
        sets = f"reversal.kind={rev.kind} reversal.mode={rev.mode}"  # segments: the recipe's reversal.k
        cmds.append(f"accelerate launch -m system2.cli repro reverse-pretrain --config {scale.recipe} "
                    f"--out {out / slug(arm)} {sets}")  # fmt: skip
    return cmds


def run(scale_name: str, out: Path, seeds: int | None = None, restart: bool = False) -> dict[str, Any]:
    """Train and score every arm of every world, decide the claims and write ``out/report.md``; at the paper
    scale print the pretraining runs to launch instead."""
    scale = with_overrides(SCALES[scale_name], seeds=seeds)
    if not scale.worlds:
        cmds = launch_commands(scale, out)
        print(f"Reverse training at paper scale is a pretraining run per arm ({scale.recipe}; set corpus, "
              "tokenizer and the evaluation files there); K is the longest segment. Launch:")  # fmt: skip
        print("\n".join(f"  {c}" for c in cmds))
        return {"scale": scale_name, "launch": cmds}
    start_repro(out, "reverse", scale_name, scale, restart)
    rows: dict[str, dict[str, list[list[dict[str, Any]]]]] = {w: {a: [] for a in scale.arms} for w in scale.worlds}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {w: {a: [] for a in scale.arms} for w in scale.worlds}
    worlds: dict[str, dict[str, Any]] = {}
    for seed in range(scale.seeds):
        for label, wr in scale.worlds.items():
            world_dir = out / "worlds" / label
            if not (world_dir / META_FILE).is_file():
                write_world(wr.world, world_dir)
            meta = read_json(world_dir / META_FILE)
            worlds[label] = {"documents": meta["documents"], "questions": meta["questions"],
                             "entity_length": entity_length(wr.world)}  # fmt: skip
            for arm in scale.arms:
                cfg = arm_config(wr, arm, seed, world_dir, out / "runs" / label / f"{slug(arm)}-seed{seed}",
                                 meta["documents"])  # fmt: skip
                print(f"{label}: {arm}, seed {seed} ({cfg.train.steps} steps)")
                train_arm(cfg)
                answered = evaluate_arm(cfg)
                rows[label][arm].append(answered)
                results[label][arm].append({"seed": seed, "steps": cfg.train.steps, **accuracy(answered)})
    metrics = {"scale": scale_name, "seeds": scale.seeds, "arms": list(scale.arms), "worlds": worlds,
               "results": results}  # fmt: skip
    claims = decide_claims(claim_data(rows))
    tables = [_table(label, results[label]) for label in scale.worlds]
    plots = [accuracy_bars(results, out)]
    write_report(out, "Reverse training reproduction", _intro(scale_name, scale, worlds), tables, plots, claims,
                 metrics)  # fmt: skip
    print_claims(claims)
    return metrics


def _table(label: str, arms: dict[str, list[dict[str, Any]]]) -> Table:
    rows = [
        [arm, str(runs[0]["steps"]), *(fmt(*mean_std([r[d] for r in runs]), pct=True) for d in ("forward", "reverse"))]
        for arm, runs in arms.items()
    ]
    return Table(f"{label}: greedy exact-match accuracy, % (mean ± sd over seeds)", ["arm", "steps", "forward",
                                                                                   "reverse"], rows)  # fmt: skip


def _world_text(label: str, run: WorldRun, info: dict[str, Any]) -> str:
    w, m = run.world, run.model
    if isinstance(w, SymbolicWorldConfig):
        what = (f"{w.n_pairs} pairs of {w.entity_words}-word entities over {w.vocab_size} words, "
                f"{w.n_reverse_train} of them also trained as `b is a feature of a`")  # fmt: skip
    else:
        what = (f"{w.n_people} people with {', '.join(w.attributes)}, pronouns after the first sentence "
                f"{'on' if w.pronouns else 'off'}, {w.n_qa_train} with their QA in training")  # fmt: skip
    return (f"- **{label}**: {what}; {info['documents']} documents, {info['questions']} held-out questions; "
            f"L = {info['entity_length']} words; Llama d_model={m.d_model}, layers={m.layers}, heads={m.heads}; "
            f"epochs={run.epochs:g}, batch {run.batch_size}, lr {run.lr:g}")  # fmt: skip


def _intro(name: str, scale: ReverseScale, worlds: dict[str, dict[str, Any]]) -> str:
    parts = [_world_text(label, wr, worlds[label]) for label, wr in scale.worlds.items()]
    return (
        f"Scale `{name}`: arms {', '.join(scale.arms)}; {scale.seeds} seed(s) per arm (the seed sets the weights, "
        "the data order, the random segments and the compute-matched coin flips; the world is the same for every "
        "arm). Each arm trains a fresh tiny Llama from scratch on the world's documents with a word-level "
        "tokenizer (so token reversal trains on the sequences of word reversal). Data-matched arms see every "
        "document forward and reversed (the same epochs, twice the steps); compute-matched arms take standard "
        "training's steps with each document reversed by a fair coin per epoch. Accuracy is greedy exact match on "
        "the held-out questions; each claim compares arms per question (paired), clustered by subject, seeds as an "
        "outer level. Unconfirmed choices (templates, sizes, k, segment lengths uniform in [1, k], the "
        "compute-matched rule) are listed in docs/reproductions.md.\n\n" + "\n".join(parts)
    )
