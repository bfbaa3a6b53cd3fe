"""IRPO (arXiv 2404.19733) in miniature (docs/selfimprove.md).

World (generated when no data files are given): ``task=arithmetic``, chained arithmetic modulo 20
(``system2.tasks.arithmetic``), 2-4 operations for training and test, 5 for the longer split; or
``task=quantities``, the quantity world (``system2.tasks.quantities``: several valid chains, multi-digit
steps), 3-4 steps, 5-6 for the longer split (the world's defaults, docs/selfimprove.md). M_0: a tiny Llama
fine-tuned on the gold chains of the leading training questions and deliberately under-trained. IRPO samples the
same ``pool`` questions after them every iteration (the paper reuses GSM8K's training set), and SFT on gold learns
from those questions' gold chains: both arms see the same questions, none of them M_0's. Arms, per seed:
- IRPO: T iterations of sample / pair / DPO+NLL (alpha=1, beta=0.1), reference = the previous iterate;
- DPO alone (alpha=0), STaR (SFT on the chosen solutions), IRPO with twice the pairs and IRPO without gold
  chains among the winners (``add_gold=False``: the only arm that learns from the model's own chains alone, as
  on ARC), each for one iteration on the very same samples as IRPO's first iteration;
- SFT on all gold solutions, from M_0.
Claims (the paper's Table 1 and Fig. 3, GSM8K): accuracy rises every iteration, with shrinking gains;
IRPO iteration 1 beats DPO alone, STaR and SFT on gold; IRPO without gold chains beats M_0 (ARC); the chosen
solutions' log-prob falls under DPO alone and rises with the NLL term; two iterations beat one with twice the
pairs. M_0 and every IRPO iteration are also scored on the longer split (reported, no claim: the paper has no
such split). Each claim is decided on the verdict core (``verdicts.py``, docs/verdicts.md): arms compared per
test question (paired), seeds as an outer level; the log-prob claims per training question, the change of the
chosen solutions' log-prob from M_0 to the trained model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from system2.config import ConfigError
from system2.lm.io import load_lm
from system2.lm.logprobs import reference_logprobs
from system2.repro import irpo_figures as figures
from system2.repro.framework import (
    print_claims,
    scale_with_settings,
    start_repro,
    with_overrides,
    write_report,
)
from system2.repro.irpo_claims import decide_claims
from system2.repro.selfimprove_common import LONGER, WORLDS, LocalRun, QuestionSplit, generate_world, split
from system2.runs import read_parquet
from system2.selfimprove.base import check_base, world_base
from system2.selfimprove.irpo import IRPOConfig, run_irpo
from system2.selfimprove.loop import QUESTIONS, question_results
from system2.selfimprove.sft import SFTConfig, TinyLMConfig, run_sft
from system2.selfimprove.stages import cached_rows
from system2.tasks import quantities
from system2.train import TrainConfig


@dataclass(frozen=True)
class IRPOScale(LocalRun):
    train: int = 2000  # training questions (generated; with train_data: the first N, 0 = all)
    test: int = 500  # test questions (generated; with test_data: the first N, 0 = all)
    hard: int = 500  # generated questions of the longer split (arithmetic: 5 operations; quantities: 5-6 steps)
    gold: int = 300  # gold solutions M_0 is trained on: those of the leading training questions that hold them
    pool: int = 0  # questions IRPO samples every iteration and SFT on gold learns from: those after M_0's (0: all)
    sft_steps: int = 300  # M_0's SFT steps (0: M_0 is ``model`` as it is)
    sft_lr: float = 1e-3  # M_0's SFT learning rate
    sft_batch: int = 32  # SFT batch (M_0 and the SFT-on-gold arm)
    full_sft_steps: int = 600  # SFT on all gold, from M_0 (0: no such arm)
    iterations: int = 3  # IRPO iterations
    samples: int = 8  # solutions sampled per question, N
    pairs: int = 4  # preference pairs per question, K
    dpo_epochs: float = 1.0  # passes over each iteration's pairs
    dpo_lr: float = 2e-4  # DPO learning rate
    batch_size: int = 16  # DPO batch per process
    temperature: float = 1.0  # sampling temperature
    seeds: int = 3  # seeds
    d_model: int = 128  # the tiny M_0's width
    layers: int = 4  # the tiny M_0's layers
    pretrain_steps: int = 0  # steps of a pretrained base the tiny M_0 starts from, shared by the seeds (quantities)
    pretrain_text: str = "lookup"  # the base's documents: lookup | worked (docs/selfimprove.md)


# the paper's zero-shot GSM8K prompt [V] (docs/selfimprove.md); whether the chat template wrapped it is not known [U]
GSM8K_PROMPT = (
    "Your task is to answer the question below. Give step by step reasoning before you answer, and when "
    'you\'re ready to answer, please use the format "Final answer: ..."\nQuestion: {question}\nSolution:'
)
SCALES: dict[str, IRPOScale] = {
    "tiny": IRPOScale(train=700, test=200, hard=0, gold=300, sft_steps=250, full_sft_steps=150, iterations=2,
                      samples=4, pairs=4, seeds=1, d_model=96, layers=3),
    # The calibrated quantity world (docs/selfimprove.md): M_0 from the shared base after SFT on 1,500 gold chains
    # (42.7% greedy in the calibration); 3,500 further questions (about 1,000 with gold) for IRPO and SFT on gold.
    # DPO lr: 2e-5, 6e-5 and 2e-4 all lowered M_0's accuracy in one iteration on the calibration's questions; the
    # lowest is kept (docs/reproductions.md).
    "small": IRPOScale(task="quantities", train=12_000, test=500, hard=500, gold=1500, pool=3500, sft_steps=2000,
                       full_sft_steps=1000, dpo_lr=2e-5, max_len=192, max_new_tokens=112, pretrain_steps=4000),
    # The paper's GSM8K setting (arXiv 2404.19733; docs/selfimprove.md): N=30, K=10, 4 iterations, batch 16, lr 7e-7,
    # at most 5000 steps per iteration, temperatures 0.8/0.8/1.3/1.3; M_0 = Llama-2-70B-Chat (a local path), GSM8K
    # from local files, the paper's prompt. The lengths and SFT on gold's settings are not known to us [U]: SFT on
    # gold is left out unless full_sft_steps is set.
    "paper": IRPOScale(train=0, test=0, hard=0, gold=0, sft_steps=0, full_sft_steps=0, iterations=4,
                       samples=30, pairs=10, dpo_epochs=1.0, dpo_lr=7e-7, batch_size=16, temperature=0.8, seeds=1,
                       model="checkpoints/Llama-2-70b-chat-hf", task="gsm8k", train_data="data/gsm8k/train.parquet",
                       test_data="data/gsm8k/test.parquet", max_len=1024, max_new_tokens=512, dtype="bfloat16",
                       prompt_format=GSM8K_PROMPT),
}  # fmt: skip


def _longer(scale: IRPOScale, data: QuestionSplit, root: Path, m0: str, seed: int) -> list[float]:
    """Greedy accuracy of M_0 and of every IRPO iteration on the generated longer split ([] without one);
    cached in ``root/irpo/iter-T/longer``."""
    path = Path(data.test).parent / LONGER.get(scale.task, "")
    if scale.train_data or not scale.hard or not path.is_file():
        return []
    cfg = replace(_irpo_config(scale, data, m0, root / "irpo", seed), eval_data=str(path), eval_limit=0)
    longer = cfg.problems()[1]
    models = [m0] + [str(root / "irpo" / f"iter-{t}" / "train" / "model") for t in range(1, scale.iterations + 1)]
    return [cfg.evaluate(m, longer, root / "irpo" / f"iter-{t}" / "longer")["maj@1"] for t, m in enumerate(models)]


def _common(scale: IRPOScale, data: QuestionSplit, seed: int) -> dict[str, Any]:
    """The loop settings every arm shares: data, task, lengths, runtime, seed."""
    return {"train_data": data.train, "eval_data": data.test, "task": scale.task, "max_len": scale.max_len,
            "max_new_tokens": scale.max_new_tokens, "dtype": scale.dtype, "prompt_format": scale.prompt_format,
            "eval_limit": scale.test if scale.test_data else 0, "seed": seed}  # fmt: skip


def _sft(
    scale: IRPOScale, data: QuestionSplit, out: Path, seed: int, init: str, steps: int, questions: tuple[int, int]
) -> dict[str, Any]:
    """SFT of the tiny model (or ``init``) on the gold solutions of the training questions ``questions`` (skip,
    limit)."""
    cfg = SFTConfig(
        model=init, tiny=TinyLMConfig(d_model=scale.d_model, layers=scale.layers, max_len=scale.max_len),
        out=str(out), skip=questions[0], limit=questions[1], **_common(scale, data, seed),
        train=TrainConfig(steps=steps, batch_size=scale.sft_batch, lr=scale.sft_lr, warmup=max(1, steps // 10),
                          seed=seed, ckpt_every=steps, log_every=max(1, steps // 20)),
    )  # fmt: skip
    return run_sft(cfg)


def _irpo_config(scale: IRPOScale, data: QuestionSplit, m0: str, out: Path, seed: int) -> IRPOConfig:
    """IRPO from ``m0`` on the training questions of ``data``."""
    return IRPOConfig(
        model=m0, out=str(out), iterations=scale.iterations, samples=scale.samples, temperatures=[scale.temperature],
        pairs_per_question=scale.pairs, epochs=scale.dpo_epochs, skip=data.skip, limit=data.limit,
        train=TrainConfig(batch_size=scale.batch_size, lr=scale.dpo_lr, warmup=10, seed=seed, ckpt_every=10_000,
                          log_every=5), **_common(scale, data, seed),
    )  # fmt: skip


def _irpo(
    scale: IRPOScale, data: QuestionSplit, m0: str, out: Path, seed: int, reuse: Path | None = None, **changes: Any
) -> list[dict[str, Any]]:
    """One IRPO arm; ``reuse``: the IRPO run whose M_0 evaluation and first-iteration stages it shares."""
    cfg = replace(_irpo_config(scale, data, m0, out, seed), **changes)
    if reuse is not None:
        cfg.start("irpo")  # the arm's own record first, then the shared stages
        _reuse(reuse / "iter-0", out / "iter-0", ("result.json", QUESTIONS))
        _reuse(
            reuse / "iter-1",
            out / "iter-1",
            SHARED[cfg.objective, cfg.alpha > 0, cfg.pairs_per_question == scale.pairs, cfg.add_gold],
        )
    return run_irpo(cfg)


def _baselines(scale: IRPOScale) -> list[tuple[str, str, dict[str, Any]]]:
    """The one-iteration arms on IRPO's own first-iteration samples: directory, the name its claims use, and what
    it changes in IRPO."""
    return [
        ("dpo", "DPO alone", {"alpha": 0.0}),
        ("star", "STaR", {"objective": "sft"}),
        ("irpo_2k", "IRPO 2x pairs", {"pairs_per_question": 2 * scale.pairs}),
        ("irpo_no_gold", "IRPO without gold", {"add_gold": False}),
    ]


# stages an arm shares with IRPO's first iteration, by (objective, NLL term, same pairs per question, gold added)
SHARED = {
    ("dpo", False, True, True): ("samples.parquet", "pairs.parquet", "reference.parquet"),
    ("sft", True, True, True): ("samples.parquet", "pairs.parquet"),
    ("dpo", True, False, True): ("samples.parquet",),
    ("dpo", True, True, False): ("samples.parquet",),
}


def _reuse(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    """Give an arm the first iteration's cached stages of the IRPO run (same samples, same pairs)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (src / name).is_file() and not (dst / name).is_file():
            shutil.copy(src / name, dst / name)


def chosen_logp_change(run: Path, first: Path, max_len: int, chat: bool = False) -> list[dict[str, Any]]:
    """Per training pair of IRPO's first iteration (``first``: its ``pairs.parquet`` and M_0's
    ``reference.parquet``): the summed log-prob of the chosen solution under the arm trained on those pairs
    (``run/iter-1/train/model``) minus under M_0. Cached in ``run/iter-1/chosen_logp.parquet``."""

    def compute() -> list[dict[str, Any]]:
        pairs = read_parquet(first / "pairs.parquet").to_pylist()
        ref = read_parquet(first / "reference.parquet").to_pylist()
        model, tok = load_lm(run / "iter-1" / "train" / "model", pad_with_eos=True)
        trained = reference_logprobs(model, tok, [p["prompt"] for p in pairs], [p["chosen"] for p in pairs], max_len,
                                     chat=chat)  # fmt: skip
        return [{"id": p["id"], "change": t - r["ref_chosen"]} for p, t, r in zip(pairs, trained, ref, strict=True)]

    return cached_rows(run / "iter-1" / "chosen_logp.parquet", compute)


def check_files(scale: IRPOScale) -> None:
    """With local files (the paper scale): the model, the data in the task's format, the runtime settings and a
    chat template where one is needed, checked before any compute (IRPOConfig's checks, on the main arm).
    Without them: a world that can be generated."""
    check_base(scale.pretrain_steps, scale.pretrain_text, scale)
    if not scale.train_data:
        if scale.task not in WORLDS:
            raise ConfigError(f"task={scale.task!r} has no generated world: use {' or '.join(WORLDS)}, or give "
                              "train_data and test_data files")  # fmt: skip
        return
    if not scale.test_data:
        raise ConfigError("train_data needs test_data (the held-out questions every arm is scored on)")
    if not scale.model and scale.task != "arithmetic":
        raise ConfigError(f"task {scale.task!r} needs model=PATH (a checkpoint to start from)")
    cfg = _irpo_config(
        scale, QuestionSplit(scale.train_data, scale.test_data, 0, scale.train), scale.model or "", Path("unused"), 0
    )
    if cfg.model:
        cfg.validate()
    else:
        cfg.check_runtime()
    cfg.problems()  # reads both files: a file in another format fails here


def run(
    scale_name: str, out: Path, seeds: int | None = None, restart: bool = False, settings: dict | None = None
) -> dict[str, Any]:
    scale = with_overrides(scale_with_settings(SCALES[scale_name], settings), seeds=seeds)
    check_files(scale)
    if scale.sft_steps == 0 and not scale.model:
        raise ConfigError("sft_steps=0 starts from model as it is: set model=PATH")
    start_repro(out, "irpo", scale_name, scale, restart)
    files = (scale.train_data, scale.test_data)
    if not scale.train_data:
        files = generate_world(scale.task, out / "data", scale.train, scale.test, scale.hard)
    data = QuestionSplit(*files, *split(scale, files[0]))
    per_seed: list[dict[str, Any]] = []
    questions: dict[str, list[list[dict[str, Any]]]] = {}
    logp: dict[str, list[list[dict[str, Any]]]] = {"DPO alone": [], "IRPO": []}
    start = scale.model
    if scale.pretrain_steps:
        steps = TrainConfig(steps=scale.pretrain_steps, batch_size=scale.sft_batch, lr=scale.sft_lr)
        start = str(world_base(out / "base", data.train, scale.d_model, scale.layers, scale.max_len,
                               scale.pretrain_text, steps))  # fmt: skip
    for seed in range(scale.seeds):
        root = out / f"seed-{seed}"
        if scale.sft_steps:
            m0_model = _sft(scale, data, root / "m0", seed, start, scale.sft_steps, (0, data.skip))["model"]
        else:  # the paper: M_0 is the checkpoint as it is
            m0_model = scale.model
        irpo = _irpo(scale, data, m0_model, root / "irpo", seed)
        first = root / "irpo" / "iter-1"
        arms = {}
        for arm, _, changes in _baselines(scale):
            result = _irpo(scale, data, m0_model, root / arm, seed, root / "irpo", iterations=1, **changes)[-1]
            # too few pairs to train on (e.g. no right sample without gold): the arm is M_0, and says so
            arms[arm] = result if "maj@1" in result else {**result, "maj@1": irpo[0]["maj@1"]}
        full = {"maj@1": None}
        if scale.full_sft_steps:  # on the gold solutions of IRPO's own questions
            full = _sft(scale, data, root / "sft_gold", seed, m0_model, scale.full_sft_steps, (data.skip, data.limit))
        per_seed.append({
            "seed": seed,
            "m0": irpo[0]["maj@1"],
            "irpo": [r["maj@1"] for r in irpo],
            **{arm: result["maj@1"] for arm, result in arms.items()},
            "longer": _longer(scale, data, root, m0_model, seed),
            "sft_gold": full["maj@1"],
            "pairs": [r.get("pairs") for r in irpo[1:]],
            "stopped": {arm: r["stopped"] for arm, r in arms.items() if "stopped" in r},
        })  # fmt: skip
        evals = {"M_0": root / "irpo" / "iter-0"}
        evals |= {f"IRPO {t}": root / "irpo" / f"iter-{t}" for t in range(1, scale.iterations + 1)}
        evals |= {name: root / arm / ("iter-0" if "stopped" in arms[arm] else "iter-1")
                  for arm, name, _ in _baselines(scale)}  # fmt: skip
        if scale.full_sft_steps:
            evals["SFT on gold"] = root / "sft_gold"
        for name, path in evals.items():
            questions.setdefault(name, []).append(question_results(path))
        chat = scale.prompt_format == "chat"
        logp["DPO alone"].append(chosen_logp_change(root / "dpo", first, scale.max_len, chat))
        logp["IRPO"].append(chosen_logp_change(root / "irpo", first, scale.max_len, chat))
    metrics = {"scale": scale_name, "seeds": per_seed}
    claims = decide_claims(scale.iterations, questions, logp)
    table = figures.accuracy_table(per_seed)
    plots = [figures.accuracy_plot(per_seed, out), figures.logp_plot(out, scale.seeds)]
    intro = (
        f"Scale `{scale_name}`: {_world(scale)}; M_0 = {_m0(scale)}; N={scale.samples} samples at "
        f"T={scale.temperature}, K={scale.pairs} pairs per question, DPO+NLL alpha=1, beta=0.1, "
        f"{scale.dpo_epochs:g} epoch(s) over the pairs per iteration; every iteration samples the same "
        f"{data.limit} training questions (after M_0's {data.skip}), whose gold solutions SFT on gold learns from; "
        f"{scale.seeds} seed(s). Accuracy is greedy exact match (maj@1) on the test split; each claim compares arms "
        "per test question (paired), seeds as an outer level. The chosen log-prob claims compare, per training "
        "question with pairs (each seed its own), the trained model's log-prob of the chosen solutions with M_0's."
    )
    write_report(out, "IRPO reproduction", intro, [table], plots, claims, metrics)
    print_claims(claims)
    return metrics


def _world(scale: IRPOScale) -> str:
    if scale.train_data:
        train, test = (f"the first {n}" if n else "all" for n in (scale.train, scale.test))
        return f"{train} training questions of `{scale.train_data}`, {test} test questions of `{scale.test_data}`"
    q_world = quantities.QuantityConfig()
    world = ("chained arithmetic mod 20, 2-4 operations" if scale.task == "arithmetic"
             else f"the quantity world, {q_world.min_depth}-{q_world.max_depth} steps")  # fmt: skip
    return f"{scale.train} training questions ({world}), {scale.test} test questions"


def _m0(scale: IRPOScale) -> str:
    start = f"`{scale.model}`" if scale.model else f"a tiny Llama (d={scale.d_model}, {scale.layers} layers)"
    if scale.pretrain_steps:
        start += f" pretrained {scale.pretrain_steps} steps on `{scale.pretrain_text}` documents (one base, all seeds)"
    return f"{start} after SFT on {scale.gold} gold solutions" if scale.sft_steps else f"{start} as it is"
