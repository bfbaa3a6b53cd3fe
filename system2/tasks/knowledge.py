"""The knowledge world of the LIFT reproduction (arXiv 2406.17744; docs/lift.md): a world where longer answers score
higher, so that preference training lengthens answers, as DPO on human preferences does.

A knowledge base gives each entity (a made-up name) a few facts, each an attribute and its value. The instruction
``FACTS zoka`` asks for the entity's facts; a response lists facts separated by ``;``::

    FACTS zoka  ->  color red ; pet owl ; city lima

The hidden oracle (evaluation and the world's preference labels only) scores a response as the correct distinct
facts minus twice the wrong ones: a piece that is not a true fact of the entity is wrong, a repeated true fact
counts once. Listing more true facts scores higher, which is the length bias the paper's preference data carry.
Every fact is two words, so a response of k facts has 2k words (``length.word_count``).

The responder writes k of an entity's facts in a random order, each replaced by a wrong one with a given
probability (a wrong value, or an attribute the entity lacks); it plays the three reference models whose shortest
answer is the length-instructed benchmark's limit and baseline. Everything here is ours: names, attributes, sizes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from system2.tasks.length import parse_length_instruction

VERB = "FACTS"
SEPARATOR = " ; "
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "black", "white", "pink", "gray", "gold"),
    "pet": ("cat", "dog", "fox", "owl", "bat", "yak", "cow", "pig"),
    "fruit": ("apple", "fig", "kiwi", "lime", "mango", "pear", "plum", "date"),
    "tool": ("axe", "saw", "drill", "rake", "spade", "knife", "awl", "file"),
    "city": ("paris", "oslo", "rome", "lima", "cairo", "tokyo", "delhi", "quito"),
    "sport": ("golf", "polo", "judo", "chess", "rugby", "tennis", "hockey", "squash"),
    "drink": ("tea", "coffee", "milk", "juice", "water", "soda", "cocoa", "cider"),
    "job": ("baker", "nurse", "pilot", "judge", "farmer", "tailor", "miner", "clerk"),
    "metal": ("iron", "tin", "zinc", "copper", "silver", "nickel", "lead", "cobalt"),
    "tree": ("oak", "elm", "ash", "pine", "fir", "yew", "birch", "maple"),
    "gem": ("ruby", "opal", "jade", "pearl", "topaz", "onyx", "agate", "amber"),
    "bird": ("crow", "swan", "wren", "hawk", "dove", "lark", "robin", "finch"),
    "car": ("jeep", "van", "taxi", "truck", "bus", "coupe", "sedan", "wagon"),
    "food": ("rice", "bread", "soup", "stew", "pasta", "salad", "curry", "tofu"),
    "music": ("jazz", "folk", "rock", "blues", "opera", "salsa", "tango", "disco"),
    "flower": ("rose", "lily", "iris", "tulip", "daisy", "poppy", "lotus", "aster"),
}
_ONSETS = "bdfgklmnprstvz"
_VOWELS = "aeiou"

KB = dict[str, dict[str, str]]  # entity -> attribute -> value


@dataclass(frozen=True)
class KnowledgeConfig:
    """The knowledge base's size."""

    entities: int = 200  # entities in the knowledge base
    min_facts: int = 4  # fewest facts an entity has
    max_facts: int = 10  # most facts an entity has (at most the number of attributes)

    def validate(self) -> None:
        if self.entities < 2:
            raise ValueError(f"entities must be >= 2, got {self.entities}")
        if not 1 <= self.min_facts <= self.max_facts <= len(ATTRIBUTES):
            raise ValueError(f"need 1 <= min_facts <= max_facts <= {len(ATTRIBUTES)}, got {self.min_facts} and "
                             f"{self.max_facts}")  # fmt: skip


def names(n: int, rng: random.Random) -> list[str]:
    """``n`` different two-syllable names (``zoka``), drawn with ``rng``."""
    pool = [a + b + c + d for a in _ONSETS for b in _VOWELS for c in _ONSETS for d in _VOWELS]
    if n > len(pool):
        raise ValueError(f"at most {len(pool)} entities, got {n}")
    return rng.sample(pool, n)


def knowledge_base(cfg: KnowledgeConfig, rng: random.Random) -> KB:
    """A knowledge base: each entity gets between ``min_facts`` and ``max_facts`` attributes, each a value."""
    kb: KB = {}
    for name in names(cfg.entities, rng):
        attrs = rng.sample(list(ATTRIBUTES), rng.randint(cfg.min_facts, cfg.max_facts))
        kb[name] = {a: rng.choice(ATTRIBUTES[a]) for a in attrs}
    return kb


def instruction(entity: str) -> str:
    """The instruction asking for ``entity``'s facts."""
    return f"{VERB} {entity}"


def entity_of(text: str) -> str | None:
    """The entity a (possibly length-instructed) instruction asks about; None for any other text."""
    parsed = parse_length_instruction(text)
    words = (parsed[1] if parsed else text).split()
    return words[1] if len(words) == 2 and words[0] == VERB else None


def pieces(response: str) -> list[tuple[str, ...]]:
    """The facts a response states (each piece's words), empty pieces left out."""
    return [tuple(p.split()) for p in response.split(";") if p.strip()]


def oracle_score(kb: KB, text: str, response: str) -> int:
    """Correct distinct facts minus twice the wrong ones, of ``response`` to the instruction ``text``."""
    entity = entity_of(text)
    if entity is None or entity not in kb:
        raise ValueError(f"{text[:60]!r} does not ask for the facts of an entity of this knowledge base")
    facts, right, wrong = kb[entity], set(), 0
    for piece in pieces(response):
        if len(piece) == 2 and facts.get(piece[0]) == piece[1]:
            right.add(piece)
        else:
            wrong += 1
    return len(right) - 2 * wrong


def wrong_fact(facts: dict[str, str], rng: random.Random) -> tuple[str, str]:
    """A fact that is false of an entity with ``facts``: a wrong value of one of its attributes, or an attribute
    it lacks."""
    attr = rng.choice(list(ATTRIBUTES))
    values = [v for v in ATTRIBUTES[attr] if v != facts.get(attr)]
    return attr, rng.choice(values)


def respond(kb: KB, entity: str, k: int, rng: random.Random, wrong: float = 0.0) -> str:
    """``k`` of the entity's facts (at most all) in a random order, each replaced by a false one with probability
    ``wrong``."""
    facts = kb[entity]
    chosen = rng.sample(list(facts), min(k, len(facts)))
    out = [wrong_fact(facts, rng) if rng.random() < wrong else (a, facts[a]) for a in chosen]
    return SEPARATOR.join(f"{a} {v}" for a, v in out)


def vocabulary(entities: Iterable[str]) -> list[str]:
    """Every word the world writes (for a word-level tokenizer), the entities' names included."""
    words = [VERB, ";", *ATTRIBUTES, *(v for vs in ATTRIBUTES.values() for v in vs), *entities]
    return list(dict.fromkeys(words))
