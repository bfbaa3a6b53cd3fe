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


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"system2 {__version__}")
        raise typer.Exit()


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
    size: Annotated[
        int | None, typer.Option(help="Grid side (maze default 10, Sokoban 7 incl. border).")
    ] = None,
    width: Annotated[int | None, typer.Option(help="Grid width (overrides --size).")] = None,
    height: Annotated[int | None, typer.Option(help="Grid height (overrides --size).")] = None,
    train: Annotated[int | None, typer.Option(help="Number of training tasks.")] = None,
    test: Annotated[
        int | None, typer.Option(help="Number of test tasks (on layouts unseen in train).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed gives the same bytes.")] = None,
    mode: Annotated[
        str | None, typer.Option(help="det (official tie-breaking) or nondet (randomised A*).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (speed only).")] = None,
    boxes: Annotated[int | None, typer.Option(help="Sokoban: boxes and docks (paper: 2).")] = None,
    walls: Annotated[int | None, typer.Option(help="Sokoban: interior walls (paper: 2).")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file of settings (flags and key=value win).")
    ] = None,
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
        cfg = load_config(
            GenerateConfig, config, [*(f"{k}={v}" for k, v in flags.items()), *(overrides or [])]
        )
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
    row = table.slice(index, 1).to_pylist()[0]
    render_row(row, meta["env"], out)
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
