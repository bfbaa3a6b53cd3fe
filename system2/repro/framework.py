"""The reproduction framework: claims as named predicates on measured numbers, and the report.

A claim states what the paper found, quotes the paper's figure, and checks our measurement. A claim
that does not hold is reported as not held; checks are never tuned to pass.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from system2.console import print_table
from system2.repro.verdicts import HOW_TO_READ, ClaimVerdict
from system2.runs import atomic_write_json, atomic_write_text, open_run

Scale = TypeVar("Scale")


def with_overrides(scale: Scale, **kw: Any) -> Scale:
    """``scale`` (a dataclass) with the given fields replaced, skipping those given as None (options
    such as ``--seeds`` that were not passed)."""
    return replace(scale, **{k: v for k, v in kw.items() if v is not None})  # type: ignore[type-var]


Metrics = dict[str, Any]


def start_repro(out: Path, paper: str, scale_name: str, scale: Any, restart: bool = False) -> Path:
    """Record the reproduction's settings in ``out`` before any compute. ``seeds`` is not part of them:
    every seed has its own sub-runs, so a rerun with more seeds reuses the finished ones; any other
    change of the scale is refused (``restart``: move the old run aside)."""
    settings = {"paper": paper, "scale": scale_name, **{k: v for k, v in asdict(scale).items() if k != "seeds"}}
    return open_run(out, "repro", settings, restart=restart)


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str  # what the paper claims
    paper: str  # the paper's own numbers, as text
    check: Callable[[Metrics], tuple[bool | None, str]]  # (held, our numbers as text); None: not testable


@dataclass(frozen=True)
class ClaimResult:
    name: str
    statement: str
    paper: str
    ours: str
    held: bool | None


def check_claims(claims: Sequence[Claim], metrics: Metrics) -> list[ClaimResult]:
    out = []
    for c in claims:
        try:
            held, ours = c.check(metrics)
        except (KeyError, ValueError, ZeroDivisionError) as e:
            held, ours = None, f"not measurable: {e}"
        out.append(ClaimResult(c.name, c.statement, c.paper, ours, held))
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt(mean: float, std: float | None = None, pct: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    scale = 100 if pct else 1
    s = f"{mean * scale:.1f}" if pct else f"{mean:.3g}"
    if std:
        s += f" ± {std * scale:.1f}" if pct else f" ± {std:.2g}"
    return s


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
    claims: Sequence[ClaimResult | ClaimVerdict],
    metrics: Metrics,
) -> Path:
    """``out/report.md`` (tables, plots, verdicts) and ``out/metrics.json``. Claims decided by ``verdicts``
    (``ClaimVerdict``) come with the paragraph on how to read their four verdicts."""
    lines = [f"# {title}", "", intro.strip(), "", "## Claims", ""]
    if claims and all(isinstance(c, ClaimVerdict) for c in claims):
        lines += [HOW_TO_READ.strip(), ""]
    lines += ["| claim | paper | ours | verdict |", "|---|---|---|---|"]
    for c in claims:
        lines.append(f"| **{c.name}**: {c.statement} | {c.paper} | {c.ours} | {_verdict(c)} |")
    lines += ["", "## Results", ""]
    for t in tables:
        lines += [t.markdown(), ""]
    for caption, path in plots:
        lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    atomic_write_json(out / "metrics.json", {"claims": [asdict(c) for c in claims], "metrics": metrics})
    return report


def _verdict(c: ClaimResult | ClaimVerdict) -> str:
    if isinstance(c, ClaimVerdict):
        return c.verdict
    return {True: "held", False: "NOT held", None: "not testable"}[c.held]


def print_claims(claims: Sequence[ClaimResult | ClaimVerdict]) -> None:
    colour = {"held": "green", "NOT held": "red", "contradicted": "red", "inconclusive": "yellow"}
    rows = [
        {"claim": c.name, "paper": c.paper, "ours": c.ours, "verdict": f"[{colour.get(v, 'yellow')}]{v}"}
        for c in claims
        for v in [_verdict(c)]
    ]
    print_table("claim checks", rows, ["claim", "paper", "ours", "verdict"], markup=["verdict"])
