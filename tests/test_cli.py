"""The command line end to end: generate, stats, show, and clear errors on bad input."""

import json

from typer.testing import CliRunner

from system2 import __version__
from system2.cli import app

runner = CliRunner()


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.strip() == f"system2 {__version__}"
    for args in (
        ["--help"],
        ["planning", "--help"],
        ["planning", "generate", "--help"],
        ["planning", "show", "--help"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output


def test_generate_stats_show(tmp_path):
    out = tmp_path / "mazes"
    args = ["planning", "generate", "maze", "--size", "5", "--train", "30", "--test", "10", "--out", str(out)]
    result = runner.invoke(app, [*args, "--seed", "1", "--workers", "2", "shard_size=16"])
    assert result.exit_code == 0, result.output
    assert "30 tasks" in result.output
    stats = runner.invoke(app, ["planning", "stats", str(out), "--json"])
    assert json.loads(stats.output)["splits"]["test"]["tasks"] == 10
    png = tmp_path / "m.png"
    shown = runner.invoke(app, ["planning", "show", str(out), "--index", "3", "--out", str(png)])
    assert shown.exit_code == 0, shown.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sokoban_from_a_config_file(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("train: 6\ntest: 2\nnum_walls: 2\nmax_trace_tokens: 4000\n")
    out = tmp_path / "s"
    result = runner.invoke(app, ["planning", "generate", "sokoban", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    png = tmp_path / "s.png"
    assert runner.invoke(app, ["planning", "show", str(out), "--split", "train", "--out", str(png)]).exit_code == 0
    assert png.exists()


def test_errors_are_clear(tmp_path):
    cases = [
        (["planning", "generate", "grid", "--out", str(tmp_path / "a")], "unknown environment"),
        (["planning", "generate", "maze", "--size", "1", "--out", str(tmp_path / "b")], "too small"),
        (["planning", "generate", "maze", "--out", str(tmp_path / "c"), "trian=5"], "did you mean 'train'"),
        (["planning", "stats", str(tmp_path)], "not a planning dataset"),
        (["planning", "show", str(tmp_path), "--out", str(tmp_path / "x.png")], "not a planning dataset"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_show_index_out_of_range(tmp_path):
    out = tmp_path / "m"
    runner.invoke(
        app, ["planning", "generate", "maze", "--size", "4", "--train", "5", "--test", "2", "--out", str(out)]
    )
    result = runner.invoke(app, ["planning", "show", str(out), "--index", "9", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "out of range" in result.output
