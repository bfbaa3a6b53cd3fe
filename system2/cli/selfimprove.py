"""``system2 arithmetic``, ``system2 quantities`` (the synthetic reasoning worlds), ``system2 instructions`` (the
instruction world's seed data) and the self-improvement recipes (``sft``, ``irpo``, ``expert-iteration``, ``ppo``,
``rcrl``, ``orm``, ``dualformer-lm``, ``self-rewarding``, ``meta-rewarding``, ``tpo``, ``lift``), and ``system2
thought-data`` and ``system2 lift-data`` (the TPO and LIFT worlds).

Each recipe command reads its config (defaults < ``--config`` YAML < flags < ``key=value``), runs the
recipe (a rerun with the same ``--out`` and settings resumes; other settings are refused) and prints a
table of its results on the main process.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Annotated, Any

import typer

from system2.cli.common import App, ConfigFile, Out, Overrides, Restart, fail, run_config, user_errors
from system2.console import print_table

ModelPath = Annotated[str | None, typer.Option("--model", help="Local causal LM directory (the starting policy).")]
TrainDataPath = Annotated[str | None, typer.Option("--train-data", help="Training problems (Parquet or JSONL).")]
EvalDataPath = Annotated[str | None, typer.Option("--eval-data", help="Held-out problems for evaluation.")]
TaskName = Annotated[
    str | None,
    typer.Option("--task", help="What the data files hold and how answers are scored: arithmetic, quantities, gsm8k, "
                 "math, arc, generic (docs/selfimprove.md, 'Tasks')."),
]  # fmt: skip
Seed = Annotated[int | None, typer.Option("--seed", help="Seed of sampling and new weights (see train.seed).")]
Limit = Annotated[int | None, typer.Option("--limit", help="Training questions used (0: all).")]
FinetuneSteps = Annotated[int | None, typer.Option("--steps", help="Optimizer steps per fine-tuning (train.steps).")]


def arithmetic(
    out: Annotated[str, typer.Option("--out", help="Directory for train/test/hard/svamp Parquet files.")],
    overrides: Overrides = None,
    train: Annotated[int | None, typer.Option(help="Training problems (2-4 operations).")] = None,
    test: Annotated[int | None, typer.Option(help="Test problems (2-4 operations, unseen in train).")] = None,
    hard: Annotated[int | None, typer.Option(help="Harder test problems (5 operations).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed gives the same files.")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Generate the arithmetic reasoning world: problems, gold chains of thought, exact answers.

    Example: system2 arithmetic --out data/arith --train 2000 modulus=20 style=words svamp=200
    """
    from system2.tasks.arithmetic import ArithmeticDataConfig, generate

    flags = {"out": out, "train": train, "test": test, "hard": hard, "seed": seed}
    cfg = run_config(ArithmeticDataConfig, config, overrides, flags)
    with user_errors():
        splits = generate(cfg, restart=restart)
    example = splits["train"][0]
    print_table(f"arithmetic world in {out}", [{"split": k, "problems": len(v)} for k, v in splits.items()])
    typer.echo(f"example: {example.question}  ->  {example.solution}")


def quantities(
    out: Annotated[str, typer.Option("--out", help="Directory for train/test/long/svamp Parquet files.")],
    overrides: Overrides = None,
    train: Annotated[int | None, typer.Option(help="Training questions (2-4 steps).")] = None,
    test: Annotated[int | None, typer.Option(help="Test questions (2-4 steps, unseen in train).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed gives the same files.")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Generate the quantity world: questions over a graph of quantities with several valid chains of thought.

    Example: system2 quantities --out data/quantities --train 2000 long=500 svamp=200 gold=0.3
    """
    from system2.tasks.quantities import QuantityDataConfig, generate

    cfg = run_config(QuantityDataConfig, config, overrides, {"out": out, "train": train, "test": test, "seed": seed})
    with user_errors():
        splits = generate(cfg, restart=restart)
    rows = [{"split": k, "questions": len(v), "with gold chain": sum(bool(q.solution) for q in v)}
            for k, v in splits.items()]  # fmt: skip
    print_table(f"quantity world in {out}", rows)
    example = splits["test"][0] if splits.get("test") else splits["train"][0]
    typer.echo(f"example: {example.question}  ->  {example.solution}")


def instructions(
    out: Annotated[str, typer.Option("--out", help="Directory for ift/eft/eft_eval/test_prompts/pairs Parquet files.")],
    overrides: Overrides = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed gives the same files.")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Generate the instruction world's seed data: IFT and (imperfect) EFT examples, test prompts, response pairs.

    Example: system2 instructions --out data/instructions ift=200 eft=300 world.flip=0.15 world.bias_items=6
    """
    from system2.tasks.instructions import InstructionDataConfig, generate

    cfg = run_config(InstructionDataConfig, config, overrides, {"out": out, "seed": seed})
    with user_errors():
        splits = generate(cfg, restart=restart)
    print_table(f"instruction world in {out}", [{"file": f"{k}.parquet", "rows": len(v)} for k, v in splits.items()])
    if splits["eft"]:
        typer.echo(f"example: {splits['eft'][0]['prompt']}  {splits['eft'][0]['completion']}")


def thought_data(
    out: Annotated[str, typer.Option("--out", help="Directory for ift/rm_pairs/test_prompts Parquet files.")],
    overrides: Overrides = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed gives the same files.")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Generate the TPO world: M0's seed rows (direct answers, a few filler-thought examples, worked scratchpads),
    oracle-labelled pairs for the reward model, and test prompts over the list and thought families.

    Example: system2 thought-data --out data/thoughts direct=2000 format_examples=100 worked=500 rm_pairs=2000
    """
    from system2.tasks.thought_data import ThoughtDataConfig, generate

    cfg = run_config(ThoughtDataConfig, config, overrides, {"out": out, "seed": seed})
    with user_errors():
        splits = generate(cfg, restart=restart)
    print_table(f"TPO world in {out}", [{"file": f"{k}.parquet", "rows": len(v)} for k, v in splits.items()])


def lift_data(
    out: Annotated[str, typer.Option("--out", help="Directory for kb/sft/pair_prompts Parquet and li_eval.jsonl.")],
    overrides: Overrides = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed gives the same files.")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Generate the LIFT world: a knowledge base where longer answers score higher, M0's seed rows, the preference
    prompts, and a length-instructed benchmark in the AlpacaEval-LI format.

    Example: system2 lift-data --out data/lift world.entities=200 test_entities=60 sft_per_entity=20
    """
    from system2.tasks.lift_data import LIFTDataConfig, generate

    cfg = run_config(LIFTDataConfig, config, overrides, {"out": out, "seed": seed})
    with user_errors():
        splits = generate(cfg, restart=restart)
    print_table(f"LIFT world in {out}", [{"file": k, "rows": len(v)} for k, v in splits.items()])


def calibrate_quantities(
    out: Annotated[str, typer.Option("--out", help="Directory: the data, both SFT runs, calibration.json.")],
    overrides: Overrides = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Measure the quantity world at a model size: an answer-prior guesser, SFT on all gold, M_0, and the share of
    M_0's correct samples on a chain of their own (docs/selfimprove.md, "The quantity world").

    Example: system2 calibrate-quantities --out runs/calibration tiny.d_model=128 steps=1500 world.gold=0.3
    """
    from system2.selfimprove.calibrate import CalibrationConfig, calibrate

    cfg = run_config(CalibrationConfig, config, overrides, {"out": out})
    with user_errors():
        result = calibrate(cfg, restart=restart)
    print_table(f"quantity world calibration in {out}", [result])


JUDGE_LOOPS = {
    # command: (module, config class, runner, title, help, example flags and settings)
    "self-rewarding": ("self_rewarding", "SelfRewardingConfig", "run_self_rewarding", "Self-Rewarding",
                       "Self-Rewarding LMs: SFT on IFT+EFT (M1); then per iteration new prompts, N candidates each "
                       "judged by the model itself, best vs worst scored, DPO from the previous model.",
                       "--data data/instructions iterations=2 prompts_per_iteration=500 "
                       "judge.judgments_per_response=3"),
    "meta-rewarding": ("meta_rewarding", "MetaRewardingConfig", "run_meta_rewarding", "Meta-Rewarding",
                       "Meta-Rewarding LMs: Self-Rewarding with length-controlled actor pairs, and judge pairs from "
                       "the model meta-judging its own judgments (position-weighted battles, Elo), one DPO run.",
                       "--data data/instructions iterations=4 judge_iterations=2 responses_per_prompt=7 "
                       "judge.judgments_per_response=5"),
    "tpo": ("tpo", "TPOConfig", "run_tpo", "TPO",
            "Thought Preference Optimization: per iteration fresh prompts, N thought+response outputs, a judge on the "
            "response part only, length-controlled best vs worst (parse failures rejected), DPO; with thinking off, "
            "the direct-answer baseline.", "--data data/thoughts iterations=4 samples=8 rho=0.2"),
    "lift": ("lift", "LIFTConfig", "run_lift", "LIFT",
             "LIFT-DPO (or standard DPO) on one preference set: length-instructed pairs whose limits keep or flip "
             "the preference, one DPO run from M0, and the length-instructed benchmark (violations, win rates).",
             "--data data/lift method=lift min_gap=4 slack=4 epochs=2"),
}  # fmt: skip


def _judge_loop_command(name: str) -> Any:
    module, config, runner, title, doc, example = JUDGE_LOOPS[name]

    def command(
        overrides: Overrides = None,
        data: Annotated[
            str | None,
            typer.Option("--data", help="World directory (see the instructions, thought-data and lift-data commands)."),
        ] = None,
        model: Annotated[
            str | None, typer.Option("--model", help="Base model directory (empty: a tiny Llama).")
        ] = None,
        out: Out = None,
        seed: Seed = None,
        config_file: ConfigFile = None,
        restart: Restart = False,
    ) -> None:
        mod = importlib.import_module(f"system2.selfimprove.{module}")
        flags = {"data": data, "model": model, "out": out, "seed": seed}
        cfg = run_config(getattr(mod, config), config_file, overrides, flags)
        with user_errors():
            result = getattr(mod, runner)(cfg, restart=restart)
        print_table(title, result)

    command.__doc__ = f"{doc} Rerun the same command to resume.\n\nExample: system2 {name} --out runs/{name} {example}"
    return command


RECIPES = {
    # command: (module, config class, runner, title, help)
    "sft": ("sft", "SFTConfig", "run_sft", "SFT",
            "Supervised fine-tuning on gold solutions (M_0); without --model a tiny Llama is built first."),
    "irpo": ("irpo", "IRPOConfig", "run_irpo", "IRPO",
             "Iterative Reasoning Preference Optimization: sample, pair right vs wrong, DPO+NLL, repeat."),
    "expert-iteration": ("expert_iteration", "ExpertIterationConfig", "run_expert_iteration", "expert iteration",
                         "Expert iteration: keep correct samples, pool them over rounds, retrain from the start."),
    "ppo": ("ppo", "PPOConfig", "run_ppo", "PPO",
            "PPO with a final-answer reward, a value head, GAE and a per-token KL penalty to the start policy."),
    "rcrl": ("rcrl", "RCRLConfig", "run_rcrl", "RCRL",
             "Return-conditioned RL: tag samples [GOOD]/[BAD], fine-tune on all, generate conditioned on [GOOD]."),
    "orm": ("orm", "ORMConfig", "train_orm", "outcome reward model",
            "Outcome reward model: a classifier on the policy's labelled samples; reports rerank@K."),
    "dualformer-lm": ("dualformer", "DualformerLMConfig", "run_dualformer_lm", "Dualformer SFT",
                      "Dualformer for LMs: SFT with chain steps dropped at random and answer-only fast examples; "
                      "evaluates slow ([SLOW]) and fast ([FAST]) modes."),
}  # fmt: skip
# the example command line in each recipe's help (the test suite loads every key=value of every help)
EXAMPLES = {
    "sft": "--train-data data/arith/train.parquet --out runs/m0 limit=300 train.steps=300",
    "irpo": "--model runs/m0/model --train-data data/arith/train.parquet --out runs/irpo iterations=3 samples=8",
    "expert-iteration": "--model runs/m0/model --train-data data/arith/train.parquet --out runs/ei rounds=3",
    "ppo": "--model runs/m0/model --train-data data/arith/train.parquet --out runs/ppo iterations=50 kl_coef=0.05",
    "rcrl": "--model runs/m0/model --train-data data/arith/train.parquet --out runs/rcrl rounds=2 samples=16",
    "orm": "--model runs/m0/model --train-data data/arith/train.parquet --eval-data data/arith/test.parquet "
    "--out runs/orm samples=8 eval_samples=8",
    "dualformer-lm": "--train-data data/arith/train.parquet --eval-data data/arith/test.parquet --out runs/dual "
    "drop=0.2 fast_share=0.1",
}


def recipe_config(name: str) -> type:
    """The config class of recipe command ``name``."""
    module, config, *_ = RECIPES[name]
    return getattr(importlib.import_module(f"system2.selfimprove.{module}"), config)


def _recipe_command(name: str) -> Any:
    module, config, runner, title, doc = RECIPES[name]

    def command(
        overrides: Overrides = None,
        model: ModelPath = None,
        train_data: TrainDataPath = None,
        eval_data: EvalDataPath = None,
        task: TaskName = None,
        out: Out = None,
        seed: Seed = None,
        limit: Limit = None,
        steps: FinetuneSteps = None,
        config_file: ConfigFile = None,
        restart: Restart = False,
    ) -> None:
        mod = importlib.import_module(f"system2.selfimprove.{module}")
        cls = getattr(mod, config)
        flags = {"model": model, "train_data": train_data, "eval_data": eval_data, "task": task, "out": out}
        flags.update(seed=seed, limit=limit)
        if steps is not None:
            if "train" not in {f.name for f in dataclasses.fields(cls)}:
                fail(f"{name} has no fine-tuning steps: set its length with iterations=N")
            flags["train.steps"] = steps
        cfg = run_config(cls, config_file, overrides, flags)
        with user_errors():
            result = getattr(mod, runner)(cfg, restart=restart)
        print_table(title, result if isinstance(result, list) else [result])

    command.__doc__ = f"{doc} Rerun the same command to resume.\n\nExample: system2 {name} {EXAMPLES[name]}"
    return command


def register(app: App) -> None:
    """Add the worlds' and the recipes' commands to the main app."""
    app.command("arithmetic", settings="system2.tasks.arithmetic:ArithmeticDataConfig")(arithmetic)
    app.command("quantities", settings="system2.tasks.quantities:QuantityDataConfig")(quantities)
    app.command("instructions", settings="system2.tasks.instructions:InstructionDataConfig")(instructions)
    app.command("thought-data", settings="system2.tasks.thought_data:ThoughtDataConfig")(thought_data)
    app.command("lift-data", settings="system2.tasks.lift_data:LIFTDataConfig")(lift_data)
    app.command("calibrate-quantities", settings="system2.selfimprove.calibrate:CalibrationConfig")(
        calibrate_quantities
    )
    for name, (module, config, *_) in JUDGE_LOOPS.items():
        app.command(name, settings=f"system2.selfimprove.{module}:{config}")(_judge_loop_command(name))
    for name in RECIPES:
        module, config, *_ = RECIPES[name]
        app.command(name, settings=f"system2.selfimprove.{module}:{config}")(_recipe_command(name))
