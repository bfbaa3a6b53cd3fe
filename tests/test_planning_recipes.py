"""Planning recipes end to end on tiny data: train, evaluate in every mode, bootstrap, show, repro."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from system2.cli import app
from system2.config import ConfigError
from system2.planning.bootstrap import BootstrapConfig, run_bootstrap
from system2.planning.generate import GenerateConfig, generate_dataset, read_split
from system2.planning.inference import response_budget
from system2.planning.recipes import PlannerEvalConfig, PlannerTrainConfig, evaluate_planner, train_planner
from system2.repro import verdicts as vd
from system2.repro.framework import mean_std, write_report
from system2.repro.verdicts import decide_all
from system2.runs import RunError
from system2.train import TrainConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("planner")
    data = root / "data"
    generate_dataset(GenerateConfig(width=4, height=4, train=48, test=6, seed=0), data, progress=False)
    cfg = PlannerTrainConfig(
        data=str(data),
        out=str(root / "run"),
        mode="dualformer",
        train=TrainConfig(steps=6, batch_size=8, warmup=1, ckpt_every=3, log_every=1, tensorboard=False),
    )
    cfg.model.preset = "tiny"
    train_planner(cfg, progress=False)
    return data, root / "run"


def test_train_writes_model_vocab_and_metrics(trained):
    _, run = trained
    assert {p.name for p in (run / "model").iterdir()} == {"config.json", "model.safetensors", "vocab.json"}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 6
    assert json.loads((run / "run.json").read_text())["settings"]["mode"] == "dualformer"


@pytest.mark.parametrize("mode", ["slow", "fast", "auto"])
def test_evaluate_every_mode(trained, tmp_path, mode):
    data, run = trained
    cfg = PlannerEvalConfig(
        model=str(run), data=str(data), out=str(tmp_path / mode), mode=mode, samples=2, reference_runs=2
    )
    summary = evaluate_planner(cfg, progress=False)
    assert summary["tasks"] == 6 and summary["samples_per_task"] == 2 and summary["mode"] == mode
    assert 0 <= summary["any_optimal@2"] <= summary["any_correct@2"] <= 1
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / mode / "tasks.parquet").to_pylist()
    assert len(rows) == 6 and all(len(r["responses"]) == 2 for r in rows)
    assert summary["layouts"] == len({r["layout_id"] for r in rows}) >= 2  # at most 5 test tasks per layout
    assert all(r["reference_search_steps"] > 0 and r["mean_search_steps"] is not None for r in rows)
    first = {"slow": "create", "fast": "plan"}.get(mode)
    if first:
        assert all(r.split()[1] == first for row in rows for r in row["responses"])


def test_bootstrap_round_trip(trained, tmp_path):
    data, run = trained
    cfg = BootstrapConfig(
        model=str(run),
        data=str(data),
        out=str(tmp_path / "boot"),
        rounds=1,
        samples=2,
        limit=16,
        eval_samples=2,
        reference_runs=2,
        train=TrainConfig(steps=3, batch_size=8, warmup=1, ckpt_every=3, tensorboard=False),
    )
    results = run_bootstrap(cfg, progress=False)
    assert [r["round"] for r in results] == [0, 1]
    r1 = results[1]
    assert r1["prompts"] == 48 and r1["sampled_prompts"] == 16  # sampled 16, fine-tuned on all 48
    assert 0 <= r1["shortened"] + r1["longer_kept"] <= r1["replaced"] <= 16
    improved = tmp_path / "boot" / "round-1" / "data"
    assert json.loads((improved / "meta.json").read_text())["counts"] == {"train": 48, "test": 6}
    kept, original = read_split(improved, "train").to_pylist(), read_split(data, "train").to_pylist()
    assert sum(a != b for a, b in zip(kept, original, strict=True)) == r1["replaced"]
    for r in results:
        ratio, tasks = r["search_ratio_vs_astar"], r["search_ratio_vs_astar_tasks"]
        assert (ratio is None) == (tasks == 0) and 0 <= tasks <= 6
    assert (r1["search_ratio_vs_round0"] is None) == (r1["search_ratio_vs_round0_tasks"] == 0)
    # a rerun finds every stage done and gives the same answer
    assert run_bootstrap(cfg, progress=False) == results


def test_evaluation_keeps_tasks_under_the_trace_limit_and_caps_the_budget(trained, tmp_path):
    """The official rollouts evaluate tasks whose A* trace is under 10,000 tokens and decode at most 10,000
    (maze) / 11,000 (Sokoban) tokens, 2,000 for a plan alone."""
    data, run = trained
    traces = sorted(r["trace_len"] for r in read_split(data, "test").to_pylist())
    limit = traces[len(traces) // 2]  # keeps the tasks strictly shorter than the median trace
    cfg = PlannerEvalConfig(model=str(run), data=str(data), samples=1, reference_runs=0, max_trace_tokens=limit)
    summary = evaluate_planner(cfg, progress=False)
    assert summary["tasks"] == sum(t < limit for t in traces) < len(traces)
    with pytest.raises(ConfigError, match="no test tasks left"):
        evaluate_planner(PlannerEvalConfig(model=str(run), data=str(data), max_trace_tokens=1), progress=False)
    assert response_budget("maze", "auto", 10) == 64
    assert response_budget("maze", "slow", 1000) == 2002
    assert response_budget("maze", "auto", 60_000) == 10_000
    assert response_budget("sokoban", "slow", 60_000) == 11_000
    assert response_budget("sokoban", "fast", 60_000) == 2_000


def test_bad_recipe_configs(trained):
    data, run = trained
    with pytest.raises(ConfigError, match="data=DIR"):
        PlannerTrainConfig().validate()
    with pytest.raises(RunError, match="is a planning dataset, not a planner training run"):
        evaluate_planner(PlannerEvalConfig(model=str(data), data=str(data)), progress=False)
    with pytest.raises(FileNotFoundError, match="holds no planner"):
        evaluate_planner(PlannerEvalConfig(model=str(data / "data"), data=str(data)), progress=False)


def test_cli_eval_and_show_with_model(trained, tmp_path):
    data, run = trained
    result = runner.invoke(
        app, ["planning", "eval", str(run), "--data", str(data), "--samples", "1", "reference_runs=0"]
    )
    assert result.exit_code == 0, result.output
    assert "any_optimal@1" in result.output
    png = tmp_path / "s.png"
    shown = runner.invoke(
        app, ["planning", "show", str(data), "--model", str(run), "--mode", "slow", "--out", str(png)]
    )
    assert shown.exit_code == 0, shown.output
    assert png.exists()
    bad = runner.invoke(app, ["planning", "eval", str(run), "--data", str(data), "sample=3"])
    assert bad.exit_code == 2 and "did you mean 'samples'" in bad.output


def test_report_and_tables(tmp_path):
    """The report holds every verdict with how to read them; tables never drop a seed that lacks a value."""
    claim = vd.Claim("up", "A beats B", "paper: yes", "m", ("A", "B"), unit="tasks")
    units = vd.Units({"A": np.ones(40), "B": np.r_[np.ones(20), np.zeros(20)]})
    verdicts = vd.decide_all([claim], {"m": units})
    report = write_report(tmp_path, "T", "intro", [], [], verdicts, {"a": 2})
    text = report.read_text()
    assert "| **up**: A beats B | paper: yes | 100.0% vs 50.0%: +50.0 pts" in text and "| held |" in text
    assert vd.HOW_TO_READ in text
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"] == {"a": 2} and saved["claims"][0]["verdict"] == "held"
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, 0.1414), abs=1e-4)
    assert all(math.isnan(x) for x in mean_std([None, float("nan")]))  # measured by no seed: shown as "-"
    with pytest.raises(ValueError, match="1 of 2 seeds lack a value"):
        mean_std([0.5, None])


def test_repro_rejects_unknown_scale():
    result = runner.invoke(app, ["repro", "searchformer", "--scale", "huge"])
    assert result.exit_code == 2 and "unknown scale" in result.output


def _task_rows(optimal: list[bool], steps: float, plans: int = 1) -> list[dict]:
    return [
        {"task_id": f"t{i}", "layout_id": f"l{i // 4}", "optimal": int(o), "unique_optimal_plans": plans if o else 0,
         "mean_search_steps_optimal": steps + i % 3 if o else None}
        for i, o in enumerate(optimal)
    ]  # fmt: skip


def test_dualformer_claims_on_per_task_results():
    """Models that solve nothing give no verdict; a clear per-task advantage over 15 layouts is held; the
    search comparison counts steps on tasks both arms solve."""
    from system2.repro import dualformer

    arms = [name for name, _, _ in dualformer.EVALS]
    nothing = {a: [_task_rows([False] * 60, 10.0)] for a in arms}
    verdicts = {c.name: c.verdict for c in decide_all(dualformer.CLAIMS, dualformer.claim_data(nothing))}
    assert "held" not in verdicts.values() and verdicts["slow mode is optimal"] == "not testable", verdicts
    solved = {a: [_task_rows([i % 10 < 3 for i in range(60)], 40.0)] for a in arms}
    solved["Dualformer slow"] = [_task_rows([True] * 60, 20.0, plans=3)]
    verdicts = {c.name: c.verdict for c in decide_all(dualformer.CLAIMS, dualformer.claim_data(solved))}
    assert verdicts["slow mode is optimal"] == "held" and verdicts["slow mode searches less"] == "held", verdicts
    assert verdicts["diversity"] == "held" and verdicts["fast mode beats solution-only"] == "inconclusive", verdicts


def test_searchformer_claims_on_per_task_results():
    """A clear advantage at the smallest data that shrinks at the largest is held; a bootstrapped model that
    solves fewer tasks is not compared on search length; one that keeps them and searches less is held."""
    from system2.repro import searchformer

    some = [i % 10 < 3 for i in range(80)]
    arms = {
        "search": {300: [_task_rows([True] * 80, 30.0)], 1200: [_task_rows([True] * 80, 30.0)]},
        "solution": {300: [_task_rows(some, 30.0)], 1200: [_task_rows([i % 10 < 9 for i in range(80)], 30.0)]},
    }
    shorter = [_task_rows([True] * 80, 30.0), _task_rows([True] * 80, 20.0)]
    verdicts = {c.name: c.verdict for c in searchformer.decide_claims(searchformer.claim_data(arms, shorter))}
    assert verdicts == {
        "search beats solution-only": "held",
        "gap largest at small data": "held",
        "bootstrapping shortens search": "held",
        "bootstrapping keeps optimality": "not testable",  # both rounds solve every task
        "Sokoban: search beats solution-only": "not testable",  # no Sokoban arms
    }, verdicts
    behind = {"search": arms["solution"], "solution": arms["search"]}  # search-augmented behind everywhere
    verdicts = {c.name: c.verdict for c in searchformer.decide_claims(searchformer.claim_data(behind, shorter))}
    assert verdicts["search beats solution-only"] == "contradicted", verdicts
    assert verdicts["gap largest at small data"] == "not testable", verdicts
    worse = [_task_rows([True] * 80, 30.0), _task_rows(some, 20.0)]
    verdicts = {c.name: c.verdict for c in searchformer.decide_claims(searchformer.claim_data(arms, worse))}
    assert verdicts["bootstrapping shortens search"] == "not testable", verdicts
    assert verdicts["bootstrapping keeps optimality"] == "contradicted", verdicts


def test_searchformer_claims_on_null_and_saturated_results():
    """Identical arms are never held; arms both at 100% are not testable."""
    from system2.repro import searchformer

    some = [i % 10 < 3 for i in range(80)]
    same = {m: {300: [_task_rows(some, 30.0)], 1200: [_task_rows(some, 30.0)]} for m in ("search", "solution")}
    boot = [_task_rows(some, 30.0), _task_rows(some, 30.0)]
    verdicts = {c.name: c.verdict for c in searchformer.decide_claims(searchformer.claim_data(same, boot))}
    assert "held" not in verdicts.values(), verdicts
    assert verdicts["search beats solution-only"] == "inconclusive", verdicts
    full = {m: {300: [_task_rows([True] * 80, 30.0)], 1200: [_task_rows([True] * 80, 30.0)]} for m in same}
    verdicts = {c.name: c.verdict for c in searchformer.decide_claims(searchformer.claim_data(full, boot))}
    assert verdicts["search beats solution-only"] == "not testable", verdicts


def test_searchformer_reproduction_end_to_end_with_sokoban_arms(tmp_path, monkeypatch):
    """The whole reproduction at a micro scale: a maze sweep of two sizes, the Sokoban arms of Table 1 (with the
    solution-only arm's own learning rate and batch) and bootstrapping from the Sokoban search-augmented model;
    every claim gets a verdict, the report is written, and a rerun resumes to the same result."""
    from system2.repro import planning_common as pc
    from system2.repro import searchformer as sf

    common = dict(preset="tiny", steps=2, batch_size=4, warmup=1, eval_samples=2, reference_runs=2,
                  bootstrap_rounds=1, bootstrap_prompts=4, bootstrap_samples=2, bootstrap_steps=2)  # fmt: skip
    sokoban = pc.PlanningScale(env="sokoban", size=6, train_sizes=(12,), test=6, num_boxes=1, num_walls=1,
                               max_trace_tokens=400, solution_lr=5e-4, solution_batch_size=2, **common)  # fmt: skip
    micro = sf.SearchformerScale(size=4, train_sizes=(12, 24), test=6, sokoban=sokoban, **common)
    monkeypatch.setitem(sf.SCALES, "micro", micro)
    out = tmp_path / "sf"
    metrics = sf.run("micro", out, seeds=2)
    assert set(metrics["sokoban_arms"]) == {"solution", "search"} and len(metrics["sokoban_arms"]["search"][12]) == 2
    assert [r["round"] for r in metrics["bootstrap"]] == [0, 1]
    boot_data = json.loads((out / "bootstrap" / "round-1" / "data" / "meta.json").read_text())
    assert boot_data["env"] == "sokoban" and boot_data["counts"]["train"] == 12
    solution = json.loads((out / "sokoban" / "runs" / "solution-n12-seed0" / "run.json").read_text())["settings"]
    assert solution["train"]["lr"] == 5e-4 and solution["train"]["batch_size"] == 2
    search = json.loads((out / "sokoban" / "runs" / "search-n12-seed0" / "run.json").read_text())["settings"]
    assert search["train"]["batch_size"] == 4
    report = (out / "report.md").read_text()
    assert "Sokoban (Table 1" in report and "Sokoban: search beats solution-only" in report
    assert sf.run("micro", out, seeds=2) == metrics
    fewer = sf.run("micro", out, seeds=1)  # another seed count resumes (seed 0's arms are reused)
    assert fewer["arms"]["search"][12] == metrics["arms"]["search"][12][:1]


def test_learning_curve_scores_every_checkpoint_and_resumes(trained, tmp_path):
    from system2.planning.curves import CurveConfig, learning_curve, plot_curves

    data, _ = trained
    cfg = CurveConfig(
        data=str(data),
        out=str(tmp_path / "curve"),
        mode="search",
        train=TrainConfig(steps=4, batch_size=8, warmup=1, ckpt_every=2, log_every=1, tensorboard=False),
        eval_limit=4,
    )
    cfg.model.preset = "tiny"
    points = learning_curve(cfg, progress=False)
    assert [p["step"] for p in points] == [2, 4]  # every checkpoint kept and scored, oldest first
    assert all(p["tasks"] == 4 and 0 <= p["greedy_optimal"] <= p["greedy_feasible"] <= 1 for p in points)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "curve" / "metrics.jsonl").read_text().splitlines()]
    # each point: the mean logged loss since the previous point
    windows = [(losses[0] + losses[1]) / 2, (losses[2] + losses[3]) / 2]
    assert [p["train_loss"] for p in points] == pytest.approx(windows)
    assert json.loads((tmp_path / "curve" / "curve.json").read_text())["points"] == points
    assert learning_curve(cfg, progress=False) == points  # a rerun finds every stage done
    png = plot_curves({"search": points}, tmp_path / "curve.png", "tiny")
    assert png.stat().st_size > 0


def test_cli_curve(trained, tmp_path):
    data, _ = trained
    out = tmp_path / "c"
    args = ["planning", "curve", "--data", str(data), "--out", str(out), "--mode", "solution", "--preset", "tiny",
            "--steps", "2", "train.ckpt_every=1", "train.batch_size=4", "train.warmup=1", "eval_limit=2"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "curve.png").stat().st_size > 0 and "learning curve" in result.output
    assert [p["step"] for p in json.loads((out / "curve.json").read_text())["points"]] == [1, 2]


def test_ilr_references_search_as_the_datasets_traces_did(trained, tmp_path):
    """A dataset records its tie-breaking; one without the record (made earlier) used the per-push priority, and
    the A* references of ILR follow it."""
    import shutil

    import pyarrow.parquet as pq

    from system2.planning.evaluate import astar_reference_trace_length, task_from_prompt

    data, run = trained
    assert json.loads((data / "meta.json").read_text())["ties"] == "coin"
    legacy = tmp_path / "legacy"
    shutil.copytree(data, legacy)
    meta = json.loads((legacy / "meta.json").read_text())
    del meta["ties"]
    (legacy / "meta.json").write_text(json.dumps(meta))
    rows = read_split(legacy, "test").to_pylist()
    for name, ties in ((data, "coin"), (legacy, "priority")):
        out = tmp_path / f"eval-{ties}"
        cfg = PlannerEvalConfig(model=str(run), data=str(name), out=str(out), samples=1, reference_runs=3, seed=5)
        evaluate_planner(cfg, progress=False)
        got = pq.read_table(out / "tasks.parquet").column("reference_trace_tokens").to_pylist()
        want = [astar_reference_trace_length(task_from_prompt(r["prompt"], "maze", 4, 4), 3, 5 + i * 1000, ties)
                for i, r in enumerate(rows)]  # fmt: skip
        assert got == want, ties


def test_repro_all_at_the_gpu_scale_runs_searchformer_alone(monkeypatch, tmp_path):
    """Only Searchformer has a `gpu` scale: `repro all --scale gpu` runs it and names every reproduction skipped."""
    from system2.cli.repro import REPROS
    from system2.repro import searchformer as sf

    calls = []
    monkeypatch.setattr(sf, "run", lambda scale, out, seeds, restart=False: calls.append((scale, out.name)))
    result = CliRunner().invoke(app, ["repro", "all", "--scale", "gpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert calls == [("gpu", "searchformer-gpu")]
    skipped = [n for n in REPROS if n != "searchformer"]
    assert all(f"repro {n}: no 'gpu' scale, skipped" in result.output for n in skipped)
    gpu = sf.SCALES["gpu"]
    assert gpu.train_per_layout and gpu.size >= 7 and gpu.seeds == 3  # spread layouts, the maze size
