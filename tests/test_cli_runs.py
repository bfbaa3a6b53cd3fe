"""Run directories through the command line: every command that takes ``--out`` records its settings, a
rerun with the same ones resumes, other ones are refused before any compute (``--restart`` moves the old
run aside), directories of another kind are refused by name, damaged files give one line naming them,
and bad input is refused before anything is written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from system2.cli import app

runner = CliRunner()


def cli(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def digest(root: Path) -> str:
    """Names and bytes of every file below ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def refused(code: int, output: str, *keys: str) -> None:
    assert code == 2, output
    assert "other settings" in output and "--restart" in output, output
    for k in keys:
        assert k in output, (k, output)
    assert "Traceback" not in output


TRAIN = ["train.batch_size=4", "train.warmup=1", "train.log_every=1", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def planning(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("planning")
    code, out = cli("planning", "generate", "maze", "--size", 4, "--train", 40, "--test", 6, "--out", root / "d")
    assert code == 0, out
    code, out = cli("planning", "train", "--data", root / "d", "--out", root / "r", "--preset", "tiny",
                    "--steps", 4, *TRAIN, "train.ckpt_every=2")  # fmt: skip
    assert code == 0, out
    return {"data": root / "d", "run": root / "r", "root": root}


@pytest.fixture(scope="module")
def reasoning(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reasoning")
    code, out = cli("arithmetic", "--out", root / "a", "--train", 16, "--test", 4, "--hard", 0)
    assert code == 0, out
    code, out = cli("sft", "--train-data", root / "a" / "train.parquet", "--eval-data", root / "a" / "test.parquet",
                    "--out", root / "m0", "--steps", 20, *SFT)  # fmt: skip
    assert code == 0, out
    return {"data": root / "a", "m0": root / "m0", "root": root}


SFT = ["tiny.d_model=32", "tiny.layers=1", "tiny.heads=2", "tiny.max_len=48", "max_len=48", "max_new_tokens=24",
       "train.batch_size=8", "train.warmup=2", "train.tensorboard=false"]  # fmt: skip


# ----- planning -----------------------------------------------------------------------------------------
def test_generate_resumes_refuses_and_restarts(planning: dict[str, Path]) -> None:
    data, root = planning["data"], planning["root"]
    before = digest(data)
    code, out = cli("planning", "generate", "maze", "--size", 4, "--train", 40, "--test", 6, "--out", data,
                    "--workers", 2)  # fmt: skip
    assert code == 0 and digest(data) == before, out  # the same settings (workers may differ): nothing redone
    copy = root / "d-copy"
    shutil.copytree(data, copy)
    code, out = cli("planning", "generate", "maze", "--size", 4, "--train", 50, "--test", 6, "--out", copy)
    refused(code, out, "train: 40 -> 50")
    assert digest(copy) == before
    code, out = cli("planning", "generate", "maze", "--size", 4, "--train", 50, "--test", 6, "--out", copy,
                    "--restart")  # fmt: skip
    assert code == 0, out
    assert digest(root / "d-copy.old-1") == before
    assert json.loads((copy / "meta.json").read_text())["counts"]["train"] == 50


def test_train_refuses_other_settings_and_never_mixes_runs(planning: dict[str, Path]) -> None:
    data, run, root = planning["data"], planning["run"], planning["root"]
    before = digest(run)
    base = ["planning", "train", "--data", data, "--preset", "tiny", *TRAIN, "train.ckpt_every=2"]
    code, out = cli(*base, "--out", run, "--steps", 4)
    assert code == 0 and digest(run) == before, out  # finished: returned as it is
    code, out = cli(*base, "--out", run, "--steps", 3)  # once "4/3" and a rewritten config
    refused(code, out, "train.steps: 4 -> 3")
    code, out = cli(*base, "--out", run, "--steps", 4, "train.lr=0.01")
    refused(code, out, "train.lr: 0.001 -> 0.01")
    code, out = cli(*base, "--out", run, "--steps", 4, "--mode", "solution")
    refused(code, out, "mode: 'search' -> 'solution'")
    assert digest(run) == before
    # a copy restarted with other settings: the old run moves aside, the new one logs its own steps only
    copy = root / "r-copy"
    shutil.copytree(run, copy)
    code, out = cli(*base, "--out", copy, "--steps", 3, "--restart")
    assert code == 0, out
    assert digest(root / "r-copy.old-1") == before
    steps = [json.loads(x)["step"] for x in (copy / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert json.loads((copy / "run.json").read_text())["settings"]["train"]["steps"] == 3


def test_a_dataset_is_never_a_run_and_a_run_never_a_dataset(planning: dict[str, Path], tmp_path: Path) -> None:
    data, run = planning["data"], planning["run"]
    before = digest(data)
    code, out = cli("planning", "train", "--data", data, "--out", data, "--steps", 2, *TRAIN)
    assert code == 2 and "same directory" in out and digest(data) == before, out
    code, out = cli("planning", "train", "--data", data, "--out", data / "data", "--steps", 2, *TRAIN)
    assert code == 2 and "not a system2 run directory" in out and digest(data) == before, out
    code, out = cli("planning", "train", "--data", run, "--out", tmp_path / "x", "--steps", 2, *TRAIN)
    assert code == 2 and "is a planner training run, not a planning dataset" in out, out
    code, out = cli("planning", "eval", data, "--data", data)
    assert code == 2 and "is a planning dataset, not a planner training run" in out, out
    code, out = cli("planning", "generate", "maze", "--size", 4, "--train", 40, "--test", 6, "--out", run)
    assert code == 2 and "is a planner training run, not a planning dataset" in out, out
    assert not (tmp_path / "x").exists()


def test_a_dataset_is_never_a_recipe_run(planning: dict[str, Path], reasoning: dict[str, Path]) -> None:
    arith = reasoning["data"]
    code, out = cli("sft", "--train-data", arith / "train.parquet", "--out", planning["data"], "--steps", 2, *SFT)
    assert code == 2 and "is a planning dataset, not an SFT run" in out, out
    code, out = cli("irpo", "--model", reasoning["m0"] / "model", "--train-data", arith, "--out", arith / "x")
    assert code == 2 and "is an arithmetic dataset: pass one of its files" in out, out
    code, out = cli("arithmetic", "--out", reasoning["m0"], "--train", 16)
    assert code == 2 and "is an SFT run, not an arithmetic dataset" in out, out


def test_eval_and_bootstrap_record_their_settings(planning: dict[str, Path]) -> None:
    data, run, root = planning["data"], planning["run"], planning["root"]
    args = ["planning", "eval", run, "--data", data, "--out", root / "e", "reference_runs=0", "--samples", 1]
    code, first = cli(*args)
    assert code == 0, first
    before = digest(root / "e")
    code, out = cli(*args)
    assert code == 0 and "finished" in out and digest(root / "e") == before, out
    code, out = cli(*args[:-2], "--samples", 2)
    refused(code, out, "samples: 1 -> 2")
    boot = ["planning", "bootstrap", "--model", run, "--data", data, "--out", root / "b", "--samples", 1,
            "rounds=1", "limit=4", "eval_samples=1", "eval_limit=2", "reference_runs=0", "train.steps=1",
            "train.batch_size=4", "train.warmup=0", "train.tensorboard=false"]  # fmt: skip
    code, out = cli(*boot)
    assert code == 0, out
    before = digest(root / "b")
    code, out = cli(*boot, "rounds=2")
    refused(code, out, "rounds: 1 -> 2")
    assert digest(root / "b") == before
    code, out = cli("planning", "bootstrap", "--model", data, "--data", data, "--out", root / "b2")
    assert code == 2 and "is a planning dataset, not a planner training run" in out, out


def test_resume_skips_a_damaged_checkpoint(planning: dict[str, Path]) -> None:
    run, root = planning["run"], planning["root"]
    copy = root / "r-damaged"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "model")  # killed after writing its last checkpoint, which was damaged
    state = copy / "ckpt" / "step-00000004" / "trainer.pt"
    state.write_bytes(state.read_bytes()[:64])
    base = ["planning", "train", "--data", planning["data"], "--preset", "tiny", *TRAIN, "train.ckpt_every=2"]
    code, out = cli(*base, "--out", copy, "--steps", 4)
    assert code == 0, out
    assert "skipping the damaged checkpoint step-00000004" in out and "trainer.pt" in out, out
    assert "resuming from" in out and "step-00000002" in out, out
    steps = [json.loads(x)["step"] for x in (copy / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    a = (run / "model" / "model.safetensors").read_bytes()
    assert (copy / "model" / "model.safetensors").read_bytes() == a  # bit-identical to the unbroken run


def test_damaged_files_give_one_line(planning: dict[str, Path], tmp_path: Path) -> None:
    data, run = planning["data"], planning["run"]

    def broken(src: Path, rel: str, content: bytes | None = None) -> Path:
        dst = tmp_path / f"{src.name}-{rel.replace('/', '-')}"
        shutil.copytree(src, dst)
        f = dst / rel
        f.write_bytes(content if content is not None else f.read_bytes()[: max(1, f.stat().st_size // 2)])
        return dst

    cases = [
        (["planning", "stats", broken(data, "meta.json")], "meta.json is not valid JSON"),
        (["planning", "stats", broken(data, "data/train-00000-of-00001.parquet")], "is not a readable Parquet file"),
        (["planning", "eval", broken(run, "model/model.safetensors"), "--data", data], "not a readable safetensors"),
        (["planning", "eval", broken(run, "model/config.json"), "--data", data], "config.json is not valid JSON"),
        (["planning", "eval", broken(run, "model/vocab.json", b"[1, 2"), "--data", data], "vocab.json is not valid"),
        (["planning", "stats", broken(data, "run.json")], "run.json is not valid JSON"),
    ]
    for args, message in cases:
        code, out = cli(*args)
        assert code == 2 and message in out, (args, out)
        assert "Traceback" not in out and "file an issue" not in out and len(out.strip().splitlines()) == 1, out


def test_bad_input_is_refused_before_anything_is_written(planning: dict[str, Path], tmp_path: Path) -> None:
    data = planning["data"]
    cases = [
        (["arithmetic", "--out", tmp_path / "a", "--train", 0], "train must be >= 1"),
        (["planning", "train", "--data", data, "--out", tmp_path / "b", "train.lr=nan"], "finite number"),
        (["planning", "train", "--data", data, "--out", tmp_path / "c", "--steps", 5, "train.warmup=10"],
         "train.warmup must be in [0, train.steps]"),
        (["planning", "train", "--data", data, "--out", tmp_path / "d", "--preset", "huge"], "unknown model.preset"),
        (["planning", "train", "--data", data, "--out", tmp_path / "e", "--limit", -1], "limit"),
        (["planning", "eval", planning["run"], "--data", data, "--out", tmp_path / "f", "--limit", -1], "limit"),
        (["sft", "--train-data", data / "meta.json", "--out", tmp_path / "g", "limit=-1"], "limit"),
        (["planning", "generate", "maze", "--size", 2, "--train", 50, "--out", tmp_path / "h"], "at most 12 distinct"),
    ]  # fmt: skip
    for args, message in cases:
        code, out = cli(*args)
        assert code == 2 and message in out, (args, out)
        assert "Traceback" not in out, out
    assert list(tmp_path.iterdir()) == []


def test_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        code, out = cli(
            "planning", "generate", "maze", "--size", 4, "--train", 10, "--test", 2, "--out", tmp_path / "d"
        )
    finally:
        os.umask(old)
    assert code == 0, out
    for p in [tmp_path / "d", *(tmp_path / "d").rglob("*")]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o775 if p.is_dir() else 0o664), p


def test_killed_generation_leaves_no_workers(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "system2.cli", "planning", "generate", "maze", "--size", "12", "--train", "20000",
           "--test", "10", "--workers", "2", "--out", str(tmp_path / "d")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(children) < 2:
        time.sleep(0.2)
        children = _children(proc.pid)
    assert len(children) >= 2, "the workers never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)
    assert not any(_alive(c) for c in children)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


# ----- reasoning ----------------------------------------------------------------------------------------
def test_arithmetic_resumes_and_refuses(reasoning: dict[str, Path]) -> None:
    data = reasoning["data"]
    before = digest(data)
    code, out = cli("arithmetic", "--out", data, "--train", 16, "--test", 4, "--hard", 0)
    assert code == 0 and digest(data) == before, out
    code, out = cli("arithmetic", "--out", data, "--seed", 1, "--train", 10)  # once: new examples, no file changed
    refused(code, out, "seed: 0 -> 1", "train: 16 -> 10")
    code, out = cli("arithmetic", "--out", data, "--train", 16, "--test", 4, "--hard", 0, "modulus=11")
    refused(code, out, "modulus: 20 -> 11")
    assert digest(data) == before


def test_sft_copy_with_other_settings_is_refused(reasoning: dict[str, Path]) -> None:
    m0, root, data = reasoning["m0"], reasoning["root"], reasoning["data"]
    copy = root / "m0-copy"
    shutil.copytree(m0, copy)
    before = digest(copy)
    base = ["sft", "--train-data", data / "train.parquet", "--eval-data", data / "test.parquet", "--out", copy]
    code, out = cli(*base, "--steps", 20, *SFT)  # the same settings: the finished result, nothing redone
    assert code == 0 and digest(copy) == before, out
    code, out = cli(*base, "--limit", 5, "--steps", 1000, *SFT, "tiny.d_model=16")
    refused(code, out, "limit: 0 -> 5", "train.steps: 20 -> 1000", "tiny.d_model: 32 -> 16")
    assert digest(copy) == before


RECIPES = {
    "irpo": [
        "iterations=1",
        "samples=2",
        "pairs_per_question=1",
        "train.steps=1",
        "train.warmup=0",
        "train.batch_size=1",
    ],
    "expert-iteration": ["rounds=1", "samples=2", "train.steps=1", "train.warmup=0", "train.batch_size=1"],
    "ppo": ["iterations=1", "prompts_per_iteration=4", "minibatch_size=4", "ppo_epochs=1"],
    "rcrl": ["rounds=1", "samples=2", "train.steps=1", "train.warmup=0", "train.batch_size=2"],
    "orm": ["samples=2", "eval_samples=2", "train.steps=1", "train.warmup=0", "train.batch_size=4"],
}
CHANGE = {"irpo": "samples=3", "expert-iteration": "samples=3", "ppo": "kl_coef=0.1", "rcrl": "rounds=2",
          "orm": "samples=3"}  # fmt: skip


@pytest.mark.parametrize("command", list(RECIPES))
def test_recipe_rerun_resumes_or_refuses(reasoning: dict[str, Path], command: str) -> None:
    data, root = reasoning["data"], reasoning["root"]
    out_dir = root / command
    args = [command, "--model", reasoning["m0"] / "model", "--train-data", data / "train.parquet", "--eval-data",
            data / "test.parquet", "--out", out_dir, "--limit", 4, "max_len=48", "max_new_tokens=24",
            "train.tensorboard=false" if command != "ppo" else "batch_size=8", *RECIPES[command]]  # fmt: skip
    code, first = cli(*args)
    assert code == 0, first
    before = digest(out_dir)
    code, again = cli(*args)
    assert code == 0 and digest(out_dir) == before, again
    code, out = cli(*args, CHANGE[command])
    key, value = CHANGE[command].split("=")
    refused(code, out, key)
    assert digest(out_dir) == before


def test_a_damaged_language_model_gives_one_line(reasoning: dict[str, Path], tmp_path: Path) -> None:
    train = reasoning["data"] / "train.parquet"
    for name, message in (("model.safetensors", "is not a readable safetensors file"),
                          ("tokenizer.json", "holds no readable tokenizer"),
                          ("config.json", "config.json is not valid JSON")):  # fmt: skip
        model = tmp_path / name
        shutil.copytree(reasoning["m0"] / "model", model)
        (model / name).write_bytes((model / name).read_bytes()[:40])
        code, out = cli("irpo", "--model", model, "--train-data", train, "--out", tmp_path / f"run-{name}")
        assert code == 2 and message in out and len(out.strip().splitlines()) == 1, out
