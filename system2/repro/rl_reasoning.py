"""Teaching LLMs to reason with RL (Havrilla et al., arXiv 2403.04642) in miniature (docs/selfimprove.md).

World: a generated world of the IRPO reproduction (``task``: the chained-arithmetic world, or the quantity world with
``pretrain_steps`` of one shared pretrained base; the GSM8K stand-in). Starting policy: a tiny Llama after SFT on the
gold solutions of the leading training questions; a "longer SFT" model trains the same data for more steps. The RL
arms learn from the ``pool`` questions after those. Arms, from the SFT model, with about the same number of sampled
solutions each:
- expert iteration (EI): K samples per question, keep correct ones, pool over rounds, retrain each round;
- PPO: sparse final-answer reward, per-token KL 0.05 to the SFT model, GAE(1, 0.95), clip 0.2;
  ``dense_arm`` adds a PPO arm with the world's dense per-step reward;
- RCRL: samples tagged [GOOD]/[BAD], fine-tuned on all of them, evaluated conditioned on [GOOD];
- an outcome reward model (ORM) trained on the SFT model's labelled samples, used for rerank@K.
Metrics at K samples: maj@1 (greedy), maj@K, rerank@K, pass@K; greedy accuracy against the samples drawn (EI after
every round, PPO at ``curve_points`` held-out evaluations: the sample-efficiency curves). Claims from the paper's
findings (``CLAIMS`` names each one's source), each decided on the verdict core (``verdicts.py``, docs/verdicts.md):
arms compared per test question (paired), seeds as an outer level.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from system2.config import ConfigError
from system2.lm.encoding import prompt_token_ids
from system2.lm.io import load_lm
from system2.repro.framework import (
    print_claims,
    scale_with_settings,
    start_repro,
    with_overrides,
    write_report,
)
from system2.repro.rl_reasoning_claims import claim_data, decide_claims
from system2.repro.rl_reasoning_figures import plot, table
from system2.repro.selfimprove_common import WORLDS, LocalRun, QuestionSplit, generate_world, split
from system2.runs import read_parquet
from system2.selfimprove.base import check_base, check_text, world_base
from system2.selfimprove.expert_iteration import ExpertIterationConfig, run_expert_iteration
from system2.selfimprove.loop import LoopConfig, evaluate_questions, summarize_questions
from system2.selfimprove.orm import ORMConfig, load_orm, score_solutions, train_orm
from system2.selfimprove.ppo import PPOConfig, run_ppo
from system2.selfimprove.rcrl import GOOD, RCRLConfig, run_rcrl
from system2.selfimprove.sft import SFTConfig, TinyLMConfig, run_sft
from system2.selfimprove.stages import cached_rows
from system2.tasks import quantities
from system2.tasks.task import TASKS, get_task
from system2.train import TrainConfig


@dataclass(frozen=True)
class RLScale(LocalRun):
    """``model``: the SFT start with ``sft_steps=0``, else the SFT's init."""

    train: int = 1000  # training questions (generated; with train_data: the first N, 0 = all)
    test: int = 300  # test questions (generated; with test_data: the first N, 0 = all)
    gold: int = 300  # gold solutions the SFT start is trained on: those of the leading training questions
    pool: int = 0  # questions the RL arms learn from: those after the SFT start's (0: all)
    sft_steps: int = 1200  # 300 left the SFT start far from converged (3-4x more gained ~26 points); 0: model is it
    long_sft_steps: int = 3600  # the longer SFT arm's steps: the SFT start trained on to this many (sft_steps=0:
    #                             this many more from model); 0: no such arm
    sft_points: tuple[int, ...] = ()  # more SFT lengths, each its own run and arm: maj@1 vs pass@K over SFT epochs
    k: int = 16  # samples per question for evaluation (paper: 96)
    ei_rounds: int = 3  # expert-iteration rounds
    ei_samples: int = 8  # samples per question per round
    ei_steps: int = 400  # fine-tuning steps per round (also the ORM's)
    ppo_prompts: int = 64  # PPO questions per iteration
    ppo_samples: int = 4  # PPO samples per question
    ppo_lr: float = 2e-5  # PPO learning rate
    rcrl_steps: int = 600  # RCRL fine-tuning steps per round
    dense_arm: bool = True  # a PPO arm with dense per-step rewards (the generated worlds' step rewards)
    curve_points: int = 4  # PPO's held-out evaluations over its run (sample-efficiency curves; 0: final only)
    seeds: int = 3  # seeds
    d_model: int = 128  # the tiny model's width
    layers: int = 4  # the tiny model's layers
    batch: int = 32  # every supervised stage (SFT, ORM, EI, RCRL), per process
    sft_lr: float = 1e-3  # learning rate of SFT from the base (the SFT start, longer SFT, the SFT lengths)
    # 1e-3 took the quantity world's SFT start from 37.8% to 23.0% greedy on held-out training questions in one EI
    # round, 1e-4 to 40.4% (docs/reproductions.md)
    ft_lr: float = 1e-4  # learning rate of EI's and RCRL's fine-tuning (a few hundred samples, from a trained start)
    pretrain_steps: int = 0  # steps of a pretrained base the tiny SFT start begins from, shared by the seeds
    pretrain_text: str = "lookup"  # the base's documents: lookup | worked | solved (docs/selfimprove.md)
    init_text: str = "solved"  # with pretrain_steps: the documents of the pretrained init's base, prompted with
    #                            examples (the "pretrained" and "EI from pretrained" arms): the SFT start's own base
    #                            when equal to pretrain_text, else a second base; "": no such arms
    solved_share: float = quantities.SOLVED_SHARE  # the share of solved problems in a `solved` base's documents
    init_shots: int = 1  # gold examples (the shortest of the SFT start's) before each question of the pretrained init


SCALES: dict[str, RLScale] = {
    "tiny": RLScale(train=600, test=150, gold=300, sft_steps=250, long_sft_steps=600, k=8, ei_rounds=2,
                    ei_samples=4, ei_steps=200, ppo_prompts=32, ppo_samples=4, rcrl_steps=200, dense_arm=False,
                    seeds=1, d_model=96, layers=3, ft_lr=1e-3),
    # The quantity world of the IRPO reproduction (the same generated questions; 2,000 SFT steps on 1,500 gold chains;
    # docs/selfimprove.md) from one base, as in the paper: pretrained on `solved` documents (0.5% solved problems),
    # the SFT start's init and, prompted with one example, the pretrained init. 400 pool questions, 4 samples per
    # question per EI round (4,800 samples per RL arm), K=8 at evaluation: sized to the 2-hour budget from the
    # measured stage times (docs/reproductions.md).
    "small": RLScale(task="quantities", train=12_000, test=500, gold=1500, pool=400, sft_steps=2000,
                     long_sft_steps=3000, k=8, ei_samples=4, max_len=192, max_new_tokens=112, pretrain_steps=4000,
                     pretrain_text="solved", solved_share=0.005),
    # The paper's setting (arXiv 2403.04642; docs/selfimprove.md): Llama-2 7B/13B from SFT on GSM8K, K=96 at evaluation,
    # EI with 96 samples per question for 4-5 rounds, PPO with KL 0.05 (trlx); GSM8K and the SFT checkpoint from local
    # paths (model = the SFT start). The longer-SFT arm and the learning rates are not known to us [U]: the arm runs
    # only when long_sft_steps is set; no dense arm (its step rewards are the arithmetic world's).
    "paper": RLScale(train=0, test=0, gold=0, sft_steps=0, long_sft_steps=0, k=96, ei_rounds=4, ei_samples=96,
                     ei_steps=5000, ppo_prompts=512, ppo_samples=4, rcrl_steps=5000, dense_arm=False, seeds=1,
                     batch=16, sft_lr=1e-5, ft_lr=1e-5, ppo_lr=1e-6, model="checkpoints/llama-2-7b-gsm8k-sft",
                     task="gsm8k", train_data="data/gsm8k/train.parquet", test_data="data/gsm8k/test.parquet",
                     max_len=1024, max_new_tokens=512, dtype="bfloat16"),
}  # fmt: skip


def _train_cfg(steps: int, seed: int, lr: float, batch: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup=max(1, steps // 10), seed=seed,
                       ckpt_every=steps, log_every=max(1, steps // 20))  # fmt: skip


class Arm(NamedTuple):
    """A model to evaluate and how it is prompted: ``prefix`` before each question, ``stop`` ends a response."""

    model: str
    prefix: str = ""
    stop: str = ""
    max_new_tokens: int = 0  # 0: the scale's


def _evaluate(scale: RLScale, arm: Arm, orm_dir: Path, test: list, seed: int) -> list[dict[str, Any]]:
    """One row per test question: is the greedy answer right (maj@1), the majority vote of K samples at T = 1
    (maj@K), the sample the ORM scores highest (rerank@K), any sample (pass@K)?"""
    runtime = LoopConfig(task=scale.task, dtype=scale.dtype, prompt_format=scale.prompt_format,
                         max_new_tokens=arm.max_new_tokens or scale.max_new_tokens, stop=arm.stop)  # fmt: skip
    model, tok = runtime.load(arm.model)
    orm, otok = load_orm(orm_dir)
    rows = evaluate_questions(
        model,
        tok,
        test,
        **{**runtime.sampling(), "batch_size": 64},
        k=scale.k,
        temperature=1.0,
        seed=seed,
        prompt_prefix=arm.prefix,
        rerank=lambda questions, texts: score_solutions(orm, otok, questions, texts, scale.max_len, chat=runtime.chat),
    )
    names = {f"{m}@{scale.k}": f"{m}@K" for m in ("maj", "rerank", "pass")}  # the claims' names, whatever K is
    return [{names.get(key, key): value for key, value in row.items()} for row in rows]


def _common(scale: RLScale, data: QuestionSplit, seed: int) -> dict[str, Any]:
    """The loop settings every RL arm shares: its training questions are the pool (``split``)."""
    return {"train_data": data.train, "task": scale.task, "max_len": scale.max_len, "seed": seed,
            "max_new_tokens": scale.max_new_tokens, "dtype": scale.dtype, "prompt_format": scale.prompt_format,
            "skip": data.skip, "limit": data.limit}  # fmt: skip


def check_files(scale: RLScale) -> list[Any]:
    """With local files (the paper scale): the model, the data in the task's format and the runtime settings,
    checked before any compute; returns the test questions (empty without files)."""
    check_base(scale.pretrain_steps, scale.pretrain_text, scale)
    if scale.sft_steps and scale.long_sft_steps and scale.long_sft_steps <= scale.sft_steps:
        raise ConfigError(f"long_sft_steps={scale.long_sft_steps} must exceed sft_steps={scale.sft_steps} (the longer "
                          "SFT trains the SFT start on to that many steps), or be 0 (no longer-SFT arm)")  # fmt: skip
    if not 0 <= scale.solved_share <= 1:
        raise ConfigError(f"solved_share must be in [0, 1], got {scale.solved_share}")
    if scale.pretrain_steps and scale.init_text:
        check_text(scale.init_text)
        if scale.init_shots < 1:
            raise ConfigError(f"init_shots must be >= 1 (examples before each question), got {scale.init_shots}")
    if scale.task in TASKS and scale.dense_arm and get_task(scale.task).step_rewards is None:
        raise ConfigError(f"dense_arm needs a task with step rewards; set dense_arm=false for {scale.task}")
    if not scale.train_data:
        if scale.task not in WORLDS:
            raise ConfigError(f"task={scale.task!r} has no generated world: use {' or '.join(WORLDS)}, or give "
                              "train_data and test_data files")  # fmt: skip
        return []
    if not scale.test_data:
        raise ConfigError("train_data needs test_data (the held-out questions every arm is scored on)")
    if not scale.model:
        raise ConfigError("train_data needs model=PATH (the checkpoint every arm starts from)")
    common = _common(scale, QuestionSplit(scale.train_data, scale.test_data, 0, scale.train), 0)
    cfg = LoopConfig(model=scale.model, eval_data=scale.test_data, out="unused", eval_limit=scale.test, **common)
    cfg.validate()
    return cfg.problems()[1]


def run(
    scale_name: str, out: Path, seeds: int | None = None, restart: bool = False, settings: dict | None = None
) -> dict[str, Any]:
    scale = with_overrides(scale_with_settings(SCALES[scale_name], settings), seeds=seeds)
    test = check_files(scale)
    if scale.sft_steps == 0 and not scale.model:
        raise ConfigError("sft_steps=0 starts from model as it is: set model=PATH")
    start_repro(out, "rl-reasoning", scale_name, scale, restart)
    files = (scale.train_data, scale.test_data)
    if not scale.train_data:
        files = generate_world(scale.task, out / "data", scale.train, scale.test)
        test = get_task(scale.task).read(files[1])
    data = QuestionSplit(*files, *split(scale, files[0]))
    start, init = scale.model, None
    if scale.pretrain_steps:
        steps = TrainConfig(steps=scale.pretrain_steps, batch_size=scale.batch, lr=scale.sft_lr)
        start = str(world_base(out / "base", data.train, scale.d_model, scale.layers, scale.max_len,
                               scale.pretrain_text, steps, solved_share=scale.solved_share))  # fmt: skip
        if scale.init_text:  # the paper's pretrained init is the SFT start's own base; another text: a second base
            base = Path(start)
            if scale.init_text != scale.pretrain_text:
                base = world_base(out / f"base_{scale.init_text}", data.train, scale.d_model, scale.layers,
                                  scale.max_len, scale.init_text, steps, solved_share=scale.solved_share)  # fmt: skip
            init = prompted_init(base, shots(data, scale.task, scale.init_shots), data, scale)
    n_train = data.limit
    per_seed = []
    questions: dict[str, list[list[dict[str, Any]]]] = {}
    early: dict[str, list[list[dict[str, Any]]]] = {}
    for seed in range(scale.seeds):
        root = out / f"seed-{seed}"
        arms, ppo_log, curves = _train_arms(scale, root, seed, data, start, init)
        results = {}
        for name, arm in arms.items():
            file = root / "eval" / f"{name.replace(' ', '_')}.parquet"
            rows = cached_rows(file, _evaluate, scale, arm, root / "orm" / "orm", test, seed)
            questions.setdefault(name, []).append(rows)
            results[name] = summarize_questions(rows)
        for name, run_dir in (("PPO", "ppo"), ("PPO dense", "ppo_dense")):
            first = sorted((root / run_dir / "curve").glob("iter-*.parquet"))[:1]  # PPO's first held-out evaluation
            if name in arms and first:
                early.setdefault(name, []).append(read_parquet(first[0]).to_pylist())
        curve = [r["reward"] for r in ppo_log if "reward" in r]
        per_seed.append({"seed": seed, "arms": results, "budget": n_train * scale.ei_samples * scale.ei_rounds,
                         "ppo_curve": curve, "curves": curves, "sft_epochs": sft_epochs(scale, results)})  # fmt: skip
    metrics = {"scale": scale_name, "k": scale.k, "seeds": per_seed}
    claims = decide_claims(claim_data(questions, early))
    write_report(
        out,
        "RL for reasoning reproduction",
        _intro(scale_name, scale, n_train),
        [table(metrics)],
        [plot(metrics, out)],
        claims,
        metrics,
    )
    print_claims(claims)
    return metrics


def shots(data: QuestionSplit, task: str, n: int) -> str:
    """The prompt prefix of the pretrained init: the ``n`` shortest gold examples among the SFT start's questions
    (question, solution, ``.``, as the ``solved`` documents show them), so that prompts fit the model's length."""
    gold = [q for q in get_task(task).read(data.train)[: data.skip] if q.solution]
    chosen = sorted(gold, key=lambda q: (len(f"{q.question} {q.solution}".split()), q.id))[:n]
    return "".join(f"{q.question} {q.solution} . " for q in chosen)


def prompted_init(base: Path, prefix: str, data: QuestionSplit, scale: RLScale) -> Arm:
    """The pretrained init as prompted: ``prefix`` before each question, stopped at ``.``, with as many new tokens
    as the longest prompt (pool and test) leaves in the model's context, at most the scale's. ConfigError when the
    examples leave under 32."""
    tok = load_lm(base)[1]
    questions = get_task(scale.task).read(data.train)[data.skip :][: data.limit] + get_task(scale.task).read(data.test)
    longest = max(len(ids) for ids in prompt_token_ids(tok, [prefix + q.question for q in questions]))
    room = min(scale.max_new_tokens, scale.max_len - longest)
    if room < 32:
        raise ConfigError(f"with init_shots={scale.init_shots} the longest prompt of the pretrained init has "
                          f"{longest} tokens, leaving {room} of max_len={scale.max_len} for a solution: lower "
                          "init_shots")  # fmt: skip
    return Arm(str(base), prefix, ".", room)


def _train_arms(
    scale: RLScale, root: Path, seed: int, data: QuestionSplit, start: str, pretrained: Arm | None = None
) -> tuple[dict[str, Arm], list[dict[str, Any]], dict[str, list[list[float]]]]:
    """Train every arm of one seed (each stage cached) from ``start`` (the tiny model's base, or a checkpoint) and,
    with ``pretrained`` (the pretrained init as prompted), EI from it; returns the arms, PPO's log and the
    sample-efficiency curves ({arm: [[samples, maj@1], ...]}: EI per round, PPO at its held-out evaluations)."""
    tiny = TinyLMConfig(d_model=scale.d_model, layers=scale.layers, max_len=scale.max_len)
    common, n_train = _common(scale, data, seed), data.limit
    sft_common = {**common, "skip": 0, "limit": data.skip}  # the SFT start's own questions, before the pool
    sft_cfg = SFTConfig(model=start, tiny=tiny, out=str(root / "sft"),
                        train=_train_cfg(scale.sft_steps, seed, scale.sft_lr, scale.batch), **sft_common)  # fmt: skip
    sft = run_sft(sft_cfg)["model"] if scale.sft_steps else scale.model  # sft_steps=0: model is the SFT start
    long_sft = None
    if scale.long_sft_steps:  # more epochs: the SFT start trained on (its schedule restarted) to long_sft_steps
        more = _train_cfg(scale.long_sft_steps - scale.sft_steps, seed, scale.sft_lr, scale.batch)
        long_sft = run_sft(replace(sft_cfg, model=sft, out=str(root / "sft_long"), train=more))["model"]
    points = {}  # the SFT start trained for other lengths, from the same init (the trade-off over epochs)
    for steps in scale.sft_points if scale.sft_steps else ():
        train = _train_cfg(steps, seed, scale.sft_lr, scale.batch)
        points[sft_point(steps)] = Arm(run_sft(replace(sft_cfg, out=str(root / f"sft_{steps}"), train=train))["model"])
    train_orm(ORMConfig(model=sft, out=str(root / "orm"), samples=scale.ei_samples,
                        train=_train_cfg(scale.ei_steps, seed, 1e-4, scale.batch), **common))  # fmt: skip
    budget = n_train * scale.ei_samples * scale.ei_rounds  # sampled solutions per arm
    ei_train = _train_cfg(scale.ei_steps, seed, scale.ft_lr, scale.batch)
    scored = {"eval_data": data.test, "eval_limit": scale.test if scale.test_data else 0}  # the curves' points
    ei = ExpertIterationConfig(model=sft, out=str(root / "ei"), rounds=scale.ei_rounds, samples=scale.ei_samples,
                               train=ei_train, **common, **scored)  # fmt: skip
    ei_rounds = run_expert_iteration(ei)
    ei_model = ei_rounds[-1]["model"]
    iters = max(1, budget // (scale.ppo_prompts * scale.ppo_samples))
    during = {**scored, "eval_every": max(1, iters // scale.curve_points) if scale.curve_points else 0}
    ppo = PPOConfig(model=sft, out=str(root / "ppo"), iterations=iters, prompts_per_iteration=scale.ppo_prompts,
                    samples_per_prompt=scale.ppo_samples, lr=scale.ppo_lr, ckpt_every=max(1, iters // 4),
                    **common, **during)  # fmt: skip
    ppo_log = run_ppo(ppo)
    rcrl = RCRLConfig(model=sft, out=str(root / "rcrl"), samples=max(1, budget // n_train),
                      train=_train_cfg(scale.rcrl_steps, seed, scale.ft_lr, scale.batch), **common)  # fmt: skip
    rcrl_model = run_rcrl(rcrl)[-1]["model"]
    arms = {
        "SFT": Arm(sft),
        **({"longer SFT": Arm(long_sft)} if long_sft else {}),
        **points,
        "EI": Arm(ei_model),
        "PPO": Arm(str(root / "ppo" / "model")),
        "RCRL": Arm(rcrl_model, f"{GOOD} "),
    }
    if scale.dense_arm:
        dense_log = run_ppo(replace(ppo, out=str(root / "ppo_dense"), reward="dense"))
        arms["PPO dense"] = Arm(str(root / "ppo_dense" / "model"))
    per_iteration = scale.ppo_prompts * scale.ppo_samples
    curves = {"EI": [[r["samples_drawn"], r["maj@1"]] for r in ei_rounds],
              "PPO": ppo_curve(ppo_log, per_iteration)}  # fmt: skip
    if scale.dense_arm:
        curves["PPO dense"] = ppo_curve(dense_log, per_iteration)
    if pretrained is not None:  # EI from the pretrained init, prompted as it is evaluated
        prompted = {"prompt_format": pretrained.prefix + "{question}", "stop": pretrained.stop,
                    "max_new_tokens": pretrained.max_new_tokens, "model": pretrained.model}  # fmt: skip
        from_init = run_expert_iteration(replace(ei, out=str(root / "ei_pretrained"), **prompted))
        arms["pretrained"] = pretrained
        arms["EI from pretrained"] = pretrained._replace(model=from_init[-1]["model"])
        curves["EI from pretrained"] = [[r["samples_drawn"], r["maj@1"]] for r in from_init]
    return arms, ppo_log, curves


def sft_point(steps: int) -> str:
    """The arm of the SFT start trained for ``steps`` steps (``sft_points``)."""
    return f"SFT {steps} steps"


def sft_epochs(scale: RLScale, arms: dict[str, dict[str, Any]]) -> list[list[float]]:
    """[SFT steps, maj@1, pass@K] of the SFT start, every ``sft_points`` length and the longer SFT, by steps."""
    lengths = {scale.sft_steps: "SFT", scale.long_sft_steps: "longer SFT"}
    lengths |= {n: sft_point(n) for n in scale.sft_points}
    return [[n, arms[a]["maj@1"], arms[a]["pass@K"]] for n, a in sorted(lengths.items()) if n and a in arms]


def ppo_curve(log: list[dict[str, Any]], per_iteration: int) -> list[list[float]]:
    """[samples drawn, greedy accuracy] at each of PPO's held-out evaluations (``eval_every``) and at its end."""
    points = {r["iteration"]: r["maj@1"] for r in log if "maj@1" in r}  # the final evaluation may repeat the last
    return [[it * per_iteration, acc] for it, acc in sorted(points.items())]


def _intro(name: str, s: RLScale, n_train: int) -> str:
    if s.train_data:
        world = f"{n_train} training questions of `{s.train_data}`, test questions of `{s.test_data}`"
    else:
        depth = quantities.QuantityConfig()
        kind = ("chained arithmetic mod 20, 2-4 operations" if s.task == "arithmetic"
                else f"the quantity world, {depth.min_depth}-{depth.max_depth} steps")  # fmt: skip
        world = f"{s.train} training questions ({kind}), {s.test} test questions"
    start = f"`{s.model}`" if s.model else f"a tiny Llama (d={s.d_model}, {s.layers} layers)"
    if s.pretrain_steps:
        start += f" pretrained {s.pretrain_steps} steps on `{s.pretrain_text}` documents (one base, all seeds)"
    sft = f"{start} after {s.sft_steps} steps on {s.gold or 'all'} gold solutions" if s.sft_steps else f"{start}"
    longer = "no longer-SFT arm"
    if s.long_sft_steps:
        longer = (f"longer SFT: trained on to {s.long_sft_steps} steps" if s.sft_steps
                  else f"longer SFT: {s.long_sft_steps} more steps")  # fmt: skip
    init = ""
    if s.pretrain_steps and s.init_text:
        base = ("the same base" if s.init_text == s.pretrain_text
                else f"a second base, pretrained {s.pretrain_steps} steps on `{s.init_text}` documents,")  # fmt: skip
        init = (f" The pretrained init: {base} prompted with {s.init_shots} gold example(s) and stopped at `.`; EI "
                "from it draws as many samples as EI from SFT.")  # fmt: skip
    if "solved" in (s.pretrain_text, s.init_text) and s.pretrain_steps:
        init += f" `solved` documents show {s.solved_share:.1%} of their problems solved."
    return (
        f"Scale `{name}`: {world}; SFT = {sft} ({longer}); the RL arms learn from the {n_train} training questions "
        "after the SFT start's. Each RL arm draws about "
        f"{n_train * s.ei_samples * s.ei_rounds} training samples. Metrics at K={s.k} samples (T=1.0) on the test "
        f"split; {s.seeds} seed(s). The RCRL token scheme, EI's round count and PPO's settings are unconfirmed "
        f"in the paper [S/R]: see docs/selfimprove.md.{init}"
    )
