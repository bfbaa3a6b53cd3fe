"""The LIFT run (system2/selfimprove/lift.py, lift_eval.py) end to end on a tiny knowledge world: the preference set
ranked by the oracle, the training pairs of each method, the benchmark's rows, resume and refusal; the paper recipe
on tiny local files in the published formats; inputs checked before any compute."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from system2.config import ConfigError
from system2.runs import RunError, read_parquet
from system2.selfimprove.lift import LIFTConfig, run_lift
from system2.selfimprove.sft import TinyLMConfig, m0_dir
from system2.tasks import knowledge as kw
from system2.tasks import lift_data as ld
from system2.tasks.length import parse_length_instruction, word_count
from system2.train import TrainConfig


def _train(steps: int, batch: int = 8, lr: float = 3e-3) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup=1, ckpt_every=steps, log_every=steps,
                       tensorboard=False)  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("lift") / "data"
    ld.generate(ld.LIFTDataConfig(out=str(out), test_entities=6, sft_per_entity=12, pair_prompts_per_entity=2,
                                  world=kw.KnowledgeConfig(entities=20, min_facts=3, max_facts=6)))  # fmt: skip
    return str(out)


def _cfg(data: str, out: Path, **kw) -> LIFTConfig:
    base = dict(data=data, out=str(out), max_new_tokens=16, max_len=48, batch_size=64, pair_samples=3, min_gap=2,
                slack=2, tiny=TinyLMConfig(d_model=32, layers=1, heads=2, max_len=48), sft=_train(150, batch=16),
                train=_train(2, batch=2))  # fmt: skip
    return LIFTConfig(**{**base, **kw})


def test_run_end_to_end_resumes_and_refuses_other_settings(data: str, tmp_path: Path) -> None:
    rows = run_lift(_cfg(data, tmp_path / "lift"), progress=False)
    assert [r["model"] for r in rows] == ["M0", "lift"]
    run = tmp_path / "lift"
    kb = ld.read_kb(Path(data) / "kb.parquet")
    prefs = read_parquet(run / "preferences.parquet").to_pylist()
    assert prefs and rows[0]["preference_pairs"] == len(prefs)
    for p in prefs:  # the oracle's best sample against its worst
        assert p["chosen_score"] == kw.oracle_score(kb, p["prompt"], p["chosen"]) > p["rejected_score"]
    pairs = read_parquet(run / "train_pairs.parquet").to_pylist()
    instructed = [p for p in pairs if p["kind"] != "original"]
    assert rows[0]["training_pairs"] == len(pairs) and rows[0]["length_instructed_pairs"] == len(instructed)
    for p in instructed:
        limit, original = parse_length_instruction(p["prompt"])
        assert limit == p["max_len"] and kw.entity_of(original) and word_count(p["chosen"]) <= limit
    answers = read_parquet(run / "eval" / "answers.parquet").to_pylist()
    assert sorted({a["kind"] for a in answers}) == ["li", "plain", "x0.5", "x2"] and len(answers) == 6 * 4
    for a in answers:
        assert a["violates"] == (a["max_len"] > 0 and word_count(a["text"]) > a["max_len"])
        if a["kind"] == "li":
            assert a["outcome"] == (0.0 if a["violates"] else a["judged"])  # a violation loses
            assert (a["judged"] is None) == a["violates"]  # unjudged
    li = [a for a in answers if a["kind"] == "li"]
    assert rows[1]["li_violation"] == pytest.approx(sum(a["violates"] for a in li) / 6)
    again = run_lift(_cfg(data, tmp_path / "lift"), progress=False)  # every stage is found on disk
    assert json.dumps(again, sort_keys=True) == json.dumps(rows, sort_keys=True)
    with pytest.raises(RunError, match="other settings"):
        run_lift(_cfg(data, tmp_path / "lift", min_gap=3), progress=False)


def test_standard_dpo_trains_on_the_same_preference_set_from_the_same_m0(data: str, tmp_path: Path) -> None:
    lift = _cfg(data, tmp_path / "lift")
    run_lift(lift, progress=False)
    pairs = str(tmp_path / "prefs.jsonl")
    Path(pairs).write_text("".join(json.dumps(p) + "\n" for p in
                                   read_parquet(tmp_path / "lift" / "preferences.parquet").to_pylist()))  # fmt: skip
    rows = run_lift(_cfg(data, tmp_path / "dpo", method="dpo", m0=str(m0_dir(lift.out) / "model"), pairs=pairs),
                    progress=False)  # fmt: skip
    assert not (tmp_path / "dpo" / "sft").exists() and not (tmp_path / "dpo" / "pair_samples.parquet").exists()
    trained = read_parquet(tmp_path / "dpo" / "train_pairs.parquet").to_pylist()
    assert {p["kind"] for p in trained} == {"original"} and rows[0]["length_instructed_pairs"] == 0
    m0_lift = read_parquet(tmp_path / "lift" / "m0-eval" / "answers.parquet").to_pylist()
    m0_dpo = read_parquet(tmp_path / "dpo" / "m0-eval" / "answers.parquet").to_pylist()
    assert [a["text"] for a in m0_lift] == [a["text"] for a in m0_dpo]  # one M0, one benchmark


def test_inputs_are_checked_before_any_compute(data: str, tmp_path: Path) -> None:
    bad = tmp_path / "li.jsonl"
    bad.write_text(json.dumps({"instruction": "x", "original_instruction": "FACTS zzzz", "max_len": 3}) + "\n")
    with pytest.raises(ConfigError, match="li_eval: .*field 'output'"):
        run_lift(_cfg(data, tmp_path / "a", li_eval=str(bad)), progress=False)
    with pytest.raises(ConfigError, match="method must be one of lift, dpo"):
        run_lift(_cfg(data, tmp_path / "b", method="rdpo"), progress=False)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"instruction": "x", "original_instruction": "Write a poem.", "max_len": 3,
                                 "output": "A poem."}) + "\n")  # fmt: skip
    with pytest.raises(ConfigError, match="eval_oracle=false"):
        run_lift(_cfg(data, tmp_path / "c", li_eval=str(other)), progress=False)
    assert not any((tmp_path / d).exists() for d in "abc")


# --- the paper recipe on tiny local files --------------------------------------------------------------------------
CHAT = "{% for m in messages %}[USER] {{ m['content'] }} {% endfor %}[ASSISTANT]"


def test_paper_config_runs_end_to_end_on_tiny_local_files(tmp_path: Path) -> None:
    """configs/selfimprove/lift_paper.yaml with its model, judge and files replaced by tiny local ones: chat prompts,
    a preference set as JSON lines, the benchmark as one JSON array in the published format, a judge model."""
    from system2.config import load_config
    from system2.lm.io import save_lm
    from system2.lm.tiny import build_word_tokenizer, tiny_llama
    from system2.tasks.length import TEMPLATE, length_instruction

    asks = [f"write a {a} note about {b}" for a in ("short", "long", "kind") for b in ("cats", "rain", "tea", "maps")]
    long, short = "one two three four five six seven eight nine ten eleven twelve", "one two"
    pairs = [{"prompt": x, "chosen": long if i % 2 else short, "rejected": short if i % 2 else long}
             for i, x in enumerate(asks[:8])]  # fmt: skip
    bench = [{"instruction": length_instruction(x, 4), "original_instruction": x, "max_len": 4, "output": "one two "
              "three", "generator": "gpt4"} for x in asks[8:]]  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    (tmp_path / "alpaca_eval_li.json").write_text(json.dumps(bench, indent=2))
    words = " ".join([TEMPLATE.format(max_len=4, instruction=""), *asks, long, "A B [[A]] [[B]]"]).split()
    tok = build_word_tokenizer(list(dict.fromkeys(words)), model_max_length=512)
    tok.chat_template = CHAT
    base = save_lm(tiny_llama(tok, d_model=32, n_layers=1, n_heads=2, max_len=512), tok, tmp_path / "base")
    cfg = load_config(LIFTConfig, Path(__file__).resolve().parents[1] / "configs" / "selfimprove" / "lift_paper.yaml")
    assert cfg.method == "lift" and cfg.min_gap == cfg.slack == 10 and cfg.prompt_format == "chat"
    assert not cfg.eval_oracle and cfg.judge.backend == "http"
    cfg = replace(cfg, model=str(base), out=str(tmp_path / "run"), pairs=str(tmp_path / "pairs.jsonl"),
                  li_eval=str(tmp_path / "alpaca_eval_li.json"), dtype="float32", device="cpu", backend="hf",
                  max_new_tokens=6, max_len=512, train=_train(1, batch=2),
                  judge=replace(cfg.judge, backend="hf", model=str(base), max_new_tokens=4))  # fmt: skip
    rows = run_lift(cfg, progress=False)
    assert [r["model"] for r in rows] == ["M0", "lift"] and "li_oracle" not in rows[1]
    trained = read_parquet(tmp_path / "run" / "train_pairs.parquet").to_pylist()
    assert len(trained) == 8 * 3 and sum(p["flipped"] for p in trained) == 4  # 4 longer winners flip
    answers = read_parquet(tmp_path / "run" / "eval" / "answers.parquet").to_pylist()
    assert len(answers) == 4 * 4
    for a in answers:  # a violation loses unjudged; the judge decides the others
        if a["kind"] in ("li", "plain"):
            assert (a["judged"] is None) == a["violates"] and a["outcome"] in (0.0, 0.5, 1.0)


# --- the reproduction ----------------------------------------------------------------------------------------------
def test_repro_tiny_runs_both_arms_from_one_m0_and_one_preference_set_and_resumes(tmp_path: Path) -> None:
    from system2.config import parse_overrides
    from system2.repro import lift as repro

    args = ["data.world.entities=16", "data.test_entities=5", "data.sft_per_entity=8", "data.pair_prompts_per_entity=4",
            "run.sft.steps=60",
            "run.tiny.d_model=32", "run.tiny.layers=1"]  # fmt: skip
    settings = parse_overrides(args)
    metrics = repro.run("tiny", tmp_path / "r", settings=settings)
    runs = tmp_path / "r" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["dpo-seed0", "lift-seed0"]
    assert not (runs / "lift-seed0" / "sft").exists() and not (runs / "lift-seed0" / "pair_samples.parquet").exists()
    dpo = read_parquet(runs / "dpo-seed0" / "train_pairs.parquet").to_pylist()
    lift = read_parquet(runs / "lift-seed0" / "train_pairs.parquet").to_pylist()
    originals = [(p["prompt"], p["chosen"], p["rejected"]) for p in lift if p["kind"] == "original"]
    assert originals == [(p["prompt"], p["chosen"], p["rejected"]) for p in dpo]  # the same preference set
    report = (tmp_path / "r" / "report.md").read_text()
    assert "LIFT-DPO rarely violates" in report and (tmp_path / "r" / "limits.png").is_file()
    claims = json.loads((tmp_path / "r" / "metrics.json").read_text())["claims"]
    assert len(claims) == 4 and {c["verdict"] for c in claims} <= {"held", "contradicted", "inconclusive",
                                                                      "not testable"}  # fmt: skip
    again = repro.run("tiny", tmp_path / "r", settings=settings)  # every stage is found on disk
    assert json.dumps(again, sort_keys=True) == json.dumps(metrics, sort_keys=True)  # (NaN == NaN as text)
    with pytest.raises(RunError):
        repro.run("tiny", tmp_path / "r", settings=parse_overrides([*args, "run.min_gap=3"]))
    assert repro.run("paper", tmp_path / "p")["launch"][0].endswith(f"{repro.PAPER_RECIPE} method=lift")


def test_rank_samples_pairs_the_oracles_best_against_its_worst() -> None:
    """By hand: truncated and empty samples never enter a pair; equal scores give none."""
    from system2.selfimprove.lift import rank_samples

    kb = {"zoka": {"color": "red", "pet": "owl"}}

    def s(i: str, text: str, truncated: bool = False) -> dict:
        return {"id": i, "instruction": "FACTS zoka", "text": text, "truncated": truncated}

    samples = [s("0", "color red"), s("0", ""), s("0", "color red ; pet owl"), s("0", "pet cat"),
               s("0", "color red ; pet owl ; color red ; tool axe ; pet owl", truncated=True),
               s("1", "color red"), s("1", "pet owl"), s("1", " ")]  # fmt: skip
    pairs = rank_samples(samples, kb)
    assert [(p["id"], p["chosen"], p["rejected"], p["chosen_score"], p["rejected_score"]) for p in pairs] == [
        ("0", "color red ; pet owl", "pet cat", 2, -2)
    ]  # prompt 1: its finished samples tie


def test_a_tiny_m0_on_other_data_knows_every_word_of_its_files(data: str, tmp_path: Path) -> None:
    """Without the world's oracle (pairs and benchmark from files, a judge model), the tiny M0's tokenizer still
    covers the preference set, the benchmark and every limit a prompt can state: nothing becomes <unk>."""
    from system2.lm.io import load_lm, save_lm
    from system2.lm.tiny import build_word_tokenizer, tiny_llama
    from system2.tasks.length import length_instruction

    pairs = [{"prompt": f"FACTS {w}", "chosen": "zebra quartz ; ivy", "rejected": "nope"} for w in ("qq", "rr")] * 8
    bench = [{"instruction": length_instruction("Name a planet.", 30), "original_instruction": "Name a planet.",
              "max_len": 30, "output": "Jupiter, clearly."}]  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (tmp_path / "li.jsonl").write_text(json.dumps(bench[0]) + "\n")
    tok = build_word_tokenizer(["A", "B"], model_max_length=512)
    judge = save_lm(tiny_llama(tok, d_model=16, n_layers=1, n_heads=2, max_len=512), tok, tmp_path / "judge")
    cfg = _cfg("", tmp_path / "run", sft_data=str(Path(data) / "sft.parquet"), pairs=str(tmp_path / "pairs.jsonl"),
               li_eval=str(tmp_path / "li.jsonl"), eval_oracle=False, sft=_train(2), max_new_tokens=4,
               judge=replace(LIFTConfig().judge, backend="hf", model=str(judge), max_new_tokens=2))  # fmt: skip
    run_lift(cfg, progress=False)
    _, tok = load_lm(tmp_path / "run" / "sft" / "model")
    text = " ".join([*(f"{p['prompt']} {p['chosen']} {p['rejected']}" for p in pairs), bench[0]["instruction"],
                     bench[0]["output"], *map(str, range(1, 61 + 1))])  # fmt: skip
    assert tok.unk_token_id not in tok(text)["input_ids"]
