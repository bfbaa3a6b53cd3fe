"""Help texts and documented command lines: every command with a config lists all its ``key=value``
settings with a meaning, every ``key=value`` in any help loads into that command's config, every
``system2 ...`` line in the README, the docs, the Makefile and the configs' comments uses only options
and keys that exist, help shows no ``<bool>`` after flags, and the only flags are the agreed ones."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperArgument, TyperOption
from typer.testing import CliRunner

from system2.cli import app
from system2.cli.settings_help import field_comment, flag_keys, load_class, settings
from system2.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
# the flags the command line keeps; every other setting is key=value only
ALLOWED = {
    *("--out", "--data", "--model", "--train-data", "--eval-data", "--task", "--config", "--seed", "--seeds"),
    *("--scale", "--workers", "--train", "--test", "--hard", "--size", "--mode", "--preset", "--samples"),
    *("--split", "--index", "--limit", "--steps", "--restart", "--version", "--help"),
}
ALLOWED_HERE = {("planning", "stats"): {"--json"}, ("btx", "train"): {"--domain"}}
# a key=value token: a lower-case (dotted) key, not part of a path or an option
TOKEN = re.compile(r"(?<![\w./=-])([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)=(\S*)")
# a command line: "system2 CMD ..." or "-m system2.cli CMD ..." (also "$(BIN)/system2 CMD ...")
COMMAND_LINE = re.compile(r"(?<![\w.-])system2(?:\.cli)?[ \t]+([a-z][^\n]*)")


def all_commands(group: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, click command) for the root, every group and every command."""
    group = group or typer.main.get_command(app)
    yield path, group
    for name, cmd in getattr(group, "commands", {}).items():
        if hasattr(cmd, "commands"):
            yield from all_commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


COMMANDS = dict(all_commands())


def config_of(cmd: Any) -> type | None:
    return cmd.settings_class() if hasattr(cmd, "settings_class") else None


def help_text(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return re.sub(r"\x1b\[[0-9;]*m", "", result.output)


def tokens(text: str) -> list[str]:
    """Every key=value token in ``text`` (trailing punctuation of the prose around it dropped)."""
    return [f"{k}={v.rstrip('.,;:)`')}" for k, v in TOKEN.findall(text)]


def test_commands_with_a_config_are_the_expected_ones():
    with_config = {" ".join(p): c.__name__ for p, c in ((p, config_of(c)) for p, c in COMMANDS.items()) if c}
    assert with_config == {
        "demo": "DemoConfig",
        "arithmetic": "ArithmeticDataConfig",
        "quantities": "QuantityDataConfig",
        "instructions": "InstructionDataConfig",
        "thought-data": "ThoughtDataConfig",
        "lift-data": "LIFTDataConfig",
        "calibrate-quantities": "CalibrationConfig",
        "sft": "SFTConfig",
        "irpo": "IRPOConfig",
        "expert-iteration": "ExpertIterationConfig",
        "ppo": "PPOConfig",
        "rcrl": "RCRLConfig",
        "orm": "ORMConfig",
        "dualformer-lm": "DualformerLMConfig",
        "self-rewarding": "SelfRewardingConfig",
        "meta-rewarding": "MetaRewardingConfig",
        "tpo": "TPOConfig",
        "lift": "LIFTConfig",
        "planning generate": "GenerateConfig",
        "planning train": "PlannerTrainConfig",
        "planning curve": "CurveConfig",
        "planning eval": "PlannerEvalConfig",
        "planning bootstrap": "BootstrapConfig",
        "repro cope-arm": "ArmConfig",
        "repro cope-lm-arm": "CopeLMConfig",
        "repro cope-lm": "CopeLMScale",
        "repro reverse-pretrain": "ReversePretrainConfig",
        "repro irpo": "IRPOScale",
        "repro rl-reasoning": "RLScale",
        "repro dualformer-llm": "DualLMScale",
        "repro self-rewarding": "SelfRewardingScale",
        "repro meta-rewarding": "MetaRewardingScale",
        "repro tpo": "TPOScale",
        "repro lift": "LIFTScale",
        **{f"btx {stage}": "BTXConfig" for stage in ("branch", "train", "mix", "finetune", "evaluate", "run")},
    }


@pytest.mark.parametrize("path", [p for p, c in COMMANDS.items() if config_of(c)], ids=" ".join)
def test_help_lists_every_setting_with_type_default_and_meaning(path):
    cls = config_of(COMMANDS[path])
    text = help_text(path)
    assert "Settings (KEY=VALUE)" in text
    rows = settings(cls)
    assert rows
    lines = {line.split()[1]: line for line in text.splitlines() if len(line.split()) > 2 and line.startswith("│")}
    for s in rows:
        assert s.meaning, f"{cls.__name__}.{s.key} has no trailing # comment in its dataclass"
        assert s.key in lines, f"{s.key} is missing from the help of {' '.join(path)}"
        assert s.type in lines[s.key] and s.meaning.split()[0] in lines[s.key]
        assert f"default: {s.default}" in lines[s.key]


def test_help_without_rich_lists_the_settings_too(monkeypatch):
    import typer.core

    import system2.cli.common

    monkeypatch.setattr(typer.core, "HAS_RICH", False)
    monkeypatch.setattr(system2.cli.common, "HAS_RICH", False)
    text = help_text(("planning", "bootstrap"))
    assert "Settings (KEY=VALUE):" in text and "<bool>" not in text
    assert re.search(r"^  train\.lr +<float> peak learning rate +\[default: 0\.001\]$", text, re.M)
    assert re.search(r"^  seed +<int> seed of the sampled responses +\[default: 0; flag\s+--seed\]$", text, re.M)


def test_settings_follow_the_dataclasses():
    from system2.planning.recipes import PlannerTrainConfig
    from system2.selfimprove.expert_iteration import ExpertIterationConfig
    from system2.selfimprove.irpo import IRPOConfig
    from system2.selfimprove.loop import LoopConfig

    rows = {s.key: s for s in settings(PlannerTrainConfig)}
    assert rows["train.lr"].type == "float" and rows["mode"].type == "solution|search|dualformer"
    assert rows["drop.probs"].type == "5 floats" and rows["train.tensorboard"].default == "true"
    assert rows["data"].default == "''" and rows["train.steps"].default == "1000"
    irpo = {s.key: s for s in settings(IRPOConfig)}
    assert irpo["train.steps"].default == "200"  # the recipe's own default for the nested config
    assert irpo["temperatures"].type == "list of float" and irpo["temperatures"].default == "[1.0]"
    # inherited fields take the base class's comment; a redeclared field keeps its own
    assert field_comment(IRPOConfig, "limit") == field_comment(LoopConfig, "limit") != ""
    assert "paper" in field_comment(ExpertIterationConfig, "rounds")
    keys = [s.key for s in settings(PlannerTrainConfig)]
    assert flag_keys({"steps": "--steps", "seed": "--seed", "data": "--data"}, keys) == {
        "train.steps": "--steps",
        "train.seed": "--seed",
        "data": "--data",
    }


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "system2")
def test_every_key_value_in_a_help_loads_into_the_commands_config(path):
    cls = config_of(COMMANDS[path])
    found = tokens(help_text(path))
    if cls is None:
        assert found == [], f"{' '.join(path)} has no settings, yet its help shows {found}"
    for token in found:
        load_config(cls, None, [token])  # ConfigError on an unknown key or a bad value


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "system2")
def test_help_shows_no_bool_type_after_flags(path):
    text = help_text(path)
    assert "<bool>" not in text
    assert "--help" in text


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "system2")
def test_examples_in_help_run_as_written(path):
    for line in COMMAND_LINE.findall(help_text(path)):
        check_command_line(line)


def test_only_the_agreed_flags_exist():
    for path, cmd in COMMANDS.items():
        allowed = ALLOWED | ALLOWED_HERE.get(path, set())
        for param in cmd.params:
            if isinstance(param, TyperOption):
                extra = set(param.opts + param.secondary_opts) - allowed
                assert not extra, f"system2 {' '.join(path)} has {extra}: make it a key=value setting"


# --- documented command lines --------------------------------------------------------------------------


def check_command_line(line: str) -> None:
    """``line`` is what follows ``system2``: its (sub)commands, options and key=value settings must exist.

    Options must be the command's own, key=value tokens must load into its config (with ``--config``'s
    YAML file when it is in the repository), and a bare word past the command's own arguments would be
    read as a malformed key=value, so it is an error too. ALL-CAPS words are placeholders."""
    words = shlex.split(line, comments=True)
    path: tuple[str, ...] = ()
    while hasattr(COMMANDS[path], "commands"):
        if not words or words[0].startswith("-"):
            return  # a group's own options (system2 --help)
        name = words.pop(0)
        if name.isupper():  # system2 repro NAME --scale small: some command of the group must take it
            subs = [(*path, n) for n in COMMANDS[path].commands]
            errors = []
            for sub in subs:
                try:
                    check_command_line(" ".join(shlex.quote(w) for w in (*sub, *words)))
                    return
                except AssertionError as e:
                    errors.append(str(e))
            raise AssertionError(f"no command of system2 {' '.join(path)} takes {words}: {errors}")
        assert (*path, name) in COMMANDS, f"system2 {' '.join(path)} has no command {name!r} (in {line!r})"
        path = (*path, name)
    cmd, where = COMMANDS[path], f"system2 {' '.join(path)}"
    options = {o: p for p in cmd.params if isinstance(p, TyperOption) for o in p.opts + p.secondary_opts}
    fixed = [p for p in cmd.params if isinstance(p, TyperArgument) and p.nargs == 1]
    cls = config_of(cmd)
    overrides: list[str] = []
    config_file = None
    while words:
        word = words.pop(0)
        if word.startswith("--"):
            name, _, value = word.partition("=")
            if name == "--help":
                continue
            assert name in options, f"{where} has no option {name} (in {line!r})"
            if not options[name].is_flag and not value:
                assert words, f"{where}: {name} needs a value (in {line!r})"
                value = words.pop(0)
            if name == "--config" and (ROOT / value).is_file():
                config_file = ROOT / value
        elif fixed:
            fixed.pop(0)
        elif TOKEN.fullmatch(word):
            assert cls is not None, f"{where} takes no key=value settings (in {line!r})"
            overrides.append(word)
        else:
            assert word.isupper() or "|" in word or "..." in word, f"{where}: stray word {word!r} (in {line!r})"
    if cls is not None:
        try:
            load_config(cls, config_file, overrides)
        except ConfigError as e:
            raise AssertionError(f"{where}: {e} (in {line!r})") from None


def documented_command_lines() -> list[tuple[str, str]]:
    """(file, text after ``system2``) for every command line in the README's and docs' code (blocks and
    inline), the Makefile and the comments of configs/*.yaml; backslash continuations are joined."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
        inline = re.findall(r"(?<!`)`([^`]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
        for code in [*blocks, *inline]:
            code = re.sub(r"\\\n\s*", " ", code)
            found += [(str(doc.relative_to(ROOT)), line) for line in COMMAND_LINE.findall(code)]
    makefile = re.sub(r"\\\n\s*", " ", (ROOT / "Makefile").read_text())
    found += [("Makefile", line) for line in COMMAND_LINE.findall(makefile)]
    for yaml_file in sorted((ROOT / "configs").rglob("*.yaml")):
        comments = "\n".join(m for m in re.findall(r"^\s*#(.*)$", yaml_file.read_text(), re.M))
        comments = re.sub(r"\\\n\s*", " ", comments)
        found += [(str(yaml_file.relative_to(ROOT)), line) for line in COMMAND_LINE.findall(comments)]
    return found


DOCUMENTED = documented_command_lines()


def test_the_docs_show_command_lines():
    files = {f for f, _ in DOCUMENTED}
    assert {"README.md", "docs/planning.md", "docs/selfimprove.md", "docs/cope.md", "Makefile"} <= files
    assert any(f.startswith("configs/") for f in files)


@pytest.mark.parametrize(("where", "line"), DOCUMENTED, ids=[f"{f}: {line[:50]}" for f, line in DOCUMENTED])
def test_documented_command_lines_use_existing_options_and_keys(where, line):
    check_command_line(line)


def test_docs_launch_modules_only_through_the_cli():
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "configs").rglob("*.yaml")]:
        stale = re.findall(r"-m system2\.(?!cli\b)[\w.]+", doc.read_text())
        assert not stale, f"{doc.name}: {stale}: launch it as system2 ... (or -m system2.cli ...)"


def test_checker_catches_what_it_should():
    for bad in (
        "planning generate sokoban --boxes 2 --out d",  # a flag that is a key=value now
        "irpo --model m rounds=3",  # irpo's key is iterations
        "planning bootstrap --rounds 3",
        "planning stats DIR train=3",  # no settings
        "repro nothing",
        "sft --out o limit=many",
    ):
        with pytest.raises(AssertionError):
            check_command_line(bad)
    check_command_line("planning generate sokoban --size 7 --out d num_boxes=2 num_walls=2")
    check_command_line("repro NAME --scale small --seeds 3")
    assert load_class("system2.demo:DemoConfig").__name__ == "DemoConfig"
