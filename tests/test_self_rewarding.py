"""Self-Rewarding (arXiv 2401.10020): pair selection on hand-made candidates, the inputs' checks, and the loop end to
end on a tiny model (with its own judgments, and with a stand-in judge that always yields pairs), resumed and
refused; the paper config run on tiny local files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from system2.config import ConfigError, load_config, parse_overrides
from system2.judges.config import JudgeConfig
from system2.judges.prompts import parse_score
from system2.lm.io import save_lm
from system2.runs import RunError, read_parquet
from system2.selfimprove import self_rewarding as sr
from system2.selfimprove.self_rewarding import SelfRewardingConfig, run_self_rewarding, select_pair
from system2.selfimprove.sft import TinyLMConfig
from system2.tasks import instructions
from system2.tasks.instructions import InstructionDataConfig, act_prompt, instruction_of
from system2.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CHAT = "{% for m in messages %}[USER] {{ m['content'] }} {% endfor %}[ASSISTANT]"


def _train(steps: int, batch: int = 8) -> TrainConfig:
    return TrainConfig(
        steps=steps, batch_size=batch, lr=3e-3, warmup=1, ckpt_every=steps, log_every=1, tensorboard=False
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("instructions") / "data"
    instructions.generate(InstructionDataConfig(out=str(out), ift=16, eft=16, eft_eval=0, test=6, pairs=5))
    return str(out)


def _cfg(data: str, out: Path, **kw) -> SelfRewardingConfig:
    base = dict(data=data, out=str(out), iterations=1, prompts_per_iteration=5, responses_per_prompt=3,
                max_new_tokens=12, max_len=64, batch_size=32, tiny=TinyLMConfig(d_model=32, layers=1, heads=2,
                max_len=64), judge=JudgeConfig(template="compact", max_new_tokens=14, judgments_per_response=2),
                sft=_train(3), train=_train(2, batch=2))  # fmt: skip
    return SelfRewardingConfig(**{**base, **kw})


def _cand(text: str, score: float | None, truncated: bool = False) -> dict:
    return {"text": text, "score": score, "truncated": truncated, "prompt": "p", "instruction": "i"}


# --- pairs ---------------------------------------------------------------------------------------------------------
def test_pair_is_highest_vs_lowest_and_ties_are_dropped() -> None:
    c = [_cand("a", 3.0), _cand("b", 4.5), _cand("c", 1.0), _cand("d", 4.5), _cand("e", 1.0)]
    best, worst = select_pair(c)
    assert (best["text"], worst["text"]) == ("b", "c")  # the first sampled among equals
    assert select_pair([_cand("a", 2.0), _cand("b", 2.0), _cand("c", 2.0)]) is None  # all tie: dropped
    assert select_pair([_cand("a", 5.0), _cand("b", None)]) is None  # one scored candidate is no pair
    assert select_pair([_cand("same", 5.0), _cand("x", None), _cand("same", 1.0)]) is None  # same text both sides
    # an unscored candidate is neither side; a truncated one is never chosen but may be rejected
    best, worst = select_pair([_cand("long", 5.0, True), _cand("ok", 4.0), _cand("bad", 2.0, True), _cand("u", None)])
    assert (best["text"], worst["text"]) == ("ok", "bad")
    assert select_pair([_cand("a", 5.0, True), _cand("b", 1.0, True)]) is None


def test_instruction_of_inverts_the_compact_prompt() -> None:
    x = "LIST 4 EVEN <20 ASC"
    assert instruction_of(act_prompt(x, "compact")) == x
    assert instruction_of(act_prompt(x, "paper")) == x
    assert instruction_of("Write a poem about ACT: cats") == "Write a poem about ACT: cats"


# --- inputs --------------------------------------------------------------------------------------------------------
def test_inputs_are_checked_before_any_compute(data: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="judge.template"):
        _cfg(data, tmp_path / "a", judge=JudgeConfig(template="paper")).seed_data()
    with pytest.raises(ConfigError, match="judge.chat"):
        _cfg(data, tmp_path / "b", judge=JudgeConfig(template="compact", chat=True)).validate()
    with pytest.raises(ConfigError, match="^m1: "):
        _cfg(data, tmp_path / "b", m1=str(tmp_path / "no-such-model")).validate()
    with pytest.raises(ConfigError, match=r"^sft\.steps must be >= 1"):  # named by its own key, not train.
        _cfg(data, tmp_path / "b", sft=TrainConfig(steps=0)).validate()
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"prompt": f"ACT: LIST {n} ANY <50 ASC ->"}) + "\n" for n in (2, 3)))
    with pytest.raises(ConfigError, match="prompts_per_iteration"):
        _cfg(data, tmp_path / "c", prompts=str(pool)).seed_data()
    other = tmp_path / "test.jsonl"
    other.write_text(json.dumps({"prompt": "Tell me a joke"}) + "\n")
    with pytest.raises(ConfigError, match="eval_oracle=false"):
        _cfg(data, tmp_path / "d", test_prompts=str(other)).seed_data()
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("ift", "eft", "test_prompts", "pairs"):
        (bare / f"{name}.parquet").write_bytes((Path(data) / f"{name}.parquet").read_bytes())
    with pytest.raises(ConfigError, match="prompts=FILE"):
        _cfg(str(bare), tmp_path / "e").seed_data()
    with pytest.raises(ConfigError, match="data=DIR"):
        SelfRewardingConfig(out=str(tmp_path / "f")).validate()


def test_pool_prompts_are_taken_in_order_without_seed_or_test_prompts(data: str, tmp_path: Path) -> None:
    test = [r["prompt"] for r in read_parquet(Path(data) / "test_prompts.parquet").to_pylist()]
    fresh = [act_prompt(x) for x in instructions.sample_prompts(12, 99, exclude={instruction_of(p) for p in test})]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in [test[0], *fresh]))
    cfg = _cfg(data, tmp_path / "run", prompts=str(pool), iterations=2)
    seed = cfg.seed_data()
    assert seed.pool == fresh  # the test prompt is left out
    assert [r["prompt"] for r in sr.new_prompts(cfg, seed, 2, frozenset())] == fresh[5:10]


def test_sampler_prompts_are_new_and_depend_on_the_iteration(data: str, tmp_path: Path) -> None:
    cfg = _cfg(data, tmp_path / "run")
    seed = cfg.seed_data()
    one, two = sr.new_prompts(cfg, seed, 1, seed.excluded), sr.new_prompts(cfg, seed, 2, seed.excluded)
    assert not {r["instruction"] for r in one} & seed.excluded
    assert [r["prompt"] for r in one] != [r["prompt"] for r in two]
    assert one == sr.new_prompts(cfg, seed, 1, seed.excluded)  # seeded
    assert all(r["prompt"] == act_prompt(r["instruction"]) for r in one)


# --- the loop ------------------------------------------------------------------------------------------------------
def _length_judge(judge, seed, part, offset):  # noqa: ANN001, ANN202
    """A stand-in judge whose score varies with the text (characters mod 6), so that pairs exist whatever the tiny
    model writes (it also
    marks every candidate as ended: a barely trained tiny model rarely samples its eos, and a cut one is never
    chosen)."""
    return [{**r, "truncated": False, "score": float(len(r["text"]) % 6), "scores": [], "unparsed": 0,
             "judgments": []} for r in part]  # fmt: skip


def test_loop_end_to_end_resumes_and_refuses_other_settings(
    data: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sr, "_judge", _length_judge)
    out = tmp_path / "run"
    rows = run_self_rewarding(_cfg(data, out), progress=False)
    assert [r["model"] for r in rows] == ["M1", "M2"]
    pairs = read_parquet(out / "iter-1" / "pairs.parquet").to_pylist()
    assert pairs and {"prompt", "chosen", "rejected"} <= set(pairs[0])  # TRL's preference format
    assert all(p["chosen_score"] > p["rejected_score"] for p in pairs)
    assert len(read_parquet(out / "iter-1" / "reference.parquet")) == len(pairs)
    assert (out / "iter-1" / "train" / "model" / "config.json").is_file()
    for key in ("win_rate_vs_m1", "lc_win_rate_vs_m1", "judge_pairwise_accuracy", "mean_oracle_score"):
        assert key in rows[1]
    assert rows[1]["pairs"] == len(pairs)
    answers = read_parquet(out / "iter-1" / "eval" / "answers.parquet").to_pylist()
    assert len(answers) == 6 and all(0 <= a["oracle"] <= 5 for a in answers)
    stamp = (out / "iter-1" / "train" / "model" / "model.safetensors").stat().st_mtime_ns
    again = run_self_rewarding(_cfg(data, out), progress=False)  # a rerun resumes: the same rows, nothing redone
    assert json.dumps(again, sort_keys=True) == json.dumps(rows, sort_keys=True)  # (NaN == NaN as text)
    assert (out / "iter-1" / "train" / "model" / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(RunError):
        run_self_rewarding(_cfg(data, out, beta=0.2), progress=False)


def test_the_policy_judges_its_own_candidates(data: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rows = run_self_rewarding(_cfg(data, out), progress=False)
    judged = read_parquet(out / "iter-1" / "judgments.parquet").to_pylist()
    assert len(judged) == 5 * 3  # prompts x candidates
    for r in judged:
        assert len(r["judgments"]) == 2
        parsed = [parse_score(j) for j in r["judgments"]]
        assert r["unparsed"] == parsed.count(None)
        valid = [s for s in parsed if s is not None]
        assert r["score"] == (sum(valid) / len(valid) if valid else None)
    assert rows[-1]["unparsed_judgments"] == sum(r["unparsed"] for r in judged)


# --- the paper recipe on tiny local files --------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", ["self_rewarding", "meta_rewarding"])
def test_paper_config_runs_end_to_end_on_tiny_local_files(recipe: str, tmp_path: Path) -> None:
    """configs/selfimprove/{self,meta}_rewarding_paper.yaml with their model and files replaced by tiny local ones:
    chat prompts, the paper's judge (and meta-judge) prompt, TRL messages rows, a prompt pool, no oracle."""
    from system2.selfimprove.meta_rewarding import MetaRewardingConfig, run_meta_rewarding

    files = tmp_path / "files"
    files.mkdir()
    xs = instructions.sample_prompts(40, 5)
    ift = [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]}
           for r in instructions.ift_rows(xs[:8], 0, "paper")]  # fmt: skip
    eft = instructions.eft_rows(xs[8:14], 0, template="paper")
    pairs = instructions.response_pairs(3, 1, exclude=xs)
    for name, rows in {"ift": ift, "eft": [{"prompt": r["prompt"], "completion": r["completion"]} for r in eft],
                       "pool": [{"prompt": x} for x in xs[14:34]], "test": [{"prompt": x} for x in xs[34:40]],
                       "pairs": pairs}.items():  # fmt: skip
        (files / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    words = instructions.vocabulary() + [w for r in eft for w in r["prompt"].split()]
    tok = instructions_tokenizer(words)
    from system2.lm.tiny import tiny_llama

    tok.chat_template = CHAT
    model_dir = save_lm(tiny_llama(tok, d_model=32, n_layers=1, n_heads=2, max_len=512), tok, tmp_path / "base")
    cls, run = {"self_rewarding": (SelfRewardingConfig, run_self_rewarding),
                "meta_rewarding": (MetaRewardingConfig, run_meta_rewarding)}[recipe]  # fmt: skip
    cfg = load_config(cls, ROOT / "configs" / "selfimprove" / f"{recipe}_paper.yaml")
    assert cfg.prompt_format == "chat" and cfg.judge.template == "paper" and not cfg.eval_oracle
    small = {"model": str(model_dir), "out": str(tmp_path / "run"), "ift": str(files / "ift.jsonl"),
             "eft": str(files / "eft.jsonl"), "prompts": str(files / "pool.jsonl"),
             "test_prompts": str(files / "test.jsonl"), "judge_pairs": str(files / "pairs.jsonl"), "dtype": "float32",
             "device": "cpu", "backend": "hf", "prompts_per_iteration": 4, "max_new_tokens": 6, "max_len": 512,
             "judge": {"max_new_tokens": 6, "judgments_per_response": 2}, "sft": _train(2),
             "train": _train(1), "iterations": 2}  # fmt: skip
    if recipe == "meta_rewarding":
        small["meta_max_new_tokens"] = 6
    cfg = replace(cfg, **{k: v for k, v in small.items() if k != "judge"})
    cfg = replace(cfg, judge=replace(cfg.judge, **small["judge"]))
    rows = run(cfg, progress=False)
    assert [r["model"] for r in rows][0] == "M1" and "judge_pairwise_accuracy" in rows[0]
    assert "win_rate_vs_m1" not in rows[0]
    assert len(read_parquet(tmp_path / "run" / "iter-1" / "judgments.parquet")) == 4 * cfg.responses_per_prompt
    assert len(rows) == 3 or rows[-1].get("stopped")  # M1..M3, or an iteration whose scores all tied
    if recipe == "meta_rewarding":  # the meta-judging stages ran (on whatever judgments parsed)
        assert (tmp_path / "run" / "iter-1" / "meta.parquet").is_file() and "meta_battles" in rows[1]


def instructions_tokenizer(words: list[str]):  # noqa: ANN201
    from system2.lm.tiny import build_word_tokenizer

    return build_word_tokenizer(list(dict.fromkeys(words)), model_max_length=512)


# --- the reproduction ----------------------------------------------------------------------------------------------
def test_repro_tiny_writes_its_report_and_resumes(tmp_path: Path) -> None:
    from system2.repro import self_rewarding as repro

    args = ["data.ift=40", "data.eft=60", "data.test=20", "data.pairs=20", "run.prompts_per_iteration=20",
            "run.sft.steps=40", "run.train.steps=4"]  # fmt: skip
    settings = parse_overrides(args)
    metrics = repro.run("tiny", tmp_path / "r", settings=settings)
    assert metrics["models"] == ["M1", "M2", "M3"] or metrics["results"][metrics["models"][-1]][0].get("stopped")
    report = (tmp_path / "r" / "report.md").read_text()
    assert "answers get longer" in report and (tmp_path / "r" / "by_iteration.png").is_file()
    claims = json.loads((tmp_path / "r" / "metrics.json").read_text())["claims"]
    assert {c["verdict"] for c in claims} <= {"held", "contradicted", "inconclusive", "not testable"}
    again = repro.run("tiny", tmp_path / "r", settings=settings)  # every stage is found on disk
    assert json.dumps(again, sort_keys=True) == json.dumps(metrics, sort_keys=True)
    with pytest.raises(RunError):
        repro.run("tiny", tmp_path / "r", settings=parse_overrides([*args, "run.beta=0.2"]))


def test_repro_paper_scale_prints_the_run_to_launch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from system2.repro import self_rewarding as repro

    got = repro.run("paper", tmp_path / "p")
    assert got["launch"] == ["accelerate launch -m system2.cli self-rewarding --config " + repro.PAPER_RECIPE]
    assert (ROOT / repro.PAPER_RECIPE).is_file() and not (tmp_path / "p").exists()
