"""Command-line entry points of the self-improvement recipes (registered on the main ``system2`` app).

Each command reads a config (defaults < ``--config`` YAML < flags < ``key=value`` overrides), runs the
recipe (a rerun with the same ``out`` resumes), and prints a table of its results.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

Overrides = Annotated[list[str] | None, typer.Argument(help="Settings as key=value (e.g. train.steps=200).")]
ModelPath = Annotated[str | None, typer.Option(help="Local causal LM directory (the starting policy).")]
TrainData = Annotated[str | None, typer.Option(help="Training problems (Parquet or JSONL).")]
EvalData = Annotated[str | None, typer.Option(help="Held-out problems for evaluation.")]
Out = Annotated[str | None, typer.Option(help="Run directory (rerun to resume).")]


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    """A rich table of result rows (the union of their keys, in first-seen order)."""
    from rich.console import Console
    from rich.table import Table

    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols and not isinstance(r[k], (dict, list))]
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        vals = [r.get(c) for c in cols]
        table.add_row(*("-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in vals))
    Console().print(table)


def _run(cls: type, runner: Any, title: str, config: Path | None, overrides: list[str] | None, flags: dict) -> None:
    from system2.cli import _fail, _run_config

    cfg = _run_config(cls, config, overrides, flags)
    try:
        result = runner(cfg)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if int(os.environ.get("RANK", "0")) == 0:  # one table under torchrun / accelerate launch
        print_rows(title, result if isinstance(result, list) else [result])


def arithmetic(
    out: Annotated[Path, typer.Option(help="Directory for train/test/hard/svamp Parquet files.")],
    train: Annotated[int, typer.Option(help="Training problems (2-4 operations).")] = 2000,
    test: Annotated[int, typer.Option(help="Test problems (2-4 operations, unseen in train).")] = 500,
    hard: Annotated[int, typer.Option(help="Harder test problems (5 operations).")] = 500,
    svamp: Annotated[int, typer.Option(help="Word problems with held-out phrasings.")] = 0,
    modulus: Annotated[int, typer.Option(help="Arithmetic modulo this number.")] = 20,
    style: Annotated[str, typer.Option(help="symbolic or words.")] = "symbolic",
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same files.")] = 0,
) -> None:
    """Generate the arithmetic reasoning world: problems, gold chains of thought, exact answers."""
    from system2.cli import _fail
    from system2.tasks.arithmetic import ArithmeticConfig, write_dataset

    try:
        splits = write_dataset(out, seed, train, test, hard, svamp, ArithmeticConfig(modulus=modulus, style=style))
    except ValueError as e:
        _fail(str(e))
    example = splits["train"][0]
    print_rows(f"arithmetic world in {out}", [{"split": k, "problems": len(v)} for k, v in splits.items()])
    typer.echo(f"example: {example.question}  ->  {example.solution}")


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
}  # fmt: skip


def _recipe_command(module: str, config: str, runner: str, title: str, doc: str) -> Any:
    def command(
        overrides: Overrides = None,
        model: ModelPath = None,
        train_data: TrainData = None,
        eval_data: EvalData = None,
        out: Out = None,
        config_file: Annotated[
            Path | None, typer.Option("--config", help="YAML file of settings (see configs/selfimprove/).")
        ] = None,
    ) -> None:
        import importlib

        mod = importlib.import_module(f"system2.selfimprove.{module}")
        flags = {"model": model, "train_data": train_data, "eval_data": eval_data, "out": out}
        _run(getattr(mod, config), getattr(mod, runner), title, config_file, overrides, flags)

    command.__doc__ = doc + " Other settings as key=value (e.g. iterations=3 train.steps=200); rerun to resume."
    return command


def register(app: typer.Typer) -> None:
    """Add the self-improvement commands to the main app."""
    app.command("arithmetic")(arithmetic)
    for name, spec in RECIPES.items():
        app.command(name)(_recipe_command(*spec))
