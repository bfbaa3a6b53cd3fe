"""The reversal-curse data worlds (arXiv 2403.13799): determinism, entity spans that cover exactly their
entities, the forward/reverse training split with no held-out reverse answer leaking into training, bioS
reverse questions with one right person, varied templates and sentence orders, worlds on disk, the
loaders of the public reversal-curse files, and exact-match scoring."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from system2.config import ConfigError
from system2.runs import FileProblem
from system2.tasks.bios import CLAUSES, BioWorldConfig, make_people
from system2.tasks.reversal import (
    FORWARD_RELATION,
    REVERSE_RELATION,
    EvalQuestion,
    ParentChildPair,
    PromptCompletion,
    SymbolicWorldConfig,
    TrainDocument,
    compose,
    make_world,
    parent_child_questions,
    read_parent_child,
    read_prompt_completions,
    read_world,
    score,
    symbolic_pairs,
    vocabulary,
    write_world,
)

SYMBOLIC = SymbolicWorldConfig(n_pairs=200, entity_words=3, vocab_size=30, seed=1)
BIOS = BioWorldConfig(n_people=300, attributes=("birth_date", "birth_city", "university"), seed=1)


def _parse_symbolic(text: str) -> tuple[str, str, str]:
    """(direction, a, b) of a symbolic fact, read from its template alone."""
    body = text.removesuffix(" .")
    if f" {FORWARD_RELATION} " in body:
        a, b = body.split(f" {FORWARD_RELATION} ")
        return "forward", a, b
    b, a = body.split(f" {REVERSE_RELATION} ")
    return "reverse", a, b


def _contains(text: str, phrase: str) -> bool:
    return f" {phrase} " in f" {text} "


# ----- shared conventions -----------------------------------------------------------------------------
def test_compose_marks_multiword_entities() -> None:
    doc = compose([("Alice Smith", True), ("lives in", False), ("New York", True), (".", False), ("Paris", True)])
    assert doc == TrainDocument("Alice Smith lives in New York . Paris", ((0, 2), (4, 6)))
    assert doc.entity_texts() == ["Alice Smith", "New York"]


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("a  b", ()),
        (" a b", ()),
        ("a b c", ((0, 2), (1, 3))),
        ("a b c", ((2, 3), (0, 1))),
        ("a b", ((1, 3),)),
        ("a b", ((1, 1),)),
    ],  # fmt: skip
)
def test_documents_reject_bad_spacing_and_spans(text: str, spans: tuple) -> None:
    with pytest.raises(ValueError):
        TrainDocument(text, spans)


def test_score() -> None:
    assert score("New York", "New York .")
    assert score("New York", "  New   York")
    assert score("1962", "1962 , and more")
    assert not score("New York", "New")
    assert not score("New York", "New Jersey")
    assert not score("New York", "new York")
    assert not score("New York", "York New")
    assert not score("", "anything")
    assert not score("a", "")


# ----- determinism --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [SYMBOLIC, BIOS], ids=["symbolic", "bios"])
def test_same_seed_same_world_other_seed_other_world(cfg) -> None:
    world = make_world(cfg)
    assert make_world(replace(cfg)) == world
    other = make_world(replace(cfg, seed=cfg.seed + 1))
    assert other.documents != world.documents
    assert other.questions != world.questions


# ----- entity spans ---------------------------------------------------------------------------------------
def _known_entities(cfg) -> set[str]:
    if isinstance(cfg, SymbolicWorldConfig):
        return {e for pair in symbolic_pairs(cfg) for e in pair}
    return {e for p in make_people(cfg) for e in (p.name, *p.values.values())}


@pytest.mark.parametrize(
    "cfg", [SYMBOLIC, BIOS, replace(BIOS, pronouns=False, attributes=("major", "company", "birth_city"))]
)
def test_every_entity_occurrence_is_exactly_one_span(cfg) -> None:
    known = _known_entities(cfg)
    lengths = {len(e.split()) for e in known}
    world = make_world(cfg)
    n_spans = 0
    for doc in world.documents:
        words = doc.text.split()
        assert all(text in known for text in doc.entity_texts()), doc
        spans = set(doc.entities)
        for n in lengths:
            for start in range(len(words) - n + 1):
                if " ".join(words[start : start + n]) in known:
                    assert (start, start + n) in spans, (doc, words[start : start + n])
        n_spans += len(spans)
    assert n_spans >= 2 * len(world.documents)  # every document states at least one fact about two entities


def test_symbolic_spans_are_the_template_entities() -> None:
    for doc in make_world(SYMBOLIC).documents:
        direction, a, b = _parse_symbolic(doc.text)
        assert doc.entity_texts() == ([a, b] if direction == "forward" else [b, a])
        assert all(len(e.split()) == SYMBOLIC.entity_words for e in (a, b))


# ----- the forward / reverse training split -------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.5, 0.25, 0.0])
def test_symbolic_forward_for_all_reverse_for_the_trained_fraction(fraction: float) -> None:
    cfg = replace(SYMBOLIC, reverse_train_fraction=fraction)
    pairs = symbolic_pairs(cfg)
    assert len({e for p in pairs for e in p}) == 2 * cfg.n_pairs
    world = make_world(cfg)
    facts = [_parse_symbolic(d.text) for d in world.documents]
    forward = [(a, b) for d, a, b in facts if d == "forward"]
    reverse = [(a, b) for d, a, b in facts if d == "reverse"]
    assert sorted(forward) == sorted(pairs)
    assert len(reverse) == round(fraction * cfg.n_pairs) == cfg.n_reverse_train
    asked = {
        (q.answer, q.prompt.removesuffix(f" {REVERSE_RELATION}")) for q in world.questions if q.direction == "reverse"
    }
    assert set(reverse) | asked == set(pairs) and not set(reverse) & asked
    assert {
        (q.prompt.removesuffix(f" {FORWARD_RELATION}"), q.answer) for q in world.questions if q.direction == "forward"
    } == asked
    reverse_docs = [d.text for d in world.documents if _parse_symbolic(d.text)[0] == "reverse"]
    for q in world.questions:
        if q.direction == "reverse":
            assert not any(_contains(text, q.answer) for text in reverse_docs), q


def test_bios_held_out_answers_never_in_reverse_training_documents() -> None:
    world, people = make_world(BIOS), make_people(BIOS)
    reverse_docs = [d.text for d in world.documents if d.text.startswith("Who ")]
    assert len(reverse_docs) == BIOS.n_qa_train == round(0.5 * BIOS.n_people)
    held = [q for q in world.questions if q.direction == "reverse"]
    assert {q.answer for q in held} == {p.name for p in people if not p.qa_in_train}
    for q in held:
        assert not any(_contains(text, q.answer) for text in reverse_docs), q
        assert any(d.text.startswith(q.answer) for d in world.documents)  # its biography is trained
    assert len([q for q in world.questions if q.direction == "forward"]) == len(held) * len(BIOS.attributes)


# ----- bioS -------------------------------------------------------------------------------------------------
def test_bios_reverse_questions_identify_exactly_one_person() -> None:
    # one attribute of 200 cities for 100 people: without redrawing, two people would share a city
    cfg = BioWorldConfig(n_people=100, attributes=("birth_city",), reverse_train_fraction=0.2, seed=3)
    for c in (cfg, BIOS):
        people = make_people(c)
        world = make_world(c)
        prompts = [(q.prompt, q.answer) for q in world.questions if q.direction == "reverse"]
        prompts += [(d.text.split(" ? Answer : ")[0], d.text.split(" ? Answer : ")[1]) for d in world.documents
                    if d.text.startswith("Who ")]  # fmt: skip
        assert len(prompts) == c.n_people
        for prompt, answer in prompts:
            fits = [p.name for p in people if all(_contains(prompt, f"{CLAUSES[a]} {v}") for a, v in p.values.items())]
            assert fits == [answer], prompt


def _biographies(cfg: BioWorldConfig) -> list[tuple[str, list[tuple[str, str]]]]:
    """(person, [(attribute, sentence frame)] in order) of every biography; the frame is the sentence
    without its subject and value."""
    people = {p.name: p for p in make_people(cfg)}
    out = []
    for doc in make_world(cfg).documents:
        if doc.text.startswith(("Who ", "What ")):
            continue
        name = " ".join(doc.text.split()[:3])
        person = people[name]
        sentences = [s.removesuffix(" .") for s in doc.text.split(" . ")]
        framed = []
        for k, sentence in enumerate(sentences):
            subject = name if k == 0 or not cfg.pronouns else {"female": "She", "male": "He"}[person.gender]
            assert sentence.startswith(subject + " "), (k, sentence)
            (attribute,) = [a for a, v in person.values.items() if sentence.endswith(" " + v)]
            framed.append((attribute, sentence[len(subject) : -len(person.values[attribute])]))
        assert sorted(a for a, _ in framed) == sorted(cfg.attributes)
        out.append((name, framed))
    return out


@pytest.mark.parametrize("pronouns", [True, False])
def test_bios_templates_vary_and_sentence_order_is_shuffled(pronouns: bool) -> None:
    cfg = replace(BIOS, attributes=("birth_date", "birth_city", "university", "major", "company"), pronouns=pronouns)
    bios = _biographies(cfg)
    assert len(bios) == cfg.n_people
    for attribute in cfg.attributes:
        frames = {f for _, framed in bios for a, f in framed if a == attribute}
        assert len(frames) >= 3, (attribute, frames)
    orders = {tuple(a for a, _ in framed) for _, framed in bios}
    assert len(orders) > 10


def test_vocabulary_covers_the_world() -> None:
    world = make_world(SYMBOLIC)
    vocab = set(vocabulary(world))
    assert {"has", "a", "feature", "is", "of", "."} <= vocab
    assert all(set(d.text.split()) <= vocab for d in world.documents)


# ----- configs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cfg", "words"),
    [
        (SymbolicWorldConfig(entity_words=1), "entity_words"),
        (SymbolicWorldConfig(n_pairs=1000, entity_words=2, vocab_size=20), "too few"),
        (SymbolicWorldConfig(reverse_train_fraction=1.0), "held-out"),
        (SymbolicWorldConfig(reverse_train_fraction=-0.1), "reverse_train_fraction"),
        (BioWorldConfig(attributes=("birth_city", "shoe_size")), "attributes"),
        (BioWorldConfig(attributes=()), "attributes"),
        (BioWorldConfig(n_people=100, attributes=("major",)), "combinations"),
        (BioWorldConfig(n_people=0), "n_people"),
    ],
)
def test_bad_configs_are_refused(cfg, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        cfg.validate()


# ----- worlds on disk -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [SYMBOLIC, BIOS], ids=["symbolic", "bios"])
def test_write_read_world_round_trip_and_same_bytes(cfg, tmp_path: Path) -> None:
    world = write_world(cfg, tmp_path / "a")
    write_world(cfg, tmp_path / "b")
    write_world(replace(cfg, seed=cfg.seed + 1), tmp_path / "c")
    for name in ("train.parquet", "eval.parquet", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "train.parquet").read_bytes() != (tmp_path / "c" / "train.parquet").read_bytes()
    assert read_world(tmp_path / "a") == world
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["documents"] == len(world.documents)


def test_an_interrupted_rewrite_is_not_a_complete_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import system2.tasks.reversal as reversal

    write_world(SYMBOLIC, tmp_path)

    def fail(path, writer) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(reversal, "atomic_write_with", fail)
    with pytest.raises(OSError, match="disk full"):
        write_world(replace(SYMBOLIC, seed=5), tmp_path)
    with pytest.raises(FileProblem, match=r"meta\.json is missing"):
        read_world(tmp_path)


def test_read_world_errors_name_the_file_row_and_field(tmp_path: Path) -> None:
    cfg = SymbolicWorldConfig(n_pairs=10, seed=2)
    with pytest.raises(FileNotFoundError, match="no such world directory"):
        read_world(tmp_path / "nothing")
    out = tmp_path / "w"
    write_world(cfg, out)
    (out / "meta.json").write_text(json.dumps({"world": "symbolic", "config": {"n_pairs": 0}}))
    with pytest.raises(FileProblem, match=r"meta\.json: field 'config'.*n_pairs"):
        read_world(out)
    write_world(cfg, out)
    table = pq.read_table(out / "train.parquet").to_pylist()
    table[3]["entities"] = [[0, 2], [1, 3]]
    pq.write_table(pa.Table.from_pylist(table), out / "train.parquet")
    with pytest.raises(FileProblem, match=r"train\.parquet: row 3, field 'entities'"):
        read_world(out)
    write_world(cfg, out)
    rows = pq.read_table(out / "eval.parquet").to_pylist()
    rows[1]["direction"] = "sideways"
    pq.write_table(pa.Table.from_pylist(rows), out / "eval.parquet")
    with pytest.raises(FileProblem, match=r"eval\.parquet: row 1, field 'direction'"):
        read_world(out)
    pq.write_table(
        pa.Table.from_pylist([{k: v for k, v in r.items() if k != "kind"} for r in rows]), out / "eval.parquet"
    )
    with pytest.raises(FileProblem, match=r"eval\.parquet lacks column\(s\) kind"):
        read_world(out)
    (out / "train.parquet").write_bytes(b"not parquet")
    with pytest.raises(FileProblem, match=r"train\.parquet is not a readable Parquet file"):
        read_world(out)
    (out / "meta.json").unlink()
    with pytest.raises(FileProblem, match=r"meta\.json is missing"):
        read_world(out)


# ----- loaders of the public reversal-curse files -------------------------------------------------------------
def test_prompt_completions_are_read(tmp_path: Path) -> None:
    path = tmp_path / "p2d.jsonl"
    rows = [{"prompt": "Daphne Barrington, known far and wide for being", "completion": " the acclaimed director."},
            {"prompt": "Known for being the composer of X,", "completion": " Uriah Hawthorne", "extra": 1}]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_prompt_completions(path) == [
        PromptCompletion("Daphne Barrington, known far and wide for being", " the acclaimed director."),
        PromptCompletion("Known for being the composer of X,", " Uriah Hawthorne"),
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"prompt": "a", "completion": "b"}', '{"prompt": "a", "completion": "b"', "{}"],
            r"bad\.jsonl: line 2 is not valid JSON",
        ),
        (
            ['{"prompt": "a", "completion": "b"}', "", '{"prompt": "a"}'],
            r"bad\.jsonl: line 3 lacks string field\(s\) completion",
        ),
        (['{"prompt": 3, "completion": "b"}'], r"line 1 lacks string field\(s\) prompt"),
        (['["prompt", "completion"]'], r"line 1 lacks string field\(s\) prompt, completion"),
    ],
)
def test_broken_prompt_completions_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FileProblem, match=message):
        read_prompt_completions(path)


HEADER = "child,parent,parent_type,child_prediction,can_reverse\n"


def test_parent_child_pairs_and_questions(tmp_path: Path) -> None:
    path = tmp_path / "celebrity_relations.csv"
    path.write_text(HEADER + "Tom Cruise,Mary Lee Pfeiffer,mother,,False\n"
                    '"Jaden  Smith",Will Smith,father,Jaden Smith,True\nA B,C D,mother,,\n')  # fmt: skip
    pairs = read_parent_child(path)
    assert pairs == [
        ParentChildPair("Tom Cruise", "Mary Lee Pfeiffer", "mother", False),
        ParentChildPair("Jaden Smith", "Will Smith", "father", True),
        ParentChildPair("A B", "C D", "mother", None),
    ]
    questions = parent_child_questions(pairs)
    assert questions[0] == EvalQuestion(
        "Who is Tom Cruise 's mother ? Answer :", "Mary Lee Pfeiffer", "forward", "mother"
    )
    assert EvalQuestion("Who is Will Smith 's child ? Answer :", "Jaden Smith", "reverse", "father") in questions
    assert [q.direction for q in questions].count("reverse") == 3
    assert [q.answer for q in parent_child_questions(pairs, reversible_only=True) if q.direction == "reverse"] == [
        "Jaden Smith"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("child,parent,child_prediction\nA B,C D,\n", r"rel\.csv: the header lacks column\(s\) parent_type"),
        (HEADER + "A B,C D,mother,,True\nE F,,father,,True\n", r"rel\.csv: row 2 \(line 3\), column 'parent' is empty"),
        (HEADER + "A B,C D,mother,,maybe\n", r"rel\.csv: row 1 \(line 2\), column 'can_reverse' is 'maybe'"),
        (HEADER + "A B,C D,mother,,True,extra\n", r"rel\.csv: row 1 \(line 2\) has more fields"),
        (HEADER + "A B,C D\n", r"rel\.csv: row 1 \(line 2\), column 'parent_type' is empty"),
    ],
)
def test_broken_parent_child_files_name_file_row_and_column(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "rel.csv"
    path.write_text(body)
    with pytest.raises(FileProblem, match=message):
        read_parent_child(path)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_prompt_completions(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_parent_child(tmp_path / "nope.csv")
