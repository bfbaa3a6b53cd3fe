"""The ``system2`` command line. Thin: parse, validate the config, call a recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from system2 import __version__

app = typer.Typer(
    help="system2: teach transformers to think slow (plan by imitating search, reason, self-improve).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
planning = typer.Typer(
    help="Mazes and Sokoban: A* search dynamics as tokens, datasets, pictures.", no_args_is_help=True
)
app.add_typer(planning, name="planning")
repro = typer.Typer(
    help="Paper reproductions in miniature: every arm, the papers' metrics, claim checks.",
    no_args_is_help=True,
)
app.add_typer(repro, name="repro")
REPROS = ("searchformer", "dualformer", "cope", "irpo", "rl-reasoning")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"system2 {__version__}")
        raise typer.Exit()


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Output directory (cached: a rerun only redraws).")] = Path("demo"),
    steps: Annotated[int | None, typer.Option(help="Training steps (default: the demo's 900).")] = None,
) -> None:
    """The tour: mazes -> A* search dynamics -> a small Searchformer -> unseen mazes solved and drawn."""
    from system2.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=str(out))
    if steps is not None:
        cfg.steps = steps
    run_demo(cfg)


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """system2 command line."""


@planning.command("generate")
def planning_generate(
    env: Annotated[str, typer.Argument(help="maze or sokoban")],
    out: Annotated[Path, typer.Option("--out", help="Dataset directory (new, or a partial one to resume).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Extra settings as key=value.")] = None,
    size: Annotated[int | None, typer.Option(help="Grid side (maze default 10, Sokoban 7 incl. border).")] = None,
    width: Annotated[int | None, typer.Option(help="Grid width (overrides --size).")] = None,
    height: Annotated[int | None, typer.Option(help="Grid height (overrides --size).")] = None,
    train: Annotated[int | None, typer.Option(help="Number of training tasks.")] = None,
    test: Annotated[int | None, typer.Option(help="Number of test tasks (on layouts unseen in train).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed gives the same bytes.")] = None,
    mode: Annotated[str | None, typer.Option(help="det (official tie-breaking) or nondet (randomised A*).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (speed only).")] = None,
    boxes: Annotated[int | None, typer.Option(help="Sokoban: boxes and docks (paper: 2).")] = None,
    walls: Annotated[int | None, typer.Option(help="Sokoban: interior walls (paper: 2).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of settings (flags and key=value win).")] = None,
) -> None:
    """Generate a dataset of A* search dynamics as sharded Parquet (resumable, deterministic)."""
    from system2.config import ConfigError, load_config
    from system2.planning.generate import GenerateConfig, generate_dataset
    from system2.planning.stats import dataset_stats, print_stats

    if env not in ("maze", "sokoban"):
        _fail(f"unknown environment {env!r}: use 'maze' or 'sokoban'")
    side = size if size is not None else (10 if env == "maze" else 7)
    flags: dict[str, Any] = {"env": env, "width": width or side, "height": height or side}
    for key, value in (
        ("train", train),
        ("test", test),
        ("seed", seed),
        ("mode", mode),
        ("workers", workers),
        ("num_boxes", boxes),
        ("num_walls", walls),
    ):
        if value is not None:
            flags[key] = value
    try:
        cfg = load_config(GenerateConfig, config, [*(f"{k}={v}" for k, v in flags.items()), *(overrides or [])])
        cfg.validate()
        generate_dataset(cfg, out)
        print_stats(dataset_stats(out))
    except (ConfigError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    typer.echo(f"dataset written to {out}")


@planning.command("stats")
def planning_stats(
    path: Annotated[Path, typer.Argument(help="Dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Counts and token-length quantiles of a dataset."""
    from system2.planning.stats import dataset_stats, print_stats

    try:
        stats = dataset_stats(path)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
    else:
        print_stats(stats)


@planning.command("show")
def planning_show(
    path: Annotated[Path, typer.Argument(help="Dataset directory.")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    index: Annotated[int, typer.Option(help="Row of the split to draw.")] = 0,
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    model: Annotated[str | None, typer.Option(help="A trained planner: draw its search beside A*'s.")] = None,
    mode: Annotated[str, typer.Option(help="Planner mode: slow, fast or auto.")] = "auto",
) -> None:
    """Draw a task: board, A*'s created and closed nodes shaded by order, and the plan."""
    from system2.planning.generate import read_meta, read_split
    from system2.planning.render import render_row

    try:
        meta = read_meta(path)
        table = read_split(path, split)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if not 0 <= index < table.num_rows:
        _fail(f"--index {index} is out of range: the {split} split has {table.num_rows} rows")
    if mode not in ("slow", "fast", "auto"):
        _fail(f"--mode must be slow, fast or auto, got {mode!r}")
    row = table.slice(index, 1).to_pylist()[0]
    extra = []
    if model is not None:
        extra.append((f"model ({mode} mode, greedy)", _model_response(model, path, split, index, mode)))
    render_row(row, meta["env"], out, extra)
    typer.echo(f"wrote {out}")


def _model_response(model: str, data: Path, split: str, index: int, mode: str) -> list[str]:
    from system2.planning.inference import respond

    try:
        return respond(model, data, split, index, mode)  # type: ignore[arg-type]
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
        raise


def _run_config(cls: type, config: Path | None, overrides: list[str] | None, flags: dict[str, Any]) -> Any:
    """Defaults < YAML file < command-line flags < key=value overrides; errors exit with a message."""
    from system2.config import ConfigError, load_config

    items = [f"{k}={v}" for k, v in flags.items() if v is not None]
    try:
        cfg = load_config(cls, config, [*items, *(overrides or [])])
        cfg.validate()
    except ConfigError as e:
        _fail(str(e))
    return cfg


@planning.command("train")
def planning_train(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Settings as key=value (e.g. train.steps=2000).")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Planning dataset directory.")] = None,
    out: Annotated[str | None, typer.Option(help="Run directory (rerun to resume).")] = None,
    mode: Annotated[str | None, typer.Option(help="solution, search (Searchformer) or dualformer.")] = None,
    preset: Annotated[str | None, typer.Option(help="Model size: tiny, cpu, s, m, l, xl.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML recipe (e.g. configs/planning/*.yaml).")] = None,
) -> None:
    """Train a planner (encoder-decoder) on A* search dynamics; works under torchrun / accelerate launch."""
    from system2.planning.recipes import PlannerTrainConfig, train_planner

    cfg = _run_config(
        PlannerTrainConfig,
        config,
        overrides,
        {"data": data, "out": out, "mode": mode, "model.preset": preset},
    )
    try:
        path = train_planner(cfg)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    typer.echo(f"model saved to {path}")


@planning.command("eval")
def planning_eval(
    model: Annotated[str, typer.Argument(help="Trained planner: run, model or checkpoint directory.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Settings as key=value.")] = None,
    data: Annotated[str | None, typer.Option(help="Planning dataset directory.")] = None,
    split: Annotated[str | None, typer.Option(help="train or test.")] = None,
    samples: Annotated[int | None, typer.Option(help="Sampled responses per task (K).")] = None,
    mode: Annotated[str | None, typer.Option(help="slow (force create), fast (force plan) or auto.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N tasks.")] = None,
    out: Annotated[str | None, typer.Option(help="Directory for tasks.parquet and summary.json.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of settings.")] = None,
) -> None:
    """Decode test tasks greedily and K times: optimal/feasible rates, SWC, ILR, trace length, diversity."""
    from system2.planning.recipes import PlannerEvalConfig, evaluate_planner, print_summary

    flags = {
        "model": model,
        "data": data,
        "split": split,
        "samples": samples,
        "mode": mode,
        "limit": limit,
        "out": out,
    }
    cfg = _run_config(PlannerEvalConfig, config, overrides, flags)
    try:
        summary = evaluate_planner(cfg)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    print_summary(summary, f"{cfg.mode} mode, {cfg.split} split")


@planning.command("bootstrap")
def planning_bootstrap(
    overrides: Annotated[list[str] | None, typer.Argument(help="Settings as key=value.")] = None,
    model: Annotated[str | None, typer.Option(help="Run directory of the step-0 search-augmented planner.")] = None,
    data: Annotated[str | None, typer.Option(help="Planning dataset directory.")] = None,
    out: Annotated[str | None, typer.Option(help="Output directory (rerun to resume).")] = None,
    rounds: Annotated[int | None, typer.Option(help="Bootstrapping rounds (paper: 3).")] = None,
    samples: Annotated[int | None, typer.Option(help="Responses sampled per training prompt.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of settings.")] = None,
) -> None:
    """Search-dynamics bootstrapping: keep the shortest optimal sampled trace, fine-tune, repeat."""
    from system2.planning.bootstrap import BootstrapConfig, run_bootstrap

    flags = {"model": model, "data": data, "out": out, "rounds": rounds, "samples": samples}
    cfg = _run_config(BootstrapConfig, config, overrides, flags)
    try:
        results = run_bootstrap(cfg)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    from rich.console import Console
    from rich.table import Table

    table = Table(title="search-dynamics bootstrapping")
    cols = ("round", "any_optimal", "mean_trace_tokens_optimal", "ilr_optimal", "improved_prompts")
    for c in cols:
        table.add_column(c, justify="right")
    for r in results:
        opt = next((v for k, v in r.items() if k.startswith("any_optimal@")), None)
        vals = (
            r["round"],
            opt,
            r.get("mean_trace_tokens_optimal"),
            r.get("ilr_optimal"),
            r.get("improved_prompts"),
        )
        table.add_row(*("-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in vals))
    Console().print(table)


def _run_repro(name: str, scale: str, seeds: int | None, out: Path | None) -> None:
    import importlib

    module = importlib.import_module(f"system2.repro.{name.replace('-', '_')}")
    if scale not in module.SCALES:
        _fail(f"unknown scale {scale!r}: use one of {', '.join(module.SCALES)}")
    if seeds is not None and seeds < 1:
        _fail("--seeds must be >= 1")
    target = out or Path("runs") / "repro" / f"{name}-{scale}"
    if scale == "paper":
        typer.secho(
            "paper scale runs the papers' own settings: days of GPU time; see configs/ to launch single arms "
            "with accelerate launch",
            fg=typer.colors.YELLOW,
        )
    module.run(scale, target, seeds)
    typer.echo(f"report: {target / 'report.md'}")


def _repro_command(name: str) -> None:
    def command(
        scale: Annotated[
            str, typer.Option(help="tiny (minutes), small (about an hour on 2 CPU cores) or paper.")
        ] = "tiny",
        seeds: Annotated[int | None, typer.Option(help="Seeds per arm (default: the scale's).")] = None,
        out: Annotated[Path | None, typer.Option(help="Output directory (rerun to resume).")] = None,
    ) -> None:
        _run_repro(name, scale, seeds, out)

    command.__doc__ = f"Reproduce {name.capitalize()} in miniature and write a report with claim checks."
    repro.command(name)(command)


for _name in REPROS:
    _repro_command(_name)


@repro.command("all")
def repro_all(
    scale: Annotated[str, typer.Option(help="tiny, small or paper.")] = "tiny",
    seeds: Annotated[int | None, typer.Option(help="Seeds per arm.")] = None,
    out: Annotated[Path, typer.Option(help="Parent output directory.")] = Path("runs/repro"),
) -> None:
    """Run every reproduction at one scale."""
    for name in REPROS:
        _run_repro(name, scale, seeds, out / f"{name}-{scale}")


def _register_selfimprove() -> None:
    from system2.selfimprove.commands import register

    register(app)


_register_selfimprove()

if __name__ == "__main__":
    app()
