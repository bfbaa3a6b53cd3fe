"""The LIFT world's files (arXiv 2406.17744; docs/lift.md), made by ``system2 lift-data``.

- ``kb.parquet``: the knowledge base (``entity``, ``attribute``, ``value``), which the oracle reads;
- ``sft.parquet``: M0's seed rows (``prompt``, ``completion``): every entity's instruction answered with a random
  number of its true facts, so M0 learns the facts and writes answers of many lengths (the paper's SFT on
  OpenAssistant). A share ``li_share`` of rows carries a length instruction, answered with as many facts as the
  limit allows (ours, default 0: as in the paper's SFT data on OpenAssistant, the template then appears only in
  LIFT-DPO's pairs and at evaluation);
- ``pair_prompts.parquet``: the instructions whose M0 samples, ranked by the oracle, make the preference set
  (entities that are not in the benchmark);
- ``li_eval.jsonl``: the AlpacaEval-LI-style benchmark in the published format (``instruction``,
  ``original_instruction``, ``max_len``, ``output``) over held-out entities: three reference answers per prompt
  (``knowledge.respond`` with 10%, 20% and 30% wrong facts and a uniform number of facts), the limit the shortest's
  length, the baseline that shortest answer (the paper's rule).

The same settings give the same files; a rerun with other settings is refused.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.config import ConfigError
from system2.tasks import knowledge as kw
from system2.tasks.length import length_instruction, word_count

REFERENCE_WRONG = (0.1, 0.2, 0.3)  # the three reference models' shares of wrong facts (ours)


@dataclass
class LIFTDataConfig:
    """Settings of a LIFT world directory (``system2 lift-data``)."""

    out: str = ""  # dataset directory: kb, sft, pair_prompts and li_eval files
    seed: int = 0  # the same seed gives the same files
    test_entities: int = 60  # entities of the length-instructed benchmark (the others give preference prompts)
    sft_per_entity: int = 20  # M0's seed rows per entity
    li_share: float = 0.0  # share of seed rows under a length limit, answered up to it (0: as the paper's SFT data)
    pair_prompts_per_entity: int = 2  # preference prompts per non-benchmark entity (each sampled and ranked)
    world: kw.KnowledgeConfig = field(default_factory=kw.KnowledgeConfig)  # the knowledge base's size

    def validate(self) -> None:
        if not self.out:
            raise ConfigError("set out=DIR (the dataset directory)")
        try:
            self.world.validate()
        except ValueError as e:
            raise ConfigError(f"world: {e}") from None
        if not 1 <= self.test_entities < self.world.entities:
            raise ConfigError(f"test_entities must be in [1, world.entities - 1] (preference prompts need the other "
                              f"entities), got {self.test_entities} of {self.world.entities}")  # fmt: skip
        if self.sft_per_entity < 1 or self.pair_prompts_per_entity < 1 or not 0 <= self.li_share <= 1:
            raise ConfigError("need sft_per_entity >= 1, pair_prompts_per_entity >= 1 and 0 <= li_share <= 1")


def seed_rows(kb: kw.KB, per_entity: int, li_share: float, rng: random.Random) -> list[dict[str, Any]]:
    """M0's seed rows: per entity ``per_entity`` answers listing 1..all of its facts; a share ``li_share`` of them
    under a length limit, answered with as many facts as fit (all when they all do)."""
    rows = []
    for entity, facts in kb.items():
        for _ in range(per_entity):
            x = kw.instruction(entity)
            if rng.random() < li_share:
                limit = rng.randint(2, 2 * len(facts) + 4)
                answer = kw.respond(kb, entity, min(len(facts), limit // 2), rng)  # as many facts as fit
                rows.append({"prompt": length_instruction(x, limit), "completion": answer, "instruction": x,
                             "max_len": limit})  # fmt: skip
            else:
                answer = kw.respond(kb, entity, rng.randint(1, len(facts)), rng)
                rows.append({"prompt": x, "completion": answer, "instruction": x, "max_len": 0})
    rng.shuffle(rows)
    return rows


def benchmark_rows(kb: kw.KB, entities: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """The length-instructed benchmark over ``entities``, in the published format plus ``id``, ``entity`` and the
    three ``references``."""
    rows = []
    for i, entity in enumerate(entities):
        n = len(kb[entity])
        refs = [kw.respond(kb, entity, rng.randint(1, n), rng, wrong=w) for w in REFERENCE_WRONG]
        baseline = min(refs, key=word_count)  # the first of the shortest
        x = kw.instruction(entity)
        rows.append({"id": f"li-{i}", "instruction": length_instruction(x, word_count(baseline)),
                     "original_instruction": x, "max_len": word_count(baseline), "output": baseline,
                     "entity": entity, "references": refs})  # fmt: skip
    return rows


def make_dataset(cfg: LIFTDataConfig) -> dict[str, list[dict[str, Any]]]:
    """The files' rows (module docstring), each drawn from its own stream of the seed."""
    kb = kw.knowledge_base(cfg.world, random.Random(f"lift-data/{cfg.seed}/kb"))
    entities = list(kb)
    test, rest = entities[: cfg.test_entities], entities[cfg.test_entities :]
    prompts = [{"instruction": kw.instruction(e)} for e in rest for _ in range(cfg.pair_prompts_per_entity)]
    random.Random(f"lift-data/{cfg.seed}/prompts").shuffle(prompts)
    return {
        "kb": [{"entity": e, "attribute": a, "value": v} for e, facts in kb.items() for a, v in facts.items()],
        "sft": seed_rows(kb, cfg.sft_per_entity, cfg.li_share, random.Random(f"lift-data/{cfg.seed}/sft")),
        "pair_prompts": prompts,
        "li_eval": benchmark_rows(kb, test, random.Random(f"lift-data/{cfg.seed}/li_eval")),
    }


def generate(cfg: LIFTDataConfig, restart: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Write the dataset ``cfg`` describes into ``cfg.out`` (recorded in its ``run.json``): a rerun with the same
    settings rewrites the same bytes, other settings are refused (``restart``: move it aside)."""
    from system2.runs import atomic_write_text, open_run, write_parquet

    cfg.validate()
    open_run(cfg.out, "lift-dataset", cfg, restart=restart, log=lambda _: None)
    splits = make_dataset(cfg)
    for name in ("kb", "sft", "pair_prompts"):
        write_parquet(Path(cfg.out) / f"{name}.parquet", splits[name])
    atomic_write_text(Path(cfg.out) / "li_eval.jsonl", "".join(_json_line(r) for r in splits["li_eval"]))
    return splits


def read_kb(path: str | Path) -> kw.KB:
    """The knowledge base of a ``kb.parquet`` file."""
    from system2.tasks.instructions import read_table

    kb: kw.KB = {}
    for i, r in enumerate(read_table(path)):
        if not all(isinstance(r.get(k), str) for k in ("entity", "attribute", "value")):
            raise ValueError(f"{path}: row {i} needs text fields entity, attribute and value")
        kb.setdefault(r["entity"], {})[r["attribute"]] = r["value"]
    return kb


def _json_line(row: dict[str, Any]) -> str:
    import json

    return json.dumps(row, sort_keys=True) + "\n"
