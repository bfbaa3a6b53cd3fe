"""``system2 planning ...`` and ``system2 demo``: mazes and Sokoban, planners, bootstrapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from system2.cli.common import App, ConfigFile, Out, Overrides, Restart, fail, run_config, user_errors

planning = App(
    help="Mazes and Sokoban: A* search dynamics as tokens, datasets, planners, pictures.", no_args_is_help=True
)
Data = Annotated[str | None, typer.Option("--data", help="Planning dataset directory.")]
TrainMode = Annotated[str | None, typer.Option(help="solution, search (Searchformer) or dualformer.")]
Preset = Annotated[str | None, typer.Option(help="Model size: tiny, cpu, s, m, l, xl.")]
TrainSteps = Annotated[int | None, typer.Option(help="Optimizer steps (train.steps).")]


def demo(
    overrides: Overrides = None,
    out: Annotated[Path, typer.Option(help="Output directory (cached: a rerun only redraws).")] = Path("demo"),
    steps: Annotated[int | None, typer.Option(help="Training steps (default: the demo's 2800).")] = None,
    restart: Restart = False,
) -> None:
    """The tour: mazes -> A* search dynamics -> a small Searchformer -> unseen mazes solved and drawn.

    Example: system2 demo --out demo --steps 2800 size=5 lr=0.002
    """
    from system2.demo import DemoConfig, run_demo

    flags = {"out": str(out), "steps": steps}
    cfg = run_config(DemoConfig, None, overrides, flags)
    with user_errors():
        run_demo(cfg, restart=restart)


@planning.command("generate", settings="system2.planning.generate:GenerateConfig")
def generate(
    env: Annotated[str, typer.Argument(help="maze or sokoban")],
    out: Annotated[Path, typer.Option("--out", help="Dataset directory (new, or a partial one to resume).")],
    overrides: Overrides = None,
    size: Annotated[int | None, typer.Option(help="Sets width and height (maze 10, Sokoban 7 with border).")] = None,
    train: Annotated[int | None, typer.Option(help="Number of training tasks.")] = None,
    test: Annotated[int | None, typer.Option(help="Number of test tasks (on layouts unseen in train).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed gives the same bytes.")] = None,
    mode: Annotated[str | None, typer.Option(help="det (official tie-breaking) or nondet (randomised A*).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (speed only).")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Generate a dataset of A* search dynamics as sharded Parquet (resumable, deterministic).

    Example: system2 planning generate sokoban --size 7 --train 1000 --out data/sokoban7 num_boxes=2 num_walls=2
    """
    from system2.planning.generate import GenerateConfig, generate_dataset
    from system2.planning.stats import dataset_stats, print_stats

    if env not in ("maze", "sokoban"):
        fail(f"unknown environment {env!r}: use 'maze' or 'sokoban'")
    side = size if size is not None else (10 if env == "maze" else 7)
    flags: dict[str, Any] = {"env": env, "width": side, "height": side}
    flags.update(train=train, test=test, seed=seed, mode=mode, workers=workers)
    cfg = run_config(GenerateConfig, config, overrides, flags)
    with user_errors():
        generate_dataset(cfg, out, restart=restart)
        print_stats(dataset_stats(out))
    typer.echo(f"dataset written to {out}")


@planning.command("stats")
def stats(
    path: Annotated[Path, typer.Argument(help="Dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.", show_default=False)] = False,
) -> None:
    """Counts and token-length quantiles of a dataset."""
    from system2.planning.stats import dataset_stats, print_stats

    with user_errors():
        result = dataset_stats(path)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_stats(result)


@planning.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="Dataset directory.")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    index: Annotated[int, typer.Option(help="Row of the split to draw.")] = 0,
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    model: Annotated[str | None, typer.Option(help="A trained planner: draw its search beside A*'s.")] = None,
    mode: Annotated[str, typer.Option(help="Planner mode: slow, fast or auto.")] = "auto",
) -> None:
    """Draw a task: board, A*'s created and closed nodes shaded by order, and the plan."""
    from system2.planning.generate import read_meta, read_split
    from system2.planning.inference import respond
    from system2.planning.render import render_row

    if mode not in ("slow", "fast", "auto"):
        fail(f"--mode must be slow, fast or auto, got {mode!r}")
    with user_errors():
        meta = read_meta(path)
        table = read_split(path, split)
        if not 0 <= index < table.num_rows:
            fail(f"--index {index} is out of range: the {split} split has {table.num_rows} rows")
        row = table.slice(index, 1).to_pylist()[0]
        extra = []
        if model is not None:
            extra.append((f"model ({mode} mode, greedy)", respond(model, path, split, index, mode)))  # type: ignore[arg-type]
        render_row(row, meta["env"], out, extra)
    typer.echo(f"wrote {out}")


@planning.command("train", settings="system2.planning.recipes:PlannerTrainConfig")
def train(
    overrides: Overrides = None,
    data: Data = None,
    out: Out = None,
    mode: TrainMode = None,
    preset: Preset = None,
    steps: TrainSteps = None,
    seed: Annotated[int | None, typer.Option(help="Seed of initialisation and data order (train.seed).")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Train a planner (encoder-decoder) on A* search dynamics; works under torchrun / accelerate launch.

    Example: system2 planning train --data data/maze10 --out runs/sf --mode search --steps 3000 train.lr=0.0003
    """
    from system2.planning.recipes import PlannerTrainConfig, train_planner

    flags = {"data": data, "out": out, "mode": mode, "model.preset": preset, "train.steps": steps, "train.seed": seed}
    cfg = run_config(PlannerTrainConfig, config, overrides, flags)
    with user_errors():
        path = train_planner(cfg, restart=restart)
    typer.echo(f"model saved to {path}")


@planning.command("curve", settings="system2.planning.curves:CurveConfig")
def curve(
    overrides: Overrides = None,
    data: Data = None,
    out: Out = None,
    mode: TrainMode = None,
    preset: Preset = None,
    steps: TrainSteps = None,
    config: ConfigFile = None,
) -> None:
    """Train a planner keeping every checkpoint and decode each greedily on unseen tasks: a learning curve.

    Writes OUT/curve.json and OUT/curve.png; a rerun resumes. Example: system2 planning curve --data data/maze7
    --out runs/curve --mode search --steps 3000 train.ckpt_every=250 eval_limit=200
    """
    from system2.console import print_table
    from system2.planning.curves import CurveConfig, learning_curve, plot_curves

    flags = {"data": data, "out": out, "mode": mode, "model.preset": preset, "train.steps": steps}
    cfg = run_config(CurveConfig, config, overrides, flags)
    with user_errors():
        points = learning_curve(cfg)
        png = plot_curves({cfg.mode: points}, Path(cfg.out) / "curve.png", f"{cfg.mode}, {cfg.model.preset} preset")
    print_table("learning curve", points, ["step", "train_loss", "greedy_optimal", "greedy_feasible", "tasks"])
    typer.echo(f"wrote {png}")


@planning.command("eval", settings="system2.planning.recipes:PlannerEvalConfig")
def evaluate(
    model: Annotated[str, typer.Argument(help="Trained planner: run, model or checkpoint directory.")],
    overrides: Overrides = None,
    data: Data = None,
    split: Annotated[str | None, typer.Option(help="train or test.")] = None,
    samples: Annotated[int | None, typer.Option(help="Sampled responses per task (K).")] = None,
    mode: Annotated[str | None, typer.Option(help="slow (force create), fast (force plan) or auto.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate only N tasks (0: all).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sampled responses.")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Directory for tasks.parquet and summary.json.")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Decode test tasks greedily and K times: optimal/feasible rates, SWC, ILR, trace length, diversity.

    Example: system2 planning eval runs/sf --data data/maze10 --mode slow --samples 64 temperature=0.8
    """
    from system2.planning.recipes import PlannerEvalConfig, evaluate_planner, print_summary

    flags = {"model": model, "data": data, "split": split, "samples": samples, "mode": mode}
    flags.update(limit=limit, seed=seed, out=out)
    cfg = run_config(PlannerEvalConfig, config, overrides, flags)
    with user_errors():
        summary = evaluate_planner(cfg, restart=restart)
    print_summary(summary, f"{cfg.mode} mode, {cfg.split} split")


@planning.command("bootstrap", settings="system2.planning.bootstrap:BootstrapConfig")
def bootstrap(
    overrides: Overrides = None,
    model: Annotated[str | None, typer.Option(help="Run directory of the step-0 search-augmented planner.")] = None,
    data: Data = None,
    out: Out = None,
    samples: Annotated[int | None, typer.Option(help="Responses sampled per training prompt.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sampled responses.")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Search-dynamics bootstrapping: keep the shortest optimal sampled trace, fine-tune, repeat.

    Example: system2 planning bootstrap --model runs/sf --data data/maze10 --out runs/boot rounds=3 train.steps=500
    """
    from system2.planning.bootstrap import BootstrapConfig, run_bootstrap

    flags = {"model": model, "data": data, "out": out, "samples": samples, "seed": seed}
    cfg = run_config(BootstrapConfig, config, overrides, flags)
    with user_errors():
        results = run_bootstrap(cfg, restart=restart)
    from system2.console import print_table

    optimal = next((k for k in results[0] if k.startswith("any_optimal@")), "any_optimal")
    columns = [
        "round",
        optimal,
        "greedy_optimal",
        "mean_search_steps_optimal",
        "search_ratio_vs_astar",
        "ilr_optimal",
        "replaced",
        "shortened",
    ]
    print_table("search-dynamics bootstrapping", results, columns)


def register(app: App) -> None:
    """Add ``demo`` and the ``planning`` group to the main app."""
    app.command("demo", settings="system2.demo:DemoConfig")(demo)
    app.add_typer(planning, name="planning")
