"""Data worlds for the reversal curse: training documents with entity spans and evaluation questions.

Reverse training (Golovneva et al., "Reverse Training to Nurse the Reversal Curse", arXiv 2403.13799)
also trains on reversed training strings in which chosen substrings, the entities, keep their forward
order. A training document is therefore its text plus its entity spans:

- words are separated by single spaces and punctuation is its own word (``Alice Mae Smith lives in New York .``),
  so word reversal and spans are well defined;
- an entity span is a half-open ``(start, end)`` range of word indices over ``text.split()``; spans are
  sorted and non-overlapping, one per occurrence of a multi-word entity.

An evaluation question is (prompt, answer, direction, kind), direction ``forward`` or ``reverse``; a model
is right when its greedy continuation starts with every word of the answer (:func:`score`).

Worlds: the symbolic reverse task (here), the bioS biography world (``system2.tasks.bios``, after
arXiv 2309.14316), and loaders for the public reversal-curse files (name-to-description prompt/completion
JSON lines, celebrity parent/child CSV). :func:`write_world` writes a world as ``train.parquet``,
``eval.parquet`` and ``meta.json``.

The symbolic task: ``n_pairs`` pairs (a, b) of distinct random entities, each ``entity_words`` words of a
synthetic vocabulary (``k3``, ``q17``). Every pair is trained forward, ``a has a feature b .``; a
``reverse_train_fraction`` of the pairs is also trained reversed, ``b is a feature of a .``, which teaches
the reverse format; the other pairs are evaluated forward (prompt ``a has a feature``, answer ``b``) and
reversed (prompt ``b is a feature of``, answer ``a``). Our choices, since the paper's exact setup is not
known to us: the two templates (the paper's running example), the vocabulary, the sizes, and forward
questions asked on the held-out pairs only, so both directions are scored on the same facts.
"""

from __future__ import annotations

import csv
import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from system2.config import ConfigError, from_dict, to_dict
from system2.reverse import check_spans
from system2.runs import FileProblem, atomic_write_json, atomic_write_with, read_json, read_parquet

if TYPE_CHECKING:
    from system2.tasks.bios import BioWorldConfig

DIRECTIONS = ("forward", "reverse")
FORWARD_RELATION = "has a feature"
REVERSE_RELATION = "is a feature of"
TRAIN_FILE, EVAL_FILE, META_FILE = "train.parquet", "eval.parquet", "meta.json"


@dataclass(frozen=True)
class TrainDocument:
    """A training string and the (start, end) word spans of its entities, checked on construction."""

    text: str
    entities: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        words = self.text.split()
        if " ".join(words) != self.text:
            raise ValueError(f"words must be separated by single spaces, got {self.text!r}")
        try:
            check_spans(self.entities, len(words))
        except ValueError as e:
            raise ValueError(f"{e}; in {self.text!r}") from None

    def entity_texts(self) -> list[str]:
        """The words each span covers, as strings (in order)."""
        words = self.text.split()
        return [" ".join(words[s:e]) for s, e in self.entities]


@dataclass(frozen=True)
class EvalQuestion:
    prompt: str
    answer: str
    direction: str  # forward | reverse
    kind: str  # what is asked: the relation or attribute (feature, birth_city, full_name, mother, ...)


@dataclass(frozen=True)
class ReversalWorld:
    config: SymbolicWorldConfig | BioWorldConfig
    documents: tuple[TrainDocument, ...]
    questions: tuple[EvalQuestion, ...]


def compose(parts: Sequence[tuple[str, bool]]) -> TrainDocument:
    """A document from (text, is_entity) parts: the words joined by single spaces, a span for every
    entity part of more than one word."""
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    for text, is_entity in parts:
        new = text.split()
        if is_entity and len(new) > 1:
            spans.append((len(words), len(words) + len(new)))
        words += new
    return TrainDocument(" ".join(words), tuple(spans))


def score(answer: str, generated: str) -> bool:
    """Exact match: the first ``len(answer.split())`` words generated are the answer's words."""
    want = answer.split()
    return bool(want) and generated.split()[: len(want)] == want


def vocabulary(world: ReversalWorld) -> list[str]:
    """Every word of the world's documents and questions, sorted (for a word-level tokenizer)."""
    words: set[str] = set()
    for d in world.documents:
        words.update(d.text.split())
    for q in world.questions:
        words.update(q.prompt.split())
        words.update(q.answer.split())
    return sorted(words)


# ----- the symbolic reverse task --------------------------------------------------------------------
@dataclass(frozen=True)
class SymbolicWorldConfig:
    n_pairs: int = 1000  # (a, b) entity pairs
    entity_words: int = 2  # words per entity (entities are multi-word)
    vocab_size: int = 100  # words of the synthetic vocabulary entities are drawn from
    reverse_train_fraction: float = 0.5  # pairs also trained reversed; the rest are evaluated
    seed: int = 0  # the same seed gives the same world

    @property
    def n_reverse_train(self) -> int:
        return round(self.reverse_train_fraction * self.n_pairs)

    def validate(self) -> None:
        if self.n_pairs < 1:
            raise ConfigError(f"symbolic n_pairs must be >= 1, got {self.n_pairs}")
        if self.entity_words < 2:
            raise ConfigError(f"symbolic entity_words must be >= 2 (entities are multi-word), got {self.entity_words}")
        if self.vocab_size < 2:
            raise ConfigError(f"symbolic vocab_size must be >= 2, got {self.vocab_size}")
        if self.vocab_size**self.entity_words < 4 * self.n_pairs:
            raise ConfigError(
                f"symbolic vocab_size ** entity_words = {self.vocab_size**self.entity_words} entities is too few for "
                f"{2 * self.n_pairs} distinct ones (need 4 * n_pairs): raise vocab_size or entity_words"
            )
        if not 0 <= self.reverse_train_fraction <= 1 or self.n_reverse_train >= self.n_pairs:
            raise ConfigError(
                f"symbolic reverse_train_fraction must be in [0, 1] and leave a held-out pair, got "
                f"{self.reverse_train_fraction} of {self.n_pairs} pairs"
            )


def symbolic_words(vocab_size: int) -> list[str]:
    """The synthetic vocabulary: ``a0 .. z0 a1 .. z1 ...`` (a letter and a number, never a template word)."""
    return [f"{string.ascii_lowercase[k % 26]}{k // 26}" for k in range(vocab_size)]


def symbolic_pairs(cfg: SymbolicWorldConfig) -> list[tuple[str, str]]:
    """The (a, b) pairs, all 2 * n_pairs entities distinct; the first ``cfg.n_reverse_train`` are the
    pairs trained in both directions."""
    cfg.validate()
    rng = random.Random(f"reversal-symbolic:{cfg.seed}")
    words = symbolic_words(cfg.vocab_size)
    entities: dict[str, None] = {}
    while len(entities) < 2 * cfg.n_pairs:
        entities.setdefault(" ".join(rng.choice(words) for _ in range(cfg.entity_words)), None)
    drawn = list(entities)
    return list(zip(drawn[0::2], drawn[1::2], strict=True))


def make_symbolic_world(cfg: SymbolicWorldConfig) -> ReversalWorld:
    """Forward facts for every pair, reverse facts for the trained fraction (documents in a seeded
    order), and forward and reverse questions on the held-out pairs."""
    pairs = symbolic_pairs(cfg)
    k = cfg.n_reverse_train
    docs = [compose([(a, True), (FORWARD_RELATION, False), (b, True), (".", False)]) for a, b in pairs]
    docs += [compose([(b, True), (REVERSE_RELATION, False), (a, True), (".", False)]) for a, b in pairs[:k]]
    random.Random(f"reversal-symbolic-order:{cfg.seed}").shuffle(docs)
    held = pairs[k:]
    questions = [EvalQuestion(f"{a} {FORWARD_RELATION}", b, "forward", "feature") for a, b in held]
    questions += [EvalQuestion(f"{b} {REVERSE_RELATION}", a, "reverse", "feature") for a, b in held]
    return ReversalWorld(cfg, tuple(docs), tuple(questions))


# ----- worlds on disk -------------------------------------------------------------------------------
def _world_kinds() -> dict[str, type]:
    from system2.tasks.bios import BioWorldConfig

    return {"symbolic": SymbolicWorldConfig, "bios": BioWorldConfig}


def make_world(cfg: SymbolicWorldConfig | BioWorldConfig) -> ReversalWorld:
    """The world a config describes (symbolic or bioS)."""
    from system2.tasks.bios import BioWorldConfig, make_bio_world

    if isinstance(cfg, BioWorldConfig):
        return make_bio_world(cfg)
    if isinstance(cfg, SymbolicWorldConfig):
        return make_symbolic_world(cfg)
    raise TypeError(f"not a reversal world config: {type(cfg).__name__}")


def write_world(cfg: SymbolicWorldConfig | BioWorldConfig, out_dir: str | Path) -> ReversalWorld:
    """Write ``train.parquet`` (text, entities), ``eval.parquet`` (prompt, answer, direction, kind) and
    ``meta.json`` (world kind and config), each atomically; ``meta.json`` goes last, so a directory
    with it holds a complete world. The same config gives the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    world = make_world(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # an interrupted rewrite must not pass as complete
    train = pa.Table.from_pylist(
        [{"text": d.text, "entities": [list(s) for s in d.entities]} for d in world.documents],
        schema=pa.schema([("text", pa.string()), ("entities", pa.list_(pa.list_(pa.int64())))]),
    )
    evals = pa.Table.from_pylist(
        [vars(q) for q in world.questions], schema=pa.schema([(f, pa.string()) for f in _QUESTION_FIELDS])
    )
    atomic_write_with(out / TRAIN_FILE, lambda tmp: pq.write_table(train, tmp))
    atomic_write_with(out / EVAL_FILE, lambda tmp: pq.write_table(evals, tmp))
    kind = next(k for k, c in _world_kinds().items() if isinstance(cfg, c))
    counts = {"documents": len(world.documents), "questions": len(world.questions)}
    atomic_write_json(out / META_FILE, {"world": kind, "config": to_dict(cfg), **counts})
    return world


_QUESTION_FIELDS = ("prompt", "answer", "direction", "kind")


def _rows(path: Path, fields: Sequence[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileProblem(f"{path} is missing: the world directory is incomplete; write it again")
    table = read_parquet(path)
    missing = [f for f in fields if f not in table.column_names]
    if missing:
        raise FileProblem(f"{path} lacks column(s) {', '.join(missing)}; it needs {', '.join(fields)}")
    return table.select(list(fields)).to_pylist()


def read_world(path: str | Path) -> ReversalWorld:
    """A world written by :func:`write_world`; a missing, damaged or malformed file raises ``FileProblem``
    naming the file, and the row and field where a value is wrong."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such world directory")
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise FileProblem(f"{meta_path} is missing: {root} is not a complete reversal world; write it again")
    meta = read_json(meta_path)
    kinds = _world_kinds()
    if not isinstance(meta, dict) or meta.get("world") not in kinds or not isinstance(meta.get("config"), dict):
        raise FileProblem(f"{meta_path} needs 'world' (one of {', '.join(kinds)}) and a 'config' mapping")
    try:
        cfg = from_dict(kinds[meta["world"]], meta["config"])
        cfg.validate()
    except ConfigError as e:
        raise FileProblem(f"{meta_path}: field 'config': {e}") from None
    docs = []
    for i, row in enumerate(_rows(root / TRAIN_FILE, ("text", "entities"))):
        try:
            if not isinstance(row["text"], str):
                raise ValueError("text is not a string")
            docs.append(TrainDocument(row["text"], tuple(tuple(s) for s in row["entities"] or ())))
        except (ValueError, TypeError) as e:
            raise FileProblem(f"{root / TRAIN_FILE}: row {i}, field 'entities' or 'text': {e}") from None
    questions = []
    for i, row in enumerate(_rows(root / EVAL_FILE, _QUESTION_FIELDS)):
        for f in _QUESTION_FIELDS:
            if not isinstance(row[f], str) or not row[f].strip():
                raise FileProblem(f"{root / EVAL_FILE}: row {i}, field {f!r} is empty or not a string")
        if row["direction"] not in DIRECTIONS:
            raise FileProblem(
                f"{root / EVAL_FILE}: row {i}, field 'direction' is {row['direction']!r}, not forward/reverse"
            )
        questions.append(EvalQuestion(**row))
    return ReversalWorld(cfg, tuple(docs), tuple(questions))


# ----- the public reversal-curse files (Berglund et al., arXiv 2309.12288) ---------------------------------
@dataclass(frozen=True)
class PromptCompletion:
    prompt: str
    completion: str


def read_prompt_completions(path: str | Path) -> list[PromptCompletion]:
    """The name-to-description (or description-to-name) JSON lines, ``{"prompt": ..., "completion": ...}``
    per line; blank lines are skipped, and the strings are kept as written (completions start with a
    space)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such prompt/completion file")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise FileProblem(f"{p} is not UTF-8 text: the file is damaged; restore it") from None
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise FileProblem(f"{p}: line {n} is not valid JSON ({e.msg})") from None
        missing = [f for f in ("prompt", "completion") if not isinstance(row, dict) or not isinstance(row.get(f), str)]
        if missing:
            raise FileProblem(
                f"{p}: line {n} lacks string field(s) {', '.join(missing)}; each line needs 'prompt' and 'completion'"
            )
        out.append(PromptCompletion(row["prompt"], row["completion"]))
    return out


@dataclass(frozen=True)
class ParentChildPair:
    child: str
    parent: str
    parent_type: str  # mother | father
    can_reverse: bool | None  # the file's can_reverse column (None when blank or absent)


PARENT_COLUMNS = ("child", "parent", "parent_type")


def read_parent_child(path: str | Path) -> list[ParentChildPair]:
    """The celebrity parent/child CSV (header ``child,parent,parent_type,child_prediction,can_reverse``);
    an empty required cell or a bad ``can_reverse`` fails naming the file, row (1 = first data row) and
    column."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such parent/child file")
    out = []
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        try:
            missing = [c for c in PARENT_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise FileProblem(
                    f"{p}: the header lacks column(s) {', '.join(missing)}; it needs {','.join(PARENT_COLUMNS)}"
                )
            for n, row in enumerate(reader, start=1):
                where = f"{p}: row {n} (line {reader.line_num})"
                if None in row:
                    raise FileProblem(f"{where} has more fields than the header")
                cells = {c: " ".join((row[c] or "").split()) for c in PARENT_COLUMNS}
                for c, v in cells.items():
                    if not v:
                        raise FileProblem(f"{where}, column {c!r} is empty")
                flag = (row.get("can_reverse") or "").strip().lower()
                if flag not in ("true", "false", ""):
                    raise FileProblem(f"{where}, column 'can_reverse' is {row['can_reverse']!r}, not True/False")
                out.append(ParentChildPair(**cells, can_reverse=None if not flag else flag == "true"))
        except (csv.Error, UnicodeDecodeError) as e:
            raise FileProblem(f"{p}: line {reader.line_num} cannot be read as CSV ({e})") from None
    return out


def parent_child_questions(pairs: Sequence[ParentChildPair], reversible_only: bool = False) -> list[EvalQuestion]:
    """Forward ``Who is CHILD 's mother ? Answer :`` -> parent and reverse ``Who is PARENT 's child ? Answer :``
    -> child for each pair (reverse only where ``can_reverse`` with ``reversible_only``). A parent with
    several children in the file has several right answers; each question scores one of them."""
    out = [
        EvalQuestion(f"Who is {c.child} 's {c.parent_type} ? Answer :", c.parent, "forward", c.parent_type)
        for c in pairs
    ]
    for c in pairs:
        if c.can_reverse or not reversible_only:
            out.append(EvalQuestion(f"Who is {c.parent} 's child ? Answer :", c.child, "reverse", c.parent_type))
    return out
