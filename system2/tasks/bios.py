"""A biography world in the style of bioS (Allen-Zhu & Li, "Physics of Language Models: Part 3.1",
arXiv 2309.14316), for the reversal tasks of "Reverse Training to Nurse the Reversal Curse"
(arXiv 2403.13799); documents and questions follow the conventions of ``system2.tasks.reversal``.

Each person has a unique three-word full name and one value per selected attribute: birth date
(``July 3 , 1962``; days 1-28, years 1900-2099 as bioS), birth city (``Port Dalimo``), university
(``University of Karavi``), field of study (``Applied Physics``) and company (``Tromela Systems``). Every
name and value is several words, so each occurrence is an entity span. A biography has one sentence per
attribute, drawn from at least three templates each, in an order shuffled per person; its first sentence
names the person in full and later ones say he or she, as bioS does (``pronouns=False``: the full name
every time).

Questions: forward ``What is the birth city of NAME ? Answer :`` -> city, and reverse ``Who was born on
DATE and was born in CITY and ... ? Answer :`` -> full name, naming every selected attribute. Attribute
combinations are redrawn until no two people share one, so a reverse question has exactly one answer.
People are split like the symbolic task's pairs: a ``reverse_train_fraction`` of them also have their
forward and reverse QA as training documents (bioS's mixed training, which teaches both formats); the
others are evaluated in both directions.

Our choices, since the papers' exact pools, templates and sizes are not known to us: pronounceable
synthetic names and places made from fixed seeds (the same pools in every world), the templates and
question wording below, and the default sizes.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from system2.config import ConfigError
from system2.tasks.reversal import EvalQuestion, ReversalWorld, TrainDocument, compose

ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "company")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip
# biography sentences: {s} is the subject (full name or He/She), {p} his/her, {v} the value
TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": (
        "{s} was born on {v} .",
        "{s} came into this world on {v} .",
        "{s} celebrates {p} birthday on {v} .",
    ),
    "birth_city": ("{s} was born in {v} .", "{s} spent {p} early years in {v} .", "{s} grew up in {v} ."),
    "university": (
        "{s} studied at {v} .",
        "{s} received mentorship and guidance from faculty members at {v} .",
        "{s} graduated from {v} .",
    ),
    "major": (
        "{s} majored in {v} .",
        "{s} completed {p} education with a focus on {v} .",
        "{s} earned a degree in {v} .",
    ),
    "company": ("{s} worked at {v} .", "{s} had a professional role at {v} .", "{s} was employed by {v} ."),
}
LABELS = {"birth_date": "birth date", "birth_city": "birth city", "university": "university",
          "major": "field of study", "company": "employer"}  # fmt: skip
CLAUSES = {"birth_date": "was born on", "birth_city": "was born in", "university": "studied at",
           "major": "studied", "company": "worked for"}  # fmt: skip
PRONOUNS = {"female": ("She", "her"), "male": ("He", "his")}


@dataclass(frozen=True)
class BioWorldConfig:
    n_people: int = 1000  # people, each with one biography
    attributes: tuple[str, ...] = ATTRIBUTES  # attributes used, in this order in questions
    reverse_train_fraction: float = 0.5  # people whose forward and reverse QA are trained; the rest are evaluated
    pronouns: bool = True  # sentences after the first say he/she (bioS); false: the full name every time
    seed: int = 0  # the same seed gives the same world

    @property
    def n_qa_train(self) -> int:
        return round(self.reverse_train_fraction * self.n_people)

    def validate(self) -> None:
        if self.n_people < 1:
            raise ConfigError(f"bios n_people must be >= 1, got {self.n_people}")
        unknown = [a for a in self.attributes if a not in ATTRIBUTES]
        if unknown or not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise ConfigError(
                f"bios attributes must be distinct names from {', '.join(ATTRIBUTES)}, got {list(self.attributes)}"
            )
        combos = 1
        for a in self.attributes:
            combos *= len(values_of(a))
        if combos < 2 * self.n_people:
            raise ConfigError(
                f"bios attributes {list(self.attributes)} have {combos} combinations, too few for {self.n_people} "
                "people with distinct ones (need 2 * n_people): use more attributes or fewer people"
            )
        if not 0 <= self.reverse_train_fraction <= 1 or self.n_qa_train >= self.n_people:
            raise ConfigError(
                f"bios reverse_train_fraction must be in [0, 1] and leave a held-out person, got "
                f"{self.reverse_train_fraction} of {self.n_people} people"
            )


@dataclass(frozen=True)
class BioPerson:
    name: str  # first middle last
    gender: str  # female | male
    values: Mapping[str, str]  # attribute -> value, for the selected attributes
    qa_in_train: bool  # forward and reverse QA are training documents (else evaluated)


# ----- pools of names and values (fixed, the same in every world) ----------------------------------------
_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "ch", "dr", "gr",
           "kr", "sh", "st", "th", "tr")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "th")


@functools.cache
def word_pool(tag: str, size: int) -> tuple[str, ...]:
    """``size`` distinct pronounceable capitalised words (two syllables and an ending), fixed by ``tag``."""
    rng = random.Random(f"bios-pool:{tag}")
    out: dict[str, None] = {}
    while len(out) < size:
        syllables = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(2))
        out.setdefault((syllables + rng.choice(_CODAS)).capitalize(), None)
    return tuple(out)


def _distinct(tag: str, size: int, forms: tuple[str, ...]) -> tuple[str, ...]:
    rng, places = random.Random(f"bios-values:{tag}"), word_pool("place", 400)
    out: dict[str, None] = {}
    while len(out) < size:
        out.setdefault(rng.choice(forms).format(rng.choice(places)), None)
    return tuple(out)


@functools.cache
def values_of(attribute: str) -> tuple[str, ...]:
    """Every value an attribute takes, each several words (dates: days 1-28 of 1900-2099, as bioS)."""
    if attribute == "birth_date":
        return tuple(f"{m} {d} , {y}" for y in range(1900, 2100) for m in MONTHS for d in range(1, 29))
    if attribute == "birth_city":
        forms = ("New {}", "Port {}", "Fort {}", "Lake {}", "San {}", "{} City", "{} Springs", "{} Falls", "{} Heights")
        return _distinct(attribute, 200, forms)
    if attribute == "university":
        forms = ("University of {}", "{} State University", "{} Institute of Technology", "{} College")
        return _distinct(attribute, 300, forms)
    if attribute == "company":
        forms = ("{} Systems", "{} Labs", "{} Industries", "{} Group", "{} Holdings", "{} Dynamics", "{} Motors")
        return _distinct(attribute, 263, forms)
    if attribute == "major":
        fields = ("Mathematics", "Physics", "Chemistry", "Biology", "Linguistics", "Economics", "History", "Philosophy",
                  "Psychology", "Sociology", "Engineering", "Statistics")  # fmt: skip
        return tuple(f"{a} {f}" for a in ("Applied", "Theoretical", "Computational", "Experimental") for f in fields)
    raise ValueError(f"unknown bios attribute {attribute!r}: use one of {', '.join(ATTRIBUTES)}")


# ----- people, biographies and questions ------------------------------------------------------------------
def make_people(cfg: BioWorldConfig) -> list[BioPerson]:
    """``n_people`` people with distinct full names and distinct attribute combinations (redrawn on a
    collision); the first ``cfg.n_qa_train`` have their QA in training."""
    cfg.validate()
    rng = random.Random(f"bios:{cfg.seed}")
    first, middle, last = word_pool("first", 300), word_pool("middle", 300), word_pool("last", 600)
    names: set[str] = set()
    combos: set[tuple[str, ...]] = set()
    people = []
    while len(people) < cfg.n_people:
        name = f"{rng.choice(first)} {rng.choice(middle)} {rng.choice(last)}"
        gender = rng.choice(("female", "male"))
        values = {a: rng.choice(values_of(a)) for a in cfg.attributes}
        combo = tuple(values.values())
        if name in names or combo in combos:
            continue
        names.add(name)
        combos.add(combo)
        people.append(BioPerson(name, gender, values, qa_in_train=len(people) < cfg.n_qa_train))
    return people


def biography(person: BioPerson, rng: random.Random, pronouns: bool = True) -> TrainDocument:
    """One sentence per attribute, templates and order drawn from ``rng``; the first sentence names the
    person, later ones use the pronoun (or the full name when ``pronouns`` is false)."""
    subject, possessive = PRONOUNS[person.gender]
    attributes = list(person.values)
    rng.shuffle(attributes)
    parts: list[tuple[str, bool]] = []
    for k, a in enumerate(attributes):
        named = k == 0 or not pronouns
        fill = {"{s}": (person.name, True) if named else (subject, False), "{p}": (possessive, False),
                "{v}": (person.values[a], True)}  # fmt: skip
        for piece in re.split(r"(\{[spv]\})", rng.choice(TEMPLATES[a])):
            parts.append(fill.get(piece, (piece, False)))
    return compose(parts)


def forward_question(person: BioPerson, attribute: str) -> tuple[list[tuple[str, bool]], EvalQuestion]:
    """``What is the LABEL of NAME ? Answer :`` -> the value, with the prompt's (text, is_entity) parts."""
    parts = [(f"What is the {LABELS[attribute]} of", False), (person.name, True), ("? Answer :", False)]
    prompt = " ".join(t for t, _ in parts)
    return parts, EvalQuestion(prompt, person.values[attribute], "forward", attribute)


def reverse_question(person: BioPerson) -> tuple[list[tuple[str, bool]], EvalQuestion]:
    """``Who CLAUSE VALUE and CLAUSE VALUE ... ? Answer :`` -> the full name, with every attribute."""
    parts: list[tuple[str, bool]] = [("Who", False)]
    for k, (a, v) in enumerate(person.values.items()):
        parts += [(("and " if k else "") + CLAUSES[a], False), (v, True)]
    parts.append(("? Answer :", False))
    return parts, EvalQuestion(" ".join(t for t, _ in parts), person.name, "reverse", "full_name")


def make_bio_world(cfg: BioWorldConfig) -> ReversalWorld:
    """Biographies of everyone plus the QA of the training people (documents in a seeded order), and
    forward and reverse questions about the others."""
    people = make_people(cfg)
    rng = random.Random(f"bios-text:{cfg.seed}")
    docs = [biography(p, rng, cfg.pronouns) for p in people]
    questions: list[EvalQuestion] = []
    for p in people:
        asked = [forward_question(p, a) for a in cfg.attributes] + [reverse_question(p)]
        if p.qa_in_train:
            docs += [compose([*parts, (q.answer, True)]) for parts, q in asked]
        else:
            questions += [q for _, q in asked]
    rng.shuffle(docs)
    return ReversalWorld(cfg, tuple(docs), tuple(questions))
