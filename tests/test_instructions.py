"""The instruction world (``system2.tasks.instructions``): the oracle on hand-written cases of every family, each
defect costing exactly its point, the open families' length bias, the seed judgments' deliberate errors, the sampler's
determinism and de-duplication, vocabulary coverage, the loaders and their errors, and the data command."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from system2.config import ConfigError
from system2.judges.prompts import judge_prompt, parse_score
from system2.tasks import instructions as ins
from system2.tasks import instructions_oracle as orc

SMALL = {"ift": 40, "eft": 300, "eft_eval": 30, "test": 60, "pairs": 40}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, list[dict]]:
    return ins.make_dataset(ins.InstructionDataConfig(out=str(tmp_path_factory.mktemp("w")), **SMALL))


def score(instruction: str, response: object) -> int:
    return orc.oracle_score(instruction, response)


def failed(instruction: str, response: str) -> set[str]:
    return {k for k, v in orc.oracle_checks(instruction, response).items() if not v}


def test_the_canonical_example_scores_five_and_each_defect_loses_its_point() -> None:
    x = "LIST 4 EVEN <20 ASC"
    assert score(x, "2 4 6 8") == 5 and score(x, "0 10 12 18") == 4  # 0 is not in the universe 1..49
    assert failed(x, "2 4 6") == {"count"} and failed(x, "2 4 6 8 10") == {"count"}
    assert failed(x, "2 4 7 8") == {"predicate"} and failed(x, "2 4 6 20") == {"predicate"}  # odd; not below 20
    assert failed(x, "8 6 4 2") == {"order"} and failed(x, "2 4 4 8") == {"order"}  # a repeat breaks the order
    assert failed(x, "2 , 4 , 6 , 8") == {"format"} and failed(x, "[ 2 4 6 8 ]") == {"format"}
    assert failed(x, "sure 2 4 6 8") == {"clean"} and failed(x, "2 4 6 8 hope this helps") == {"clean"}
    assert failed(x, "sure 8 , 6 , 3") == set(orc.CHECKS)
    for junk in ("", "hello there", "2,4,6,8", None, 42):
        assert score(x, junk) == 0  # nothing answered: never an error
    assert score("  LIST 4   EVEN <20 ASC ", "2 4 6 8") == 5  # whitespace does not matter
    with pytest.raises(ValueError, match="not an instruction of the instruction world"):
        score("LIST 4 PRIME <20 ASC", "2 3 5 7")


def test_every_family_has_its_rubric() -> None:
    cases = {
        "LIST 2 ODD >40 <50 DESC": {"49 41": set(), "41 49": {"order"}, "49 40": {"predicate"}, "49": {"count"}},
        "LIST 3 ANY >10 <20 ASC": {"11 15 19": set(), "10 15 19": {"predicate"}, "ok here 11 15 19": {"clean"}},
        "LETTERS 3 CONSONANT AFTER k DESC": {"w r m": set(), "w r o": {"predicate"}, "m r w": {"order"},
                                             "z y x w": {"count"}, "w r k": {"predicate"}},
        "LETTERS 2 VOWEL BEFORE p ASC": {"a o": set(), "a u": {"predicate"}, "[ a o ]": {"format"}},
        "NAME 3 FRUIT BEFORE m ASC": {"apple fig kiwi": set(), "apple cat kiwi": {"predicate"},
                                      "kiwi fig apple": {"order"}, "apple fig kiwi lemon": {"count"},
                                      "apple fig kiwi done": {"clean"}, "apple , fig , kiwi": {"format"}},
        "NAME 2 ANIMAL DESC": {"yak ant": set(), "ant yak": {"order"}, "yak a ant": {"clean"}},
        "LIST SOME ODD <20 ASC": {"1 3 5 7": set(), "1 3 5 7 9 11 13": set(), "1 3 5": {"count"},
                                  "1 3 5 8": {"predicate"}},
        "LETTERS SOME CONSONANT AFTER b ASC": {"c d f g": set(), "c d f": {"count"}, "c d e f": {"predicate"}},
        "NAME SOME COLOR AFTER a DESC": {"white tan red pink": set(), "tan white red pink": {"order"}},
    }  # fmt: skip
    for instruction, responses in cases.items():
        for response, faults in responses.items():
            assert failed(instruction, response) == faults, (instruction, response)
    covered = {orc.parse_instruction(x).family.name for x in cases}
    assert covered == set(orc.FAMILIES)


def test_the_responder_fails_exactly_the_defects_asked_for() -> None:
    rng, table = random.Random(0), list(orc.instruction_table())
    seen = Counter()
    for _ in range(3000):
        x = rng.choice(table)
        defects = set(rng.sample(orc.CHECKS, rng.randint(0, 5)))
        response = orc.respond(x, defects, rng)
        assert failed(x, response) == defects, (x, defects, response)
        assert orc.item_count(x, response) <= orc.MAX_ITEMS
        seen[orc.parse_instruction(x).family.name] += 1
    assert set(seen) == set(orc.FAMILIES)
    with pytest.raises(ValueError, match="unknown defects"):
        orc.respond("LIST 4 EVEN <20 ASC", {"length"})


def test_open_families_score_longer_correct_answers_higher_and_closed_ones_do_not() -> None:
    x = "LIST SOME EVEN <30 ASC"
    by_length = [score(x, " ".join(str(2 * i) for i in range(1, n + 1))) for n in range(1, 10)]
    assert by_length == [4] * (orc.OPEN_LONG - 1) + [5] * (10 - orc.OPEN_LONG)
    closed = "LIST 4 EVEN <30 ASC"
    assert [score(closed, " ".join(str(2 * i) for i in range(1, n + 1))) for n in (3, 4, 5, 6)] == [4, 5, 4, 4]
    lengths = {orc.item_count(x, orc.respond(x, (), random.Random(s))) for s in range(50)}
    assert min(lengths) == orc.OPEN_LONG and max(lengths) > orc.OPEN_LONG  # oracle-best answers of several lengths


def test_seed_judgments_add_a_point_for_long_open_responses_only() -> None:
    cfg = ins.InstructionConfig(flip=0.0, bias_items=6)
    rng = random.Random(1)
    opened = "LIST SOME ODD <40 ASC"
    assert ins.seed_judgment(opened, "1 3 5 7 9 11 13 15 hope this helps", rng, cfg)[1] == 5  # oracle 4, +1
    assert ins.seed_judgment(opened, "1 3 5 7 9 hope this helps", rng, cfg)[1] == 4  # 5 items: no bonus
    assert ins.seed_judgment(opened, "1 3 5 7 9 11", rng, cfg)[1] == 5  # already 5: capped
    closed = "LIST 6 ODD <40 ASC"
    assert ins.seed_judgment(closed, "1 3 5 7 9 11 hope this helps", rng, cfg)[1] == 4
    unbiased = ins.InstructionConfig(flip=0.0, bias_items=0)
    assert ins.seed_judgment(opened, "1 3 5 7 9 11 13 15 hope this helps", rng, unbiased)[1] == 4


def test_the_seed_judgments_are_wrong_on_the_asked_share_of_bits(data) -> None:
    def flipped_share(rows: list[dict]) -> float:
        wrong = total = 0
        for r in rows:
            stated, truth = orc.read_checks(r["completion"]), orc.oracle_checks(r["instruction"], r["response"])
            wrong += sum(stated[k] != truth[k] for k in orc.CHECKS)
            total += len(orc.CHECKS)
        return wrong / total

    assert 0.12 <= flipped_share(data["eft"]) <= 0.18  # flip = 0.15 over 1500 bits
    assert sum(r["score"] != r["oracle"] for r in data["eft"]) > 60  # the judge starts imperfect
    assert flipped_share(data["eft_eval"]) == 0 and all(r["score"] == r["oracle"] for r in data["eft_eval"])
    noisier = ins.eft_rows(sorted(orc.instruction_table())[:400], 0, ins.InstructionConfig(flip=0.3))
    assert 0.26 <= flipped_share(noisier) <= 0.34
    assert Counter(r["oracle"] for r in data["eft"]).keys() == set(range(6))  # every quality level


def test_rows_follow_the_judge_contract(data) -> None:
    for r in data["eft"] + data["eft_eval"]:
        assert r["prompt"] == judge_prompt(r["instruction"], r["response"], "compact")
        assert parse_score(r["completion"]) == r["score"] and r["completion"].endswith(f"Score: {r['score']}")
        assert r["completion"].startswith(orc.justification(orc.read_checks(r["completion"])))
    for r in data["ift"]:
        assert r["prompt"] == f"ACT: {r['instruction']} ->" and score(r["instruction"], r["completion"]) == 5
    for r in data["pairs"]:
        assert r["score_a"] == score(r["instruction"], r["response_a"]) != r["score_b"]
        assert r["score_b"] == score(r["instruction"], r["response_b"])
    assert 0.3 < sum(r["score_a"] > r["score_b"] for r in data["pairs"]) / len(data["pairs"]) < 0.7
    paper = ins.eft_rows(["LIST 4 EVEN <20 ASC"], 0, template="paper")[0]
    assert paper["prompt"].startswith("Review the user's question") and "User: LIST 4 EVEN <20 ASC" in paper["prompt"]
    assert ins.act_prompt("LIST 4 EVEN <20 ASC", "paper") == "LIST 4 EVEN <20 ASC"


def test_same_seed_same_world_other_seed_other_prompts(data, tmp_path: Path) -> None:
    cfg = ins.InstructionDataConfig(out=str(tmp_path / "again"), **SMALL)
    assert ins.make_dataset(cfg) == data
    assert ins.sample_prompts(50, 3) == ins.sample_prompts(50, 3) != ins.sample_prompts(50, 4)
    other = ins.make_dataset(ins.InstructionDataConfig(out=str(tmp_path / "other"), seed=1, **SMALL))
    assert other["eft"] != data["eft"]


def test_sampled_prompts_are_new_and_splits_are_disjoint(data) -> None:
    seen = {r["instruction"] for split in ("ift", "eft", "eft_eval", "test_prompts", "pairs") for r in data[split]}
    sizes = sum(len(data[s]) for s in ("ift", "eft", "eft_eval", "test_prompts", "pairs"))
    assert len(seen) == sizes  # pairwise disjoint, no repeats within a split
    fresh = ins.sample_prompts(2000, 7, exclude=seen)
    assert len(set(fresh)) == 2000 and not set(fresh) & seen
    families = Counter(orc.parse_instruction(x).family.name for x in fresh)
    assert set(families) == set(orc.FAMILIES)
    open_share = sum(n for f, n in families.items() if orc.FAMILIES[f].open) / 2000
    assert 0.25 < open_share < 0.35  # open_share = 0.3
    only = ins.InstructionConfig(families=("words-open",))
    pool = [x for x, s in orc.instruction_table().items() if s.family.name == "words-open"]
    assert sorted(ins.sample_prompts(len(pool), 0, cfg=only)) == sorted(pool)
    with pytest.raises(ValueError, match="only 0 instructions"):
        ins.sample_prompts(1, 0, exclude=pool, cfg=only)


def test_the_vocabulary_encodes_every_row_and_compact_rows_are_short(data) -> None:
    from system2.lm.tiny import build_word_tokenizer

    tok = build_word_tokenizer(ins.vocabulary(), model_max_length=128)
    texts = [r["prompt"] + " " + r.get("completion", "") for s in ("ift", "eft", "eft_eval", "test_prompts")
             for r in data[s]]  # fmt: skip
    texts += [r[k] for r in data["pairs"] for k in ("instruction", "response_a", "response_b")]
    rng = random.Random(2)
    for x in rng.sample(list(orc.instruction_table()), 500):  # every family, every defect
        response = orc.respond(x, rng.sample(orc.CHECKS, rng.randint(0, 5)), rng)
        judgment = orc.justification(orc.oracle_checks(x, response)) + " Score: 5"
        texts += [ins.act_prompt(x) + " " + response, judge_prompt(x, response, "compact") + " " + judgment]
    for text in texts:
        assert tok.unk_token_id not in tok(text)["input_ids"], text
        assert len(text.split()) <= 96
    assert tok.unk_token_id in tok("LIST 4 PRIME <20 ASC")["input_ids"]  # an unknown word would show


def test_loaders_read_open_assistant_style_files(tmp_path: Path) -> None:
    from system2.runs import write_parquet

    rows = [{"prompt": "Write a haiku.", "completion": "Leaves fall."},
            {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}]  # fmt: skip
    (tmp_path / "ift.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    expected = [{"prompt": "Write a haiku.", "completion": "Leaves fall."}, {"prompt": "Hi?", "completion": "Hello."}]
    assert ins.read_ift(tmp_path / "ift.jsonl") == expected
    write_parquet(tmp_path / "ift.parquet", expected)
    assert ins.read_ift(tmp_path / "ift.parquet") == expected
    eft = [{"prompt": "Review ... ", "completion": "Relevant and complete. Score: 4"}]
    (tmp_path / "eft.jsonl").write_text(json.dumps(eft[0]) + "\n")
    assert ins.read_eft(tmp_path / "eft.jsonl") == eft
    pool = [{"prompt": "a"}, {"instruction": "b"}, {"prompt": "a"}, {"messages": [{"role": "user", "content": "c"}]}]
    (tmp_path / "pool.jsonl").write_text("\n".join(json.dumps(r) for r in pool))
    assert ins.read_prompts(tmp_path / "pool.jsonl") == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("reader", "row", "message"),
    [
        (ins.read_ift, {"prompt": "p"}, r"bad.jsonl: row 1: field 'completion' is missing.*needs 'prompt' and"),
        (ins.read_ift, {"prompt": "p", "completion": ""}, r"row 1: field 'completion' is missing or not a non-empty"),
        (ins.read_ift, {"messages": [{"role": "assistant", "content": "x"}]},
         r"row 1: field 'messages' must be a user turn then an assistant turn, got roles \['assistant'\]"),
        (ins.read_eft, {"prompt": "p", "completion": "fine"}, r"row 1: field 'completion' has no 'Score: s'"),
        (ins.read_prompts, {"text": "p"}, r"row 1: field 'prompt' is missing.*needs 'prompt' or 'instruction'"),
        (ins.read_prompts, {"messages": [{"role": "system", "content": "x"}]}, r"row 1: field 'messages' must start"),
    ],
)  # fmt: skip
def test_loader_errors_name_the_file_the_row_and_the_field(tmp_path: Path, reader, row, message) -> None:
    good = {"prompt": "p", "completion": "ok Score: 3", "instruction": "p"}
    (tmp_path / "bad.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=message):
        reader(tmp_path / "bad.jsonl")


def test_loaders_refuse_missing_and_damaged_files(tmp_path: Path) -> None:
    from system2.runs import FileProblem

    with pytest.raises(FileNotFoundError, match="nothere.jsonl: no such file"):
        ins.read_ift(tmp_path / "nothere.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"prompt": "p", "completion"\n')
    with pytest.raises(ValueError, match="broken.jsonl: line 1 is not JSON"):
        ins.read_ift(tmp_path / "broken.jsonl")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(FileProblem, match="broken.parquet is not a readable Parquet file"):
        ins.read_prompts(tmp_path / "broken.parquet")


def test_settings_are_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="world: families must be"):
        ins.InstructionDataConfig(out=str(tmp_path), world=ins.InstructionConfig(families=("poems",))).validate()
    with pytest.raises(ConfigError, match="template must be compact or paper"):
        ins.InstructionDataConfig(out=str(tmp_path), template="chat").validate()
    with pytest.raises(ConfigError, match="set out=DIR"):
        ins.InstructionDataConfig().validate()


def test_the_cli_writes_the_files_and_a_rerun_refuses_other_settings(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from system2.cli import app
    from system2.runs import read_parquet

    runner, out = CliRunner(), tmp_path / "world"
    args = ["instructions", "--out", str(out), "ift=20", "eft=30", "eft_eval=10", "test=15", "pairs=12"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    counts = {s: read_parquet(out / f"{s}.parquet").num_rows for s in ins.SPLITS}
    assert counts == {"test_prompts": 15, "ift": 20, "eft": 30, "eft_eval": 10, "pairs": 12}
    before = (out / "eft.parquet").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "eft.parquet").read_bytes() == before
    assert ins.read_eft(out / "eft.parquet")[0]["completion"].startswith("format ")
    other = runner.invoke(app, [*args[:-1], "pairs=13"])
    assert other.exit_code == 2 and "pairs: 12 -> 13" in other.output
