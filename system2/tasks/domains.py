"""Three synthetic text domains with distinct statistics, for Branch-Train-MiX in miniature (arXiv 2403.07816:
math, code and world knowledge there; these are our stand-ins, and their design is ours).

- ``arith``: modular arithmetic, ``mod 7 : 3 + 5 = 1 , 4 * 6 = 3 .``; each answer follows from its equation.
- ``code``: variable binding in nested scopes, ``let a = 3 ; { let b = a ; print b 3 ; } print a 3 .``;
  a printed value is the variable's binding in the innermost scope that has one (shadowing included).
- ``facts``: key-value recall over one fixed table, ``fact k12 is v31 . fact k7 is v2 .``; a value is
  predictable only from having memorised the table (the same table in training and validation documents).

Each domain's answers are learnable, so a model that specialises on a domain lowers its loss there; the digits
are shared between ``arith`` and ``code``, so routing by token identity alone is not enough. Documents are
words separated by single spaces (a word-level tokenizer gives one token per word). ``write_domains`` writes
``NAME/train.jsonl`` and ``NAME/valid.jsonl`` (a ``text`` field per line, the format ``system2 btx`` reads) and
``meta.json``; generation is deterministic given the seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from system2.config import ConfigError, to_dict
from system2.runs import atomic_write_json, atomic_write_text

DOMAINS = ("arith", "code", "facts")
META = "meta.json"
MODULI = (5, 7, 11)
VARIABLES = tuple("abcdefgh")
OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}


@dataclass(frozen=True)
class DomainsConfig:
    train_docs: int = 2000  # training documents per domain
    valid_docs: int = 100  # validation documents per domain (the same number each: the mean is the domain average)
    items: int = 6  # equations / statements / facts per document
    n_keys: int = 300  # facts: keys in the table
    n_values: int = 60  # facts: distinct values
    seed: int = 0

    def validate(self) -> None:
        if min(self.train_docs, self.valid_docs, self.items, self.n_keys, self.n_values) < 1:
            raise ConfigError(f"every count of the domains must be >= 1, got {self}")


def arith_doc(rng: random.Random, items: int) -> str:
    p = rng.choice(MODULI)
    eqs = []
    for _ in range(items):
        x, y, op = rng.randrange(p), rng.randrange(p), rng.choice(tuple(OPS))
        eqs.append(f"{x} {op} {y} = {OPS[op](x, y) % p}")
    return f"mod {p} : " + " , ".join(eqs) + " ."


def code_doc(rng: random.Random, items: int) -> str:
    scopes: list[dict[str, int]] = [{}]
    words: list[str] = []

    def lookup(v: str) -> int | None:
        return next((s[v] for s in reversed(scopes) if v in s), None)

    def bound() -> list[str]:
        return [v for v in VARIABLES if lookup(v) is not None]

    for _ in range(items):
        r = rng.random()
        if r < 0.15 and len(scopes) < 3:
            scopes.append({})
            words.append("{")
        elif r < 0.25 and len(scopes) > 1:
            scopes.pop()
            words.append("}")
        elif r < 0.55 or not bound():
            v = rng.choice(VARIABLES)
            src = rng.choice(bound()) if bound() and rng.random() < 0.4 else None
            value = lookup(src) if src else rng.randrange(10)
            scopes[-1][v] = value
            words += ["let", v, "=", src or str(value), ";"]
        else:
            v = rng.choice(bound())
            words += ["print", v, str(lookup(v)), ";"]
    words += ["}"] * (len(scopes) - 1)
    return " ".join(words) + " ."


def fact_table(cfg: DomainsConfig) -> dict[str, str]:
    rng = random.Random(f"facts-table-{cfg.seed}")
    return {f"k{i}": f"v{rng.randrange(cfg.n_values)}" for i in range(cfg.n_keys)}


def facts_doc(rng: random.Random, items: int, table: dict[str, str]) -> str:
    keys = rng.sample(sorted(table), min(items, len(table)))
    return " ".join(f"fact {k} is {table[k]} ." for k in keys)


def documents(cfg: DomainsConfig, domain: str, split: str) -> list[str]:
    """The documents of one domain and split (``train`` or ``valid``), deterministic given ``cfg.seed``."""
    if domain not in DOMAINS:
        raise ConfigError(f"unknown domain {domain!r}: use one of {', '.join(DOMAINS)}")
    n = cfg.train_docs if split == "train" else cfg.valid_docs
    rng = random.Random(f"{domain}-{split}-{cfg.seed}")
    table = fact_table(cfg)
    make = {"arith": lambda: arith_doc(rng, cfg.items), "code": lambda: code_doc(rng, cfg.items),
            "facts": lambda: facts_doc(rng, cfg.items, table)}[domain]  # fmt: skip
    return [make() for _ in range(n)]


def vocabulary(cfg: DomainsConfig) -> list[str]:
    """Every word the domains use, in a fixed order (for a word-level tokenizer)."""
    numbers = map(str, range(max(*MODULI, 10) + 1))  # residues, the moduli themselves, bound values 0-9
    words = ["mod", ":", ",", ".", "=", ";", "{", "}", "let", "print", "fact", "is", *OPS, *numbers]
    words += [*VARIABLES, *(f"k{i}" for i in range(cfg.n_keys)), *(f"v{i}" for i in range(cfg.n_values))]
    return list(dict.fromkeys(words))


def write_domains(cfg: DomainsConfig, out: str | Path) -> dict[str, dict[str, Path]]:
    """Write every domain's ``train.jsonl`` and ``valid.jsonl`` under ``out`` (``meta.json`` last, so a
    directory with it is complete); returns ``{domain: {split: path}}``. An existing complete directory made
    with the same settings is kept."""
    cfg.validate()
    root = Path(out)
    paths = {d: {s: root / d / f"{s}.jsonl" for s in ("train", "valid")} for d in DOMAINS}
    meta = {"config": to_dict(cfg), "domains": list(DOMAINS)}
    if (root / META).is_file() and json.loads((root / META).read_text()) == meta:
        return paths
    (root / META).unlink(missing_ok=True)
    for d, splits in paths.items():
        for split, path in splits.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, "".join(json.dumps({"text": t}) + "\n" for t in documents(cfg, d, split)))
    atomic_write_json(root / META, meta)
    return paths
