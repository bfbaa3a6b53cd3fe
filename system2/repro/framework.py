"""What every reproduction shares around its claims: its run record, tables of mean ± sd over seeds, and the
report (``report.md`` with the verdicts of ``verdicts.py``, tables and plots; ``metrics.json``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from system2.config import default_settings, from_dict, merge_settings
from system2.console import print_table
from system2.repro.verdicts import HOW_TO_READ, ClaimVerdict, verdict_table
from system2.runs import atomic_write_json, atomic_write_text, open_run

ScaleT = TypeVar("ScaleT")  # a reproduction's scale dataclass


def with_overrides(scale: ScaleT, **kw: Any) -> ScaleT:
    """``scale`` (a dataclass) with the given fields replaced, skipping those given as None (options
    such as ``--seeds`` that were not passed)."""
    return replace(scale, **{k: v for k, v in kw.items() if v is not None})  # type: ignore[type-var]


Metrics = dict[str, Any]


def start_repro(out: Path, paper: str, scale_name: str, scale: Any, restart: bool = False) -> Path:
    """Record the reproduction's settings in ``out`` before any compute. ``seeds`` is not part of them:
    every seed has its own sub-runs, so a rerun with more seeds reuses the finished ones; any other
    change of the scale is refused (``restart``: move the old run aside)."""
    settings = {"paper": paper, "scale": scale_name, **{k: v for k, v in asdict(scale).items() if k != "seeds"}}
    defaults = {"paper": paper, "scale": scale_name, **default_settings(type(scale))}  # fields added later
    return open_run(out, "repro", settings, restart=restart, defaults=defaults)


def scale_with_settings(scale: ScaleT, settings: Mapping[str, Any] | None) -> ScaleT:
    """``scale`` with ``settings`` (field -> value, as text from the command line or typed) applied; an unknown
    field is an error naming the closest one. Nested settings (``arm.corpus=...``) change only the fields they
    name."""
    if not settings:
        return scale
    return from_dict(type(scale), merge_settings(asdict(scale), settings))


def mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample sd over seeds, for tables. A metric no seed measured (None or NaN everywhere) is NaN,
    shown as "-"; one that some seeds measured and others did not raises: a table must not drop seeds."""
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in values]
    if all(missing):
        return float("nan"), float("nan")
    if any(missing):
        raise ValueError(f"{sum(missing)} of {len(values)} seeds lack a value the others have: {list(values)}")
    vals = [float(v) for v in values]  # type: ignore[arg-type]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt(mean: float, std: float | None = None, pct: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    scale = 100 if pct else 1
    s = f"{mean * scale:.1f}" if pct else f"{mean:.3g}"
    if std:
        s += f" ± {std * scale:.1f}" if pct else f" ± {std:.2g}"
    return s


def measured_cell(rows: Sequence[Mapping[str, Any]], key: str, pct: bool = False) -> str:
    """``key``'s mean ± sd over the rows (one per seed) that measured it (a number, not NaN), or "-" when none did:
    for tables of runs whose seeds may stop at different points, each cell over the seeds that reached it."""
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and r[key] == r[key]]
    return fmt(*mean_std(values), pct=pct) if values else "-"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.header) + " |"]
        lines.append("|" + "|".join("---" for _ in self.header) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"


def write_report(
    out: Path,
    title: str,
    intro: str,
    tables: Sequence[Table],
    plots: Sequence[tuple[str, str]],
    claims: Sequence[ClaimVerdict],
    metrics: Metrics,
) -> Path:
    """``out/report.md`` (the verdicts with how to read them, tables, plots) and ``out/metrics.json``."""
    lines = [f"# {title}", "", intro.strip(), "", "## Claims", "", HOW_TO_READ.strip(), "", verdict_table(claims)]
    lines += ["## Results", ""]
    for t in tables:
        lines += [t.markdown(), ""]
    for caption, path in plots:
        lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    atomic_write_json(out / "metrics.json", {"claims": [asdict(c) for c in claims], "metrics": metrics})
    return report


def print_claims(claims: Sequence[ClaimVerdict]) -> None:
    colour = {"held": "green", "contradicted": "red", "inconclusive": "yellow", "not testable": "yellow"}
    rows = [
        {"claim": c.name, "paper": c.paper, "ours": c.ours, "verdict": f"[{colour[c.verdict]}]{c.verdict}"}
        for c in claims
    ]
    print_table("claim checks", rows, ["claim", "paper", "ours", "verdict"], markup=["verdict"])
