"""Citations a reader can follow: comments and strings in the code, configs, benchmarks and tests cite the
papers (arXiv id and section, table or figure), the official code by repository name, or a page of this
repository's docs/ (``docs/planning.md``), never design notes that live outside the repository
(``planning.md A5``, ``posttraining.md R1``, ``architecture.md 1.3``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("system2", "configs", "benchmarks", "tests")
SUFFIXES = {".py", ".yaml", ".yml"}
# a note's name with the path written right before it; only the path docs/ names a page of this repository
NOTE = re.compile(r"(?<![\w./-])([\w./-]*?)\b(planning|posttraining|architecture|DESIGN)\.md", re.IGNORECASE)


def outside_citations(text: str) -> list[tuple[int, str]]:
    """(line number, cited name) for every mention of a design-note name not written as ``docs/NAME.md``."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in NOTE.finditer(line):
            if match.group(1) != "docs/":
                found.append((number, match.group(0)))
    return found


def test_outside_citations_are_recognised() -> None:
    text = "a (planning.md A5)\nb docs/planning.md\nc ../shared/design/posttraining.md R1\nd DESIGN.md\ne myplanning.md"
    assert outside_citations(text) == [(1, "planning.md"), (3, "../shared/design/posttraining.md"), (4, "DESIGN.md")]


def test_no_citation_of_design_notes_outside_the_repository() -> None:
    offenders = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in SUFFIXES or path == Path(__file__).resolve() or not path.is_file():
                continue
            for number, name in outside_citations(path.read_text(encoding="utf-8")):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert offenders == [], (
        "cite the paper (arXiv id and section) or a page of docs/ (docs/planning.md) instead of a design note "
        "outside the repository:\n" + "\n".join(offenders)
    )
