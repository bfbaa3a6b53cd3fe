"""What a person sees while a job runs: progress of long phases and the tables at the end.

In a terminal, a phase shows a ``rich`` progress bar. When the output goes to a file or a pipe (a
cluster log, ``| tee``), it prints one plain line every ``SYSTEM2_PROGRESS_SECONDS`` seconds (default 30)
and one at the end, flushed at once, so the log of a killed job shows how far it got. Tables are never
cut to 80 columns in a log. Only the main process of a multi-process run prints.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, JustifyMethod

from system2.dist import is_main

LOG_WIDTH = 200  # columns of tables written to a file or a pipe


def console() -> Console:
    """A rich console on stdout: the terminal's width in a terminal, ``LOG_WIDTH`` columns elsewhere."""
    return Console() if sys.stdout.isatty() else Console(width=LOG_WIDTH)


def _interval() -> float:
    try:
        return float(os.environ.get("SYSTEM2_PROGRESS_SECONDS", "30"))
    except ValueError:
        return 30.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


_live: Any = None  # the one rich display all open bars share (rich allows one live display at a time)
_open: list[Progress] = []  # the phases now running, outermost first


class Progress:
    """Progress of one phase: ``with Progress(total, "train") as p: p.update(n, info="loss 0.3")``.

    ``update`` sets the number of units done; ``advance`` adds to it. ``enabled=False`` (or a process
    other than the main one) prints nothing. Phases may nest (sampling inside a training iteration): in
    a terminal the inner bar shows below the outer one while it runs; in a log the inner phase writes
    its lines only when it runs longer than the interval, so short inner phases add no noise."""

    def __init__(self, total: int, label: str, enabled: bool = True, start: int = 0) -> None:
        global _live
        self.total, self.label, self.done, self.info = max(int(total), 0), label, start, ""
        self.enabled = enabled and is_main()
        self.t0 = self.last = time.monotonic()
        self.first = start
        self.nested = bool(_open)
        self.lines = 0  # progress lines written to the log so far
        self.task: Any = None
        if not self.enabled:
            return
        _open.append(self)
        if sys.stdout.isatty():
            if _live is None:
                from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn
                from rich.progress import Progress as RichProgress

                _live = RichProgress(
                    "[bold]{task.description}",
                    BarColumn(),
                    MofNCompleteColumn(),
                    "{task.fields[info]}",
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=console(),
                )
                _live.start()
            self.task = _live.add_task(label, total=self.total, completed=start, info="")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(stopped=exc_type is not None)

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.update(self.done + n, info)

    def update(self, done: int, info: str | None = None) -> None:
        self.done = done
        if info is not None:
            self.info = info
        if not self.enabled:
            return
        if self.task is not None:
            _live.update(self.task, completed=done, info=self.info)
        elif time.monotonic() - self.last >= _interval():
            self._line("progress")

    def _line(self, word: str) -> None:
        now = time.monotonic()
        self.last = now
        self.lines += 1
        elapsed = now - self.t0
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        eta = ""
        if word == "progress" and rate > 0 and self.total > self.done:
            eta = f", about {_duration((self.total - self.done) / rate)} left"
        info = f"  {self.info}" if self.info else ""
        print(f"{self.label}: {word} {self.done}/{self.total}{pct} in {_duration(elapsed)}{eta}{info}", flush=True)

    def close(self, stopped: bool = False) -> None:
        """End the phase: in a log, one last line (``done``, or ``stopped`` when it ended by an error)."""
        global _live
        if not self.enabled:
            return
        self.enabled = False
        if self in _open:
            _open.remove(self)
        if self.task is not None:
            if self.nested and _live is not None:
                _live.remove_task(self.task)
            if not _open and _live is not None:
                _live.stop()
                _live = None
        elif not self.nested or self.lines or stopped:
            self._line("stopped" if stopped else "done")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if 1e4 <= abs(value) < 1e15 else f"{value:.4g}"  # no 1.234e+04
    return str(value)


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value).rstrip("%"))
    except ValueError:
        return False
    return True


def _justify(values: list[Any]) -> JustifyMethod:
    """Right for a column of mostly numbers, left for one of mostly text."""
    filled = [v for v in values if v is not None]
    numbers = sum(_numeric(v) for v in filled)
    return "right" if 2 * numbers >= len(filled) else "left"


def print_table(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    markup: Sequence[str] = (),
) -> None:
    """One table of result rows: the given columns, or the union of the rows' scalar keys in first-seen
    order. Columns of numbers are right-aligned, of text left-aligned. Cells are printed as written (a
    ``[GOOD]`` tag or a ``[abstract]`` note stays visible); only the ``markup`` columns may use rich markup
    (``"[green]held"``). Prints on the main process only."""
    from rich.markup import escape
    from rich.table import Table

    if not is_main():
        return
    cols = list(columns or [])
    if columns is None:
        for r in rows:
            cols += [k for k in r if k not in cols and not isinstance(r[k], (dict, list))]
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify=_justify([r.get(c) for r in rows]))
    for r in rows:
        table.add_row(*(_cell(r.get(c)) if c in markup else escape(_cell(r.get(c))) for c in cols))
    out = console()
    if not out.is_terminal:  # a log: as wide as the table needs, never cut
        from rich.measure import Measurement

        need = Measurement.get(out, out.options.update(max_width=100_000), table).maximum
        out.width = max(LOG_WIDTH, need)
    out.print(table)
