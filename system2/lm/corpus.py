"""Local text corpora: one document per non-empty line of a ``.txt`` file, or one row per document of a
``.jsonl`` / ``.parquet`` file with the text in a named field (and optionally entity spans for reverse
training). The whole corpus is read into memory as text (no streaming)."""

from __future__ import annotations

import json
from pathlib import Path

from system2.runs import FileProblem, read_parquet

CORPUS_SUFFIXES = (".txt", ".jsonl", ".parquet")


def read_corpus(path: str | Path, text_key: str = "text", entities_key: str = "entities", limit: int = 0) -> tuple[
    list[str], list[list[list[int]]] | None
]:  # fmt: skip
    """(documents, their entity spans or None when the file has none), blank documents left out, at most ``limit``
    (0: all). A row without ``text_key`` fails naming the file and row."""
    p = Path(path)
    if p.suffix not in CORPUS_SUFFIXES:
        raise FileProblem(f"{p}: a corpus must end in {', '.join(CORPUS_SUFFIXES)}")
    if p.suffix == ".txt":
        return [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()][: limit or None], None
    if p.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FileProblem(f"{p}: line {n} is not valid JSON ({e.msg})") from None
    else:
        rows = read_parquet(p).to_pylist()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get(text_key), str):
            raise FileProblem(f"{p}: row {i} has no string field {text_key!r}")
    rows = [r for r in rows if r[text_key].strip()][: limit or None]
    has_spans = bool(rows) and all(r.get(entities_key) is not None for r in rows)
    spans = [[list(s) for s in r[entities_key]] for r in rows] if has_spans else None
    return [r[text_key] for r in rows], spans
