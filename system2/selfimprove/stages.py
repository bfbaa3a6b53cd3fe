"""Stages of the self-improvement loops that run once and are kept: a stage's result is a file in the run
directory, computed when it is missing and read back when a rerun finds it (so a killed run resumes at the stage
where it stopped). Under several processes every process sees the same answer to "is it done?", heavy stages are
shared (each process computes its slice of the items), and only the main process writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from system2 import dist
from system2.runs import atomic_write_json, read_parquet, write_parquet


def stage_done(path: Path) -> bool:
    """Whether a stage's file exists, as every process sees it before any process writes it."""
    done = path.is_file()
    dist.barrier()
    return done


def cached_json(path: Path, compute: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The JSON at ``path``, or ``compute(*args, **kwargs)`` written there atomically by the main process (a stage
    done once; every process computes it, so it must be deterministic)."""
    if stage_done(path):
        return json.loads(path.read_text())
    result = compute(*args, **kwargs)
    if dist.is_main():
        atomic_write_json(path, result)
    dist.barrier()
    return result


def cached_rows(
    path: Path, compute: Callable[..., list[dict[str, Any]]], *args: Any, **kwargs: Any
) -> list[dict[str, Any]]:
    """The rows of the Parquet file at ``path``, or ``compute(*args, **kwargs)`` written there atomically by the
    main process (every process computes them: cheap, deterministic stages such as pairs)."""
    if stage_done(path):
        return read_parquet(path).to_pylist()
    rows = compute(*args, **kwargs)
    if dist.is_main():
        write_parquet(path, rows)
    dist.barrier()
    return rows


def sharded_rows(
    path: Path, items: Sequence[Any], compute: Callable[[Sequence[Any], int], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``cached_rows`` for heavy stages: each process computes ``compute(its slice of items, offset of the slice)``
    (sampling keys each prompt's random stream by its index in ``items``, so the slices give the rows of one
    process), the rows are gathered in item order, and the main process writes them."""
    if stage_done(path):
        return read_parquet(path).to_pylist()
    lo, hi = dist.shard(len(items))
    rows = [r for part in dist.all_gather(compute(items[lo:hi], lo)) for r in part]  # type: ignore[union-attr]
    if dist.is_main():
        write_parquet(path, rows)
    dist.barrier()
    return rows
