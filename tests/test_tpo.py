"""The TPO loop (system2/selfimprove/tpo.py) end to end on a tiny world: every stage's file, pairs that hold whole
outputs chosen by the judge's scores, resume, the direct-answer arm, and settings refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from system2.config import ConfigError, load_config
from system2.judges.config import JudgeConfig
from system2.runs import RunError, read_parquet
from system2.selfimprove.sft import TinyLMConfig
from system2.selfimprove.tpo import TPOConfig, run_tpo
from system2.tasks import thought_data as td
from system2.tasks.thoughts import split_thought
from system2.train import TrainConfig


def _train(steps: int, batch: int = 8) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=3e-3, warmup=1, ckpt_every=steps, log_every=steps,
                       tensorboard=False)  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("tpo") / "data"
    td.generate(td.ThoughtDataConfig(out=str(out), direct=60, format_examples=12, worked=12, rm_pairs=40, test=10))
    return str(out)


def _cfg(data: str, out: Path, **kw) -> TPOConfig:
    base = dict(data=data, out=str(out), iterations=1, prompts_per_iteration=8, samples=3, max_new_tokens=24,
                max_len=96, batch_size=32, eval_resamples=1, tiny=TinyLMConfig(d_model=32, layers=1, heads=2,
                max_len=96), sft=_train(200, batch=16), rm=_train(10), train=_train(2, batch=2))  # fmt: skip
    return TPOConfig(**{**base, **kw})


def test_loop_end_to_end_resumes_and_refuses_other_settings(data: str, tmp_path: Path) -> None:
    cfg = _cfg(data, tmp_path / "run", rho=0.2)
    rows = run_tpo(cfg, progress=False)
    out = tmp_path / "run"
    assert [r["model"] for r in rows] == ["M0", "M1"] and "stopped" not in rows[1]
    for name in ("prompts", "samples", "judged", "pairs", "reference"):
        assert (out / "iter-1" / f"{name}.parquet").is_file(), name
    assert (out / "rm" / "model" / "reward_model.json").is_file() and (
        out / "iter-1" / "eval" / "result.json"
    ).is_file()
    samples = read_parquet(out / "iter-1" / "judged.parquet").to_pylist()
    assert len(samples) == 8 * 3 and all(s["prompt"].startswith("THINK: ") for s in samples)
    for s in samples:
        split = None if s["truncated"] else split_thought(s["text"], "compact")
        assert s["parsed"] == (split is not None) and (s["score"] is None) == (not s["parsed"])
    by_key = {(s["id"], s["text"]): s for s in samples}
    for p in read_parquet(out / "iter-1" / "pairs.parquet").to_pylist():
        c, r = by_key[(p["id"], p["chosen"])], by_key[(p["id"], p["rejected"])]  # whole outputs, thought included
        assert c["parsed"] and (not r["parsed"]) == p["rejected_unparsed"]
    m0 = read_parquet(out / "m0-eval" / "answers.parquet").to_pylist()
    assert len(m0) == 10 and all(a["attempts"] in (1, 2) for a in m0)
    assert set(rows[0]["oracle_by_family"]) <= set(td.DEFAULT_FAMILIES)
    assert 0 <= rows[0]["judge_accuracy"] <= 1 and rows[0]["judge_pairs"] > 0  # the held-out rm_eval pairs
    assert "win_rate_vs_m0" in rows[1] and "win_rate_vs_m0" not in rows[0]
    stamp = (out / "iter-1" / "pairs.parquet").stat().st_mtime_ns
    assert run_tpo(cfg, progress=False) == rows  # resumed: nothing recomputed
    assert (out / "iter-1" / "pairs.parquet").stat().st_mtime_ns == stamp
    with pytest.raises(RunError, match="rho"):
        run_tpo(_cfg(data, tmp_path / "run", rho=0.3), progress=False)


def test_direct_arm_runs_the_same_pipeline_from_the_same_m0(data: str, tmp_path: Path) -> None:
    first = _cfg(data, tmp_path / "think", iterations=0)
    run_tpo(first, progress=False)
    m0 = tmp_path / "think" / "sft" / "model"
    rm = tmp_path / "think" / "rm" / "model"
    cfg = _cfg(data, tmp_path / "direct", thinking=False, m0=str(m0),
               judge=JudgeConfig(backend="reward_model", template="compact", model=str(rm)))  # fmt: skip
    rows = run_tpo(cfg, progress=False)
    assert not (tmp_path / "direct" / "sft").exists() and not (tmp_path / "direct" / "rm").exists()
    samples = read_parquet(tmp_path / "direct" / "iter-1" / "samples.parquet").to_pylist()
    assert all(s["prompt"].startswith("ACT: ") and s["thought"] == "" for s in samples)
    assert rows[0]["mean_thought_words"] == 0
    record = json.loads((tmp_path / "direct" / "run.json").read_text())
    assert record["settings"]["thinking"] is False


def test_inputs_are_checked_before_any_compute(data: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="thought_prompt must be one of"):
        _cfg(data, tmp_path / "a", thought_prompt="silent").validate()
    with pytest.raises(ConfigError, match="set prompt_format=chat"):  # the tiny world has no chat template
        _cfg(data, tmp_path / "a", thought_prompt="system").validate()
    with pytest.raises(ConfigError, match="judge.backend=policy"):
        _cfg(data, tmp_path / "b", judge=JudgeConfig(backend="policy")).validate()
    with pytest.raises(ConfigError, match="set data=DIR"):
        TPOConfig(out=str(tmp_path / "c")).validate()
    with pytest.raises(ConfigError, match="^m0: "):
        _cfg(data, tmp_path / "d", m0=str(tmp_path / "none")).validate()
    with pytest.raises(ConfigError, match="^rm.steps must be >= 1"):
        _cfg(data, tmp_path / "e", rm=TrainConfig(steps=0)).validate()
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"prompt": "SUM 1 2 + 3 4"}) + "\n")
    with pytest.raises(ConfigError, match="prompts: 1 prompts, but 1 iterations x 8 need 8"):
        run_tpo(_cfg(data, tmp_path / "f", prompts=str(pool)), progress=False)
    other = tmp_path / "test.jsonl"
    other.write_text(json.dumps({"prompt": "Tell me a joke"}) + "\n")
    with pytest.raises(ConfigError, match="eval_oracle=false"):
        run_tpo(_cfg(data, tmp_path / "g", test_prompts=str(other)), progress=False)
    assert not any((tmp_path / n).exists() for n in "abcdefg")


# --- the paper recipe on tiny local files --------------------------------------------------------------------------
CHAT = "{% for m in messages %}[USER] {{ m['content'] }} {% endfor %}[ASSISTANT]"


def _chat_world(tmp_path: Path, kind: str) -> tuple[Path, Path, Path]:
    """A tiny chat model (whose words cover the ``kind`` thought prompt), a saved reward model, and local files: an
    UltraFeedback-format prompt pool and AlpacaEval-format test prompts. Returns (base, reward model, files)."""
    from system2.lm.io import save_lm
    from system2.lm.tiny import build_word_tokenizer, tiny_llama
    from system2.selfimprove.orm import load_orm
    from system2.tasks.thoughts import system_prompt, thought_prompt

    files = tmp_path / "files"
    files.mkdir()
    asks = [f"write a {a} note about {b}" for a in ("short", "long", "kind") for b in ("cats", "rain", "tea", "maps")]
    pool = [{"prompt": x, "prompt_id": str(i), "chosen": [{"role": "user", "content": x}, {"role": "assistant",
             "content": "ok"}], "rejected": [{"role": "user", "content": x}, {"role": "assistant", "content": "no"}],
             "score_chosen": 8.0, "score_rejected": 3.0} for i, x in enumerate(asks[:8])]  # fmt: skip
    test = [{"instruction": x, "output": "ref", "generator": "gpt4", "dataset": "helpful_base"} for x in asks[8:]]
    for name, rows in {"pool": pool, "test": test}.items():
        (files / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    words = " ".join([thought_prompt("{x}", kind), system_prompt(kind) or "", *asks, "ok no"]).split()
    tok = build_word_tokenizer(list(dict.fromkeys(words)), model_max_length=512)
    tok.chat_template = CHAT
    base = save_lm(tiny_llama(tok, d_model=32, n_layers=1, n_heads=2, max_len=512), tok, tmp_path / "base")
    save_lm(*load_orm(base), tmp_path / "rm")  # a saved reward model: the trunk and a (random) head
    return base, tmp_path / "rm", files


def _paper_cfg(tmp_path: Path, kind: str) -> TPOConfig:
    """configs/selfimprove/tpo_paper.yaml on the tiny chat world, with the ``kind`` thought prompt."""
    from dataclasses import replace

    base, rm, files = _chat_world(tmp_path, kind)
    cfg = load_config(TPOConfig, Path(__file__).resolve().parents[1] / "configs" / "selfimprove" / "tpo_paper.yaml")
    assert cfg.thought_prompt == "specific" and cfg.prompt_format == "chat" and not cfg.eval_oracle
    assert cfg.judge.backend == "reward_model"
    return replace(cfg, model=str(base), out=str(tmp_path / "run"), prompts=str(files / "pool.jsonl"),
                   test_prompts=str(files / "test.jsonl"), dtype="float32", device="cpu", backend="hf",
                   prompts_per_iteration=4, samples=3, max_new_tokens=8, max_len=512, iterations=2, eval_resamples=1,
                   judge=replace(cfg.judge, model=str(rm), device="cpu"), thought_prompt=kind,
                   train=_train(1, batch=2))  # fmt: skip


def test_paper_config_runs_end_to_end_on_tiny_local_files(tmp_path: Path) -> None:
    """configs/selfimprove/tpo_paper.yaml with its model, reward model and files replaced by tiny local ones: chat
    prompts, the specific thought prompt, an UltraFeedback-format prompt pool, AlpacaEval-format test prompts, no
    oracle."""
    rows = run_tpo(_paper_cfg(tmp_path, "specific"), progress=False)
    assert rows[0]["model"] == "M0" and "mean_oracle_score" not in rows[0] and not (tmp_path / "run" / "sft").exists()
    samples = read_parquet(tmp_path / "run" / "iter-1" / "samples.parquet").to_pylist()
    assert len(samples) == 4 * 3 and all("<R>" in s["prompt"] and "[USER]" not in s["prompt"] for s in samples)
    assert len(rows) == 3 or rows[-1].get("stopped")  # M0..M2, or an iteration without enough parsed outputs


def test_system_thought_prompt_is_a_system_turn_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """thought_prompt=system: the prompt is the bare query; the thought request is rendered as a system turn before
    it wherever the policy sees a prompt (sampling, the reference log-probs, DPO, evaluation); the Direct arm has
    none; without a chat template it is refused before any compute."""
    import traceback
    from dataclasses import replace

    from system2.lm import encoding
    from system2.lm.logprobs import reference_logprobs
    from system2.lm.sampling import Completion
    from system2.selfimprove import tpo
    from system2.selfimprove.dpo import reference_logprobs_rows
    from system2.tasks.thoughts import system_prompt

    seen: list[tuple[bool, str | None, bool]] = []  # (chat, system turn, rendered for the judge)
    render = encoding.format_prompts

    def spy(tokenizer, prompts, chat=False, system=None):  # type: ignore[no-untyped-def]
        seen.append((chat, system, "_judge" in [f.name for f in traceback.extract_stack()]))
        return render(tokenizer, prompts, chat, system)

    monkeypatch.setattr(encoding, "format_prompts", spy)
    real_sampler = tpo.sample_completions

    def answers(*args, **kw):  # type: ignore[no-untyped-def]
        """The real sampler's calls, its texts replaced by parseable ones of two qualities, so pairs form."""
        return [[Completion(f"ok Here is my response: {'ok' if j % 2 else 'no'}", False) for j in range(len(row))]
                for row in real_sampler(*args, **kw)]  # fmt: skip

    monkeypatch.setattr(tpo, "sample_completions", answers)
    cfg = _paper_cfg(tmp_path, "system")
    sys_turn = system_prompt("system")
    assert cfg.system_turn == sys_turn and replace(cfg, thinking=False).system_turn is None
    rows = run_tpo(cfg, progress=False)
    samples = read_parquet(tmp_path / "run" / "iter-1" / "samples.parquet").to_pylist()
    assert all(s["prompt"] == s["instruction"] for s in samples)  # the query alone: the request is the system turn
    assert {s for c, s, judge in seen if c and not judge} == {sys_turn}  # every rendering for the policy has it
    assert {s for c, s, judge in seen if judge} == {None}  # the judge sees the query and the response part only
    assert rows[1]["pairs"] > 0 and (tmp_path / "run" / "iter-1" / "train" / "model").is_dir()  # DPO rendered it too
    pair = [{"prompt": "write a short note about cats", "chosen": "ok no", "rejected": "no"}]
    model, tok = cfg.load(cfg.model)
    got = reference_logprobs_rows(cfg.model, model, tok, cfg, False, pair)[0]["ref_chosen"]
    args = (model, tok, [pair[0]["prompt"]], [pair[0]["chosen"]], cfg.max_len)
    assert got == pytest.approx(reference_logprobs(*args, chat=True, system=sys_turn, progress=False)[0], abs=1e-5)
    assert got != pytest.approx(reference_logprobs(*args, chat=True, progress=False)[0], abs=1e-3)
    assert rows[0]["model"] == "M0"
    with pytest.raises(ConfigError, match="prompt_format=chat"):
        replace(cfg, prompt_format="raw", out=str(tmp_path / "raw")).validate()


# --- the reproduction ----------------------------------------------------------------------------------------------
def test_repro_tiny_runs_both_arms_from_one_m0_and_resumes(tmp_path: Path) -> None:
    """Both arms and the oracle-judged diagnostic arm from one M0 and one reward model, on the same test prompts; a
    rerun finds every stage on disk, other settings are refused."""
    from system2.config import parse_overrides
    from system2.repro import tpo as repro
    from system2.tasks.thought_world import oracle_score

    args = ["data.direct=60", "data.format_examples=10", "data.worked=10", "data.rm_pairs=40", "data.test=30",
            "run.prompts_per_iteration=10", "run.sft.steps=60", "run.rm.steps=10", "run.train.steps=2"]  # fmt: skip
    settings = parse_overrides(args)
    metrics = repro.run("tiny", tmp_path / "r", settings=settings)
    runs = tmp_path / "r" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["direct-seed0", "tpo-oracle-judge-seed0", "tpo-seed0"]
    for shared in ("direct-seed0", "tpo-oracle-judge-seed0"):  # M0 and the reward model are the TPO arm's
        assert not (runs / shared / "sft").exists() and not (runs / shared / "rm").exists()
    judged = read_parquet(runs / "tpo-oracle-judge-seed0" / "iter-1" / "judged.parquet").to_pylist()
    assert all(r["score"] == oracle_score(r["instruction"], r["response"]) for r in judged if r["parsed"])
    think = read_parquet(runs / "tpo-seed0" / "m0-eval" / "answers.parquet").to_pylist()
    direct = read_parquet(runs / "direct-seed0" / "m0-eval" / "answers.parquet").to_pylist()
    assert [a["id"] for a in think] == [a["id"] for a in direct]  # the same test prompts, paired
    report = (tmp_path / "r" / "report.md").read_text()
    assert "thinking overtakes direct answering" in report and "TPO, oracle judge" in report
    assert (tmp_path / "r" / "by_family.png").is_file() and (tmp_path / "r" / "by_iteration.png").is_file()
    claims = json.loads((tmp_path / "r" / "metrics.json").read_text())["claims"]
    assert {c["verdict"] for c in claims} <= {"held", "contradicted", "inconclusive", "not testable"}
    again = repro.run("tiny", tmp_path / "r", settings=settings)  # every stage is found on disk
    assert json.dumps(again, sort_keys=True) == json.dumps(metrics, sort_keys=True)  # (NaN == NaN as text)
    with pytest.raises(RunError):
        repro.run("tiny", tmp_path / "r", settings=parse_overrides([*args, "run.rho=0.4"]))
    assert repro.run("paper", tmp_path / "p")["launch"][0].endswith(f"{repro.PAPER_RECIPE} thinking=true")


def test_pairwise_judging_ranks_as_the_scores_do(data: str, tmp_path: Path) -> None:
    """With a reward-model judge, the Bradley-Terry Elo of a prompt's responses judged pair by pair (both orders)
    orders them as their scores do; a parse failure gets no score in either mode, a lone response scores 0."""
    from system2.lm.io import save_lm
    from system2.selfimprove import tpo
    from system2.selfimprove.orm import load_orm

    run_tpo(_cfg(data, tmp_path / "m", iterations=0), progress=False)
    save_lm(*load_orm(tmp_path / "m" / "sft" / "model"), tmp_path / "rm")
    judge = tpo.Judge.from_config(JudgeConfig(backend="reward_model", model=str(tmp_path / "rm")))
    texts = ["8 6 1", "8 6", "sure 8 , 6 , 1", "1 6 8", "no"]
    group = [{"id": "1-0", "instruction": "SUM 4 7 2 + 3 8 9", "sample": j, "response": t, "parsed": t != "no"}
             for j, t in enumerate(texts)]  # fmt: skip
    lone = [{"id": "1-1", "instruction": "COPY owl fig", "sample": 0, "response": "owl fig", "parsed": True}]
    point = tpo._judge(_cfg(data, tmp_path / "x"), judge, 0, [group, lone], 0)
    pair = tpo._judge(_cfg(data, tmp_path / "x", judge_mode="pairwise"), judge, 0, [group, lone], 0)
    assert point[4]["score"] is None and pair[4]["score"] is None and pair[5]["score"] == 0.0
    s, e = [r["score"] for r in point[:4]], [r["score"] for r in pair[:4]]
    assert len(set(s)) == 4 and sorted(range(4), key=s.__getitem__) == sorted(range(4), key=e.__getitem__)
    with pytest.raises(ConfigError, match="judge_mode"):
        _cfg(data, tmp_path / "y", judge_mode="listwise").validate()
    with pytest.raises(ConfigError, match="needs eval_oracle=true"):
        _cfg(data, tmp_path / "y", judge_mode="oracle", eval_oracle=False).validate()
    oracle = tpo._judge(_cfg(data, tmp_path / "x", judge_mode="oracle"), judge, 0, [group], 0)
    assert [r["score"] for r in oracle] == [5.0, 3.0, 3.0, 4.0, None]  # the world's oracle on each response part


def test_reward_model_pairs_from_m0s_own_outputs(data: str, tmp_path: Path) -> None:
    """rm_own_samples: M0's outputs to fresh prompts, in both modes, ranked by the oracle into extra pairs (chosen
    scored higher, no test prompt among them) that the reward model trains on."""
    from system2.tasks.thought_world import oracle_score

    run_tpo(_cfg(data, tmp_path / "run", iterations=0, rm_own_samples=12), progress=False)
    own = read_parquet(tmp_path / "run" / "rm_own_pairs.parquet").to_pylist()
    test = {r["instruction"] for r in read_parquet(Path(data) / "test_prompts.parquet").to_pylist()}
    assert own and all(oracle_score(p["prompt"], p["chosen"]) > oracle_score(p["prompt"], p["rejected"]) for p in own)
    assert not {p["prompt"] for p in own} & test
    with pytest.raises(ConfigError, match="rm_own_samples needs the TPO world"):
        _cfg(data, tmp_path / "x", rm_own_samples=5, eval_oracle=False).validate()


def test_pair_precision_counts_whole_scratchpads_where_they_help(tmp_path: Path) -> None:
    """By hand: the oracle's agreement with the pairs, and the shares of sampled and chosen thoughts that hold the
    whole scratchpad, on prompts where a scratchpad helps only."""
    from system2.repro.tpo import pair_precision
    from system2.runs import write_parquet
    from system2.tasks import thought_world as tw

    x, other = "LOOKUP a = b ; b = 7 ; c = 1 ? a", "COPY dog cat"
    work = tw.worked_thought(x)
    cfg = TPOConfig(out=str(tmp_path), data=str(tmp_path), thinking=True)
    pairs = [{"instruction": x, "chosen": f"T: {work} R: 7", "rejected": "T: ok R: 1"},
             {"instruction": other, "chosen": "T: ok R: dog cat", "rejected": "T: ok R: cat"}]  # fmt: skip
    samples = [{"instruction": x, "text": t} for t in (f"T: {work} R: 7", "T: ok R: 1", "T: a = b R: 7", "junk")]
    write_parquet(tmp_path / "pairs.parquet", pairs)
    write_parquet(tmp_path / "samples.parquet", samples + [{"instruction": other, "text": "T: ok R: dog cat"}])
    got = pair_precision(tmp_path / "pairs.parquet", cfg)
    assert got == {"pairs_oracle_agrees": 1.0, "pairs_oracle_ties": 0.0, "samples_whole_scratchpad": 0.25,
                   "chosen_whole_scratchpad": 1.0}  # fmt: skip
