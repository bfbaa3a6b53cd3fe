"""Local text corpora: one document per non-empty line of a ``.txt`` file, or one row per document of a
``.jsonl`` / ``.parquet`` file with the text in a named field (and optionally entity spans for reverse
training); or, for code, one document per source file (``read_documents``: a directory, a glob pattern, or the
running Python's standard library). The whole corpus is read into memory as text (no streaming)."""

from __future__ import annotations

import glob
import hashlib
import json
import re
import sysconfig
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


STDLIB = "stdlib"  # the corpus name of the running Python's standard-library sources (``stdlib_sources``)
# directories of the standard library left out of ``stdlib``: tests (odd encodings, generated data) and installs
STDLIB_SKIP = ("site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__")


def stdlib_sources() -> list[Path]:
    """Every ``.py`` file of the running interpreter's standard library, sorted by path, test directories and
    installed packages left out. It ships with every Python, so a corpus of real code needs no download; its
    contents depend on the Python version (record it with ``corpus_digest``)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not set(p.relative_to(root).parts[:-1]) & set(STDLIB_SKIP))


def matched_files(spec: str) -> list[Path]:
    """The files a corpus names: ``stdlib``, one file, a directory (every file under it) or a glob pattern
    (``**`` recursive), sorted by path. Nothing matched is an error naming the pattern."""
    if spec == STDLIB:
        return stdlib_sources()
    p = Path(spec)
    if p.is_file():
        return [p]
    found = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else sorted(
        Path(q) for q in glob.glob(spec, recursive=True) if Path(q).is_file()
    )  # fmt: skip
    if not found:
        raise FileProblem(f"{spec}: no file matches (give a file, a directory, a glob pattern or {STDLIB!r})")
    return found


def join_rows(rows: list[str], doc_start: str) -> list[str]:
    """Consecutive rows joined into documents, a new one at every row matching the regular expression ``doc_start``
    (Wikitext-103 articles start at a ``" = Title = "`` row); rows keep their own newline or get one."""
    start = re.compile(doc_start)
    docs: list[list[str]] = []
    for row in rows:
        if start.search(row) or not docs:
            docs.append([])
        docs[-1].append(row if row.endswith("\n") else row + "\n")
    return ["".join(d) for d in docs]


def read_documents(spec: str, whole_files: bool, text_key: str = "text", doc_start: str = "") -> list[tuple[str, str]]:
    """(name, text) of every document of a corpus (``matched_files``), in order. ``whole_files``: each file is
    one document (source code, read as UTF-8 with undecodable bytes replaced); otherwise each file is read by
    ``read_corpus`` and each row is a document, or runs of rows are (``join_rows`` with ``doc_start``)."""
    out: list[tuple[str, str]] = []
    for path in matched_files(spec):
        if whole_files:
            text = path.read_bytes().decode("utf-8", errors="replace")
            if text.strip():
                out.append((str(path), text))
            continue
        rows, _ = read_corpus(path, text_key)
        docs = join_rows(rows, doc_start) if doc_start else rows
        out += [(f"{path}:{i}", d) for i, d in enumerate(docs)]
    if not out:
        raise FileProblem(f"{spec}: the corpus has no non-blank document")
    return out


def corpus_digest(documents: list[tuple[str, str]]) -> str:
    """SHA-256 of the documents' texts in order (names left out, so the same text under another directory has
    the same digest): what a report records to say which corpus it measured."""
    h = hashlib.sha256()
    for _, text in documents:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()
