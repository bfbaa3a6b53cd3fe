"""Counts and token-length quantiles of a planning dataset (compare with planning.md A3/A4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from system2.planning.generate import read_meta, read_split

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
LENGTHS = ("prompt_len", "trace_len", "plan_len", "trace_plan_len", "optimal_plan_length")


def dataset_stats(path: str | Path) -> dict[str, Any]:
    """Per split: tasks, layouts, and min/q1/median/q3/max of every length column."""
    meta = read_meta(path)
    out: dict[str, Any] = {"meta": meta, "splits": {}}
    for split in sorted(meta["files"], key=lambda s: (s != "train", s)):
        table = read_split(path, split)
        cols = {k: table[k].to_numpy() for k in ("prompt_len", "trace_len", "plan_len", "optimal_plan_length")}
        cols["trace_plan_len"] = cols["trace_len"] + cols["plan_len"]
        out["splits"][split] = {
            "tasks": table.num_rows,
            "layouts": len(set(table["layout_id"].to_pylist())),
            "quantiles": {k: [float(x) for x in np.quantile(v, QUANTILES)] if len(v) else [] for k, v in cols.items()},
            "mean": {k: float(v.mean()) if len(v) else 0.0 for k, v in cols.items()},
        }
    return out


def print_stats(stats: dict[str, Any]) -> None:
    """A short rich table per split."""
    from rich.console import Console
    from rich.table import Table

    meta = stats["meta"]
    console = Console()
    console.print(
        f"[bold]{meta['env']} {meta['width']}x{meta['height']}[/bold], {meta['mode']} A*, "
        f"seed {meta['seed']}, vocabulary {meta['vocab_size']} tokens"
    )
    for split, s in stats["splits"].items():
        table = Table(title=f"{split}: {s['tasks']} tasks on {s['layouts']} layouts")
        table.add_column("tokens")
        for q in ("min", "q1", "median", "q3", "max", "mean"):
            table.add_column(q, justify="right")
        for k in LENGTHS:
            qs = s["quantiles"][k]
            if not qs:
                continue
            table.add_row(k, *[f"{x:g}" for x in qs], f"{s['mean'][k]:.1f}")
        console.print(table)
