"""Planning recipes end to end on tiny data: train, evaluate in every mode, bootstrap, show, repro."""

import json

import pytest
from typer.testing import CliRunner

from system2.cli import app
from system2.config import ConfigError
from system2.planning.bootstrap import BootstrapConfig, run_bootstrap
from system2.planning.generate import GenerateConfig, generate_dataset
from system2.planning.recipes import PlannerEvalConfig, PlannerTrainConfig, evaluate_planner, train_planner
from system2.repro.framework import Claim, check_claims, write_report
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
    assert results[1]["prompts"] == 16 and 0 <= results[1]["improved_prompts"] <= 16
    improved = tmp_path / "boot" / "round-1" / "data"
    assert json.loads((improved / "meta.json").read_text())["counts"] == {"train": 16, "test": 6}
    # a rerun finds every stage done and gives the same answer
    assert run_bootstrap(cfg, progress=False) == results


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


def test_claims_and_report(tmp_path):
    claims = [
        Claim("up", "a > b", "paper: yes", lambda m: (m["a"] > m["b"], f"{m['a']} vs {m['b']}")),
        Claim("missing", "needs c", "paper: yes", lambda m: (m["c"] > 0, "")),
    ]
    results = check_claims(claims, {"a": 2, "b": 1})
    assert results[0].held is True and results[1].held is None and "not measurable" in results[1].ours
    report = write_report(tmp_path, "T", "intro", [], [], results, {"a": 2})
    text = report.read_text()
    assert "| **up**: a > b | paper: yes | 2 vs 1 | held |" in text and "not testable" in text
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"] == {"a": 2}


def test_repro_rejects_unknown_scale():
    result = runner.invoke(app, ["repro", "searchformer", "--scale", "huge"])
    assert result.exit_code == 2 and "unknown scale" in result.output


def test_claims_on_models_that_solve_nothing_are_not_testable():
    """A comparison between two models that both fail is not evidence either way."""
    from system2.repro import dualformer

    zero = {"1_optimal@4": 0.0, "1_solved@4": 0.0, "mean_trace_tokens": 50.0, "diversity": 0.0}
    metrics = {"samples": 4, "arms": {name: [dict(zero)] for name, _, _ in dualformer.EVALS}}
    verdicts = {c.name: c.held for c in check_claims(dualformer.CLAIMS, metrics)}
    assert set(verdicts.values()) == {None}, verdicts
    metrics["arms"]["Dualformer slow"] = [dict(zero, **{"1_optimal@4": 0.5, "1_solved@4": 0.5, "diversity": 1.0})]
    verdicts = {c.name: c.held for c in check_claims(dualformer.CLAIMS, metrics)}
    assert verdicts["slow mode is optimal"] is True and verdicts["diversity"] is True
