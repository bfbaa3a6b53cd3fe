"""The reverse-training reproduction (arXiv 2403.13799) end to end at a micro scale through the command line, the
paper scale's launch commands, and the pretraining recipe on a tiny local corpus with tiny reversal-curse files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from system2.cli import app
from system2.config import load_config
from system2.lm.corpus import read_corpus
from system2.repro import reverse, reverse_claims
from system2.repro.reverse_arm import LlamaSize, subject
from system2.repro.reverse_pretrain import ReversePretrainConfig
from system2.runs import read_parquet
from system2.tasks.bios import BioWorldConfig
from system2.tasks.reversal import SymbolicWorldConfig, make_world

ROOT = Path(__file__).resolve().parents[1]
MICRO = reverse.ReverseScale(
    {"symbolic": reverse.WorldRun(SymbolicWorldConfig(n_pairs=12, vocab_size=20), LlamaSize(16, 1, 2), epochs=2,
                                  batch_size=8),
     "bios": reverse.WorldRun(BioWorldConfig(n_people=8, attributes=reverse.BIOS_ATTRIBUTES), LlamaSize(16, 1, 2),
                              epochs=1, batch_size=8)},
)  # fmt: skip


def test_arm_names_give_their_reversals_and_steps():
    assert reverse.arm_reversal("standard", 2, 1).kind == "none"
    rev = reverse.arm_reversal("segment k=L (compute)", 3, 1)
    assert (rev.kind, rev.k, rev.mode, rev.seed) == ("segment", 3, "compute", 1)
    assert reverse.arm_reversal("segment k=1 (data)", 3, 0).k == 1
    run = MICRO.worlds["symbolic"]
    steps = {a: reverse.arm_config(run, a, 0, Path("w"), Path("o"), 40).train.steps for a in reverse_claims.ARMS}
    assert steps["standard"] == steps["entity (compute)"] == 10 and steps["entity (data)"] == 20
    assert reverse.slug("segment k=L (data)") == "segment-kL-data"


def test_questions_name_their_subject():
    bios = make_world(BioWorldConfig(n_people=4, attributes=reverse.BIOS_ATTRIBUTES))
    names = {q.answer for q in bios.questions if q.direction == "reverse"}
    assert {subject(q, bios) for q in bios.questions} == names and len(names) == 2
    symbolic = make_world(SymbolicWorldConfig(n_pairs=4, vocab_size=20))
    fwd = [q for q in symbolic.questions if q.direction == "forward"]
    rev = [q for q in symbolic.questions if q.direction == "reverse"]
    assert [subject(q, symbolic) for q in fwd] == [subject(q, symbolic) for q in rev] == [q.answer for q in rev]


def test_repro_reverse_micro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(reverse.SCALES, "micro", MICRO)
    result = CliRunner().invoke(app, ["repro", "reverse", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {"report.md", "metrics.json", "accuracy.png"} <= {p.name for p in tmp_path.iterdir()}
    saved = json.loads((tmp_path / "metrics.json").read_text())
    claims = {c["name"]: c for c in saved["claims"]}
    assert set(claims) == {c.name for c in reverse_claims.CLAIMS}
    decided = [c for c in claims.values() if c["verdict"] != "not testable"]
    assert all(c["interval"] is not None and c["n_units"] > 0 for c in decided)
    assert all(c["reason"] for c in claims.values() if c["verdict"] == "not testable")
    results = saved["metrics"]["results"]
    assert set(results) == {"symbolic", "bios"} and set(results["bios"]) == set(reverse_claims.ARMS)
    assert saved["metrics"]["worlds"]["bios"]["entity_length"] == 3
    rows = {arm: read_parquet(tmp_path / "runs" / "symbolic" / f"{reverse.slug(arm)}-seed0" / "questions.parquet")
            for arm in ("token (data)", "word (data)")}  # fmt: skip
    assert rows["word (data)"].num_rows == 12  # 6 held-out pairs, forward and reverse
    # with a word-level tokenizer token reversal trains on word reversal's sequences: the same answers
    assert rows["token (data)"].column("generated").to_pylist() == rows["word (data)"].column("generated").to_pylist()
    report = (tmp_path / "report.md").read_text()
    assert "symbolic: greedy exact-match accuracy" in report and "bios: standard fails in reverse" in report
    # a rerun reuses every finished arm
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("questions.parquet")}
    result = CliRunner().invoke(app, ["repro", "reverse", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("questions.parquet")} == stamps


def test_repro_reverse_paper_prints_the_launch_commands(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["repro", "reverse", "--scale", "paper", "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "accelerate launch -m system2.cli repro reverse-pretrain --config configs/reverse/pretrain_paper.yaml" in (
        result.output
    )
    assert "reversal.kind=entity reversal.mode=compute" in result.output and "report:" not in result.output
    assert not (tmp_path / "p").exists()


def test_paper_recipe_loads():
    cfg = load_config(ReversePretrainConfig, ROOT / "configs" / "reverse" / "pretrain_paper.yaml")
    cfg.reversal.validate()
    cfg.model.validate()
    cfg.train.validate()
    assert cfg.corpus and cfg.tokenizer and cfg.eval_parent_child


CORPUS = [
    {"text": "Alice Mae Smith wrote the book Blue River .", "entities": [[0, 3], [6, 8]]},
    {"text": "the book Blue River was written by Alice Mae Smith .", "entities": [[2, 4], [7, 10]]},
    {"text": "Tom Ray is the son of Ann Ray .", "entities": [[0, 2], [6, 8]]},
    {"text": "Bob Stone lives in New York .", "entities": [[0, 2], [4, 6]]},
]


def _reversal_curse_files(root: Path) -> dict[str, str]:
    """A tiny corpus (JSONL with entity spans), a word tokenizer over its words, and reversal-curse files."""
    from system2.lm.tiny import build_word_tokenizer

    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in CORPUS))
    (root / "d2p.jsonl").write_text(json.dumps({"prompt": "the book Blue River was written by", "completion":
                                                " Alice Mae Smith"}) + "\n\n")  # fmt: skip
    (root / "p2d.jsonl").write_text(json.dumps({"prompt": "Alice Mae Smith wrote the book", "completion":
                                                " Blue River"}) + "\n")  # fmt: skip
    (root / "pairs.csv").write_text(
        "child,parent,parent_type,child_prediction,can_reverse\nTom Ray,Ann Ray,mother,,True\n"
    )
    words = sorted({w for r in CORPUS for w in r["text"].split()} | {"Who", "is", "'s", "mother", "child", "?",
                                                                     "Answer", ":"})  # fmt: skip
    build_word_tokenizer(words, model_max_length=64).save_pretrained(root / "tok")
    return {"corpus": str(corpus), "tokenizer": str(root / "tok")}


@pytest.mark.parametrize("kind", ["entity", "segment"])
def test_pretraining_recipe_end_to_end(tmp_path: Path, kind: str) -> None:
    """The paper-scale recipe on a tiny Llama: a local JSONL corpus with entity spans (or a plain-text one), a
    local tokenizer ([REV] added for random segments), then greedy answers to reversal-curse questions."""
    paths = _reversal_curse_files(tmp_path)
    if kind == "segment":  # the same documents as plain text, one per line
        paths["corpus"] = str(tmp_path / "corpus.txt")
        Path(paths["corpus"]).write_text("\n".join(r["text"] for r in CORPUS) + "\n\n")
    out = tmp_path / "run"
    args = [f"{k}={v}" for k, v in paths.items()] + [
        f"reversal.kind={kind}", "reversal.k=3", "reversal.mode=data", "model.d_model=16", "model.layers=1",
        "model.heads=2", "max_len=32", "train.steps=6", "train.batch_size=4", "train.warmup=1", "train.ckpt_every=3",
        "train.tensorboard=false", f"eval_forward=[{tmp_path / 'p2d.jsonl'}]",
        f"eval_reverse=[{tmp_path / 'd2p.jsonl'}]", f"eval_parent_child={tmp_path / 'pairs.csv'}",
        "eval_max_new_tokens=4",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["repro", "reverse-pretrain", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    got = json.loads((out / "result.json").read_text())
    assert got["questions"] == {"forward": 2, "reverse": 2}
    assert 0 <= got["forward"] <= 1 and 0 <= got["reverse"] <= 1
    rows = read_parquet(out / "questions.parquet").to_pylist()
    assert {r["kind"] for r in rows} == {"p2d", "d2p", "mother"}
    assert next(r for r in rows if r["kind"] == "d2p")["answer"] == "Alice Mae Smith"
    assert (out / "model" / "config.json").is_file()
    if kind == "segment":
        from system2.lm.io import load_lm

        _, tok = load_lm(out / "model")
        assert "[REV]" in tok.get_vocab()


def test_read_corpus_formats(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "a b"}) + "\n" + json.dumps({"text": " "}) + "\n")
    assert read_corpus(tmp_path / "c.jsonl") == (["a b"], None)
    pq.write_table(pa.Table.from_pylist(CORPUS), tmp_path / "c.parquet")
    texts, spans = read_corpus(tmp_path / "c.parquet", limit=2)
    assert texts == [r["text"] for r in CORPUS[:2]] and spans == [r["entities"] for r in CORPUS[:2]]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"body": "a b"}) + "\n")
    with pytest.raises(ValueError, match="row 0 has no string field 'text'"):
        read_corpus(tmp_path / "bad.jsonl")
