"""What a job prints: progress lines in a log (a file or a pipe), bars in a terminal, uncut tables."""

import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from system2.console import Progress

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(
    r"^(?P<label>.+): (?P<word>progress|done|stopped) (?P<done>\d+)/(?P<total>\d+) \(\d+%\) in (\d+h)?(\d+m)?\d+s"
    r"(, about (\d+h)?(\d+m)?\d+s left)?(  .*)?$"
)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def test_generate_prints_progress_lines_to_a_pipe_before_the_table(tmp_path):
    cmd = [sys.executable, "-m", "system2.cli", "planning", "generate", "maze", "--size", "5", "--train", "200",
           "--test", "20", "--out", str(tmp_path / "mazes")]  # fmt: skip
    proc = subprocess.run(
        cmd, env=_env(SYSTEM2_PROGRESS_SECONDS="0"), capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    progress = [i for i, line in enumerate(lines) if line.startswith("generate maze 5x5: ")]
    assert progress, proc.stdout
    for i in progress:
        m = LINE.match(lines[i])
        assert m and m["total"] == "220", lines[i]
    assert LINE.match(lines[progress[-1]])["word"] == "done"
    assert lines[progress[-1]].startswith("generate maze 5x5: done 220/220 (100%) in ")
    table = next(i for i, line in enumerate(lines) if "┏" in line)
    assert progress[-1] < table
    assert "\x1b[" not in proc.stdout  # no terminal codes in a log


def test_a_wide_table_is_not_cut_in_a_pipe():
    code = textwrap.dedent(
        """
        from system2.console import print_table
        rows = [{f"column_{i:02d}_of_a_wide_table": f"value {i} " * 3 for i in range(9)}]
        print_table("a wide table", rows + [{"column_00_of_a_wide_table": 1.5}])
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) > 200  # wider than both 80 and the default log width
    for i in range(9):
        assert f"column_{i:02d}_of_a_wide_table" in out
    assert "value 8 value 8 value 8" in out


def test_disabled_progress_prints_nothing(capsys, monkeypatch):
    monkeypatch.setenv("SYSTEM2_PROGRESS_SECONDS", "0")
    with Progress(10, "quiet", enabled=False) as p:
        p.update(3, info="x")
        p.advance(2)
    p.close()
    assert capsys.readouterr().out == ""


def test_log_lines_nesting_and_a_stopped_phase(capsys, monkeypatch):
    monkeypatch.setenv("SYSTEM2_PROGRESS_SECONDS", "1000")
    with Progress(3, "outer") as outer:
        with Progress(5, "inner") as inner:  # short and nested: nothing in the log
            inner.advance(5)
        outer.advance(3, info="loss 0.5")
    with pytest.raises(RuntimeError), Progress(4, "broken") as p:
        p.advance()
        raise RuntimeError("boom")
    lines = capsys.readouterr().out.splitlines()
    assert [LINE.match(line)["word"] for line in lines] == ["done", "stopped"], lines
    assert lines[0].startswith("outer: done 3/3 (100%) in 0s") and lines[0].endswith("  loss 0.5")
    assert lines[1].startswith("broken: stopped 1/4 (25%)")


def test_nested_bars_in_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    with Progress(2, "outer") as outer:
        with Progress(4, "inner") as inner:  # rich allows one live display: both bars share it
            inner.advance(4)
        outer.advance(2)
    with Progress(1, "next") as p:  # a later phase starts a display of its own
        p.advance()
    out = term.getvalue()
    assert "outer" in out and "next" in out


def test_training_prints_progress_lines_to_a_log(tmp_path, capsys, monkeypatch):
    from system2.nn.encdec import EncDecConfig, EncoderDecoder
    from system2.planning.data import PlanningTrainData, load_examples
    from system2.planning.generate import GenerateConfig, generate_dataset
    from system2.planning.losses import sequence_loss
    from system2.train import TrainConfig, train

    data = tmp_path / "mazes"
    generate_dataset(GenerateConfig(width=5, height=5, train=32, test=4, seed=0), data, progress=False)
    examples = load_examples(data, "train")
    torch.manual_seed(0)
    model = EncoderDecoder(EncDecConfig.preset("tiny", len(examples.vocab)))
    capsys.readouterr()
    monkeypatch.setenv("SYSTEM2_PROGRESS_SECONDS", "0")
    cfg = TrainConfig(steps=4, batch_size=8, warmup=1, log_every=2, ckpt_every=4, tensorboard=False)
    train(model, PlanningTrainData(examples, "search"), sequence_loss, cfg, tmp_path / "run")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("train: ")]
    assert len(lines) == 3, lines  # steps 2 and 4, then the final line
    for line in lines:
        assert LINE.match(line), line
        assert re.search(r"  loss \d+\.\d{4}  [\d,]+ tok/s$", line), line
    assert lines[0].startswith("train: progress 2/4 (50%) in ")
    assert lines[-1].startswith("train: done 4/4 (100%) in ")


def test_table_cells_print_as_written_and_markup_only_where_asked(capsys) -> None:
    from system2.console import print_table

    print_table("t", [{"claim": "[abstract] note", "verdict": "[green]held"}], markup=["verdict"])
    out = capsys.readouterr().out
    assert "[abstract] note" in out and "held" in out and "[green]" not in out
