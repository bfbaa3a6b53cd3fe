"""The LIFT world (system2/tasks/knowledge.py, lift_data.py): the oracle's score by hand, the responder, and the
files: the benchmark's limit is the shortest reference's length and its baseline that answer, the seed rows state
only true facts and meet their limits, the benchmark's entities are not the preference prompts'."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from system2.runs import RunError, read_parquet
from system2.tasks import knowledge as kw
from system2.tasks import lift_data as ld
from system2.tasks.length import length_instruction, read_li_eval, word_count

KB = {"zoka": {"color": "red", "pet": "owl", "city": "lima"}}


@pytest.mark.parametrize(
    ("response", "score"),
    [
        ("", 0),
        ("color red", 1),
        ("color red ; pet owl ; city lima", 3),
        ("color red ; color red ; pet owl", 2),  # a repeated true fact counts once and costs nothing
        ("color red ; pet cat", -1),  # a wrong value: 1 - 2
        ("color red ; tool axe ; pet", -3),  # an attribute it lacks and a malformed piece: 1 - 2 x 2
        ("color red ; ; pet owl ;", 2),  # empty pieces are not facts
    ],
)
def test_oracle_scores_distinct_true_facts_minus_twice_the_wrong(response: str, score: int) -> None:
    assert kw.oracle_score(KB, "FACTS zoka", response) == score
    assert kw.oracle_score(KB, length_instruction("FACTS zoka", 4), response) == score  # the limit is not scored


def test_oracle_refuses_text_outside_the_world() -> None:
    with pytest.raises(ValueError, match="does not ask"):
        kw.oracle_score(KB, "FACTS miru", "color red")
    assert kw.entity_of("tell me about zoka") is None


def test_responder_writes_k_facts_true_or_false_on_demand() -> None:
    rng = random.Random(0)
    kb = kw.knowledge_base(kw.KnowledgeConfig(entities=30, min_facts=3, max_facts=6), rng)
    for entity, facts in kb.items():
        k = rng.randint(1, len(facts))
        assert kw.oracle_score(kb, kw.instruction(entity), kw.respond(kb, entity, k, rng)) == k
        assert kw.oracle_score(kb, kw.instruction(entity), kw.respond(kb, entity, k, rng, wrong=1.0)) == -2 * k
        assert word_count(kw.respond(kb, entity, k, rng)) == 2 * k


def test_dataset_files(tmp_path: Path) -> None:
    cfg = ld.LIFTDataConfig(out=str(tmp_path / "d"), test_entities=10, sft_per_entity=6, li_share=0.3,
                            world=kw.KnowledgeConfig(entities=40))  # fmt: skip
    splits = ld.generate(cfg)
    kb = ld.read_kb(tmp_path / "d" / "kb.parquet")
    assert len(kb) == 40 and sum(len(f) for f in kb.values()) == len(splits["kb"])
    bench = read_li_eval(tmp_path / "d" / "li_eval.jsonl")
    assert len(bench) == 10
    for r in bench:
        lengths = [word_count(x) for x in r["references"]]
        assert r["max_len"] == min(lengths) and word_count(r["output"]) == r["max_len"]
        assert r["instruction"] == length_instruction(r["original_instruction"], r["max_len"])
    tested = {r["entity"] for r in bench}
    asked = {kw.entity_of(r["instruction"]) for r in splits["pair_prompts"]}
    assert len(asked) == 30 and not tested & asked
    sft = read_parquet(tmp_path / "d" / "sft.parquet").to_pylist()
    assert len(sft) == 40 * 6 and {kw.entity_of(r["prompt"]) for r in sft} == set(kb)
    limited = [r for r in sft if r["max_len"]]
    assert 0.15 < len(limited) / len(sft) < 0.45
    for r in sft:
        assert kw.oracle_score(kb, r["prompt"], r["completion"]) == len(kw.pieces(r["completion"]))  # all true
        if r["max_len"]:  # as many facts as fit
            assert word_count(r["completion"]) == 2 * min(len(kb[kw.entity_of(r["prompt"])]), r["max_len"] // 2)
    before = (tmp_path / "d" / "li_eval.jsonl").read_bytes()
    ld.generate(cfg)  # the same settings: the same bytes
    assert (tmp_path / "d" / "li_eval.jsonl").read_bytes() == before
    with pytest.raises(RunError, match="other settings"):
        ld.generate(ld.LIFTDataConfig(out=cfg.out, seed=1, test_entities=10, world=cfg.world))
