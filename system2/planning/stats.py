"""Counts and token-length quantiles of a planning dataset (compare with the official numbers in docs/planning.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from system2.console import console, print_table
from system2.planning.generate import read_meta, read_split

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
LENGTHS = ("prompt_len", "trace_len", "plan_len", "trace_plan_len", "optimal_plan_length")


def dataset_stats(path: str | Path) -> dict[str, Any]:
    """Per split: tasks, layouts, and min/q1/median/q3/max of every length column."""
    meta = read_meta(path)
    out: dict[str, Any] = {"meta": meta, "splits": {}}
    for split in sorted(meta["files"], key=lambda s: (s != "train", s)):
        lengths = ["prompt_len", "trace_len", "plan_len", "optimal_plan_length"]
        table = read_split(path, split, ["layout_id", *lengths])
        cols = {k: table[k].to_numpy() for k in lengths}
        cols["trace_plan_len"] = cols["trace_len"] + cols["plan_len"]
        out["splits"][split] = {
            "tasks": table.num_rows,
            "layouts": len(set(table["layout_id"].to_pylist())),
            "quantiles": {k: [float(x) for x in np.quantile(v, QUANTILES)] if len(v) else [] for k, v in cols.items()},
            "mean": {k: float(v.mean()) if len(v) else 0.0 for k, v in cols.items()},
        }
    return out


def print_stats(stats: dict[str, Any]) -> None:
    """A short table per split."""
    meta = stats["meta"]
    console().print(
        f"[bold]{meta['env']} {meta['width']}x{meta['height']}[/bold], {meta['mode']} A*, "
        f"seed {meta['seed']}, vocabulary {meta['vocab_size']} tokens"
    )
    columns = ["tokens", "min", "q1", "median", "q3", "max", "mean"]
    for split, s in stats["splits"].items():
        rows = [
            dict(zip(columns, [k, *[f"{x:g}" for x in s["quantiles"][k]], f"{s['mean'][k]:.1f}"], strict=True))
            for k in LENGTHS
            if s["quantiles"][k]
        ]
        print_table(f"{split}: {s['tasks']} tasks on {s['layouts']} layouts", rows, columns)
