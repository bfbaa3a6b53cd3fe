"""Config loading (YAML + overrides, unknown keys) and atomic writes."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from system2.config import ConfigError, load_config, parse_overrides, to_dict
from system2.runs import atomic_path, atomic_write_text


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)


@dataclass
class Cfg:
    name: str = "run"
    steps: int = 10
    amp: bool = False
    mode: Literal["fast", "slow"] = "slow"
    limit: int | None = None
    optim: Optim = field(default_factory=Optim)


def test_defaults_file_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 20\noptim:\n  lr: 0.01\n")
    cfg = load_config(Cfg, f, ["optim.betas=[0.8, 0.9]", "amp=true", "limit=none", "mode=fast", "steps=30"])
    assert cfg == Cfg(steps=30, amp=True, mode="fast", limit=None, optim=Optim(lr=0.01, betas=(0.8, 0.9)))
    assert to_dict(cfg)["optim"] == {"lr": 0.01, "betas": [0.8, 0.9]}
    assert load_config(Cfg, overrides=["limit=5"]).limit == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["step=3"], "unknown config key 'step': did you mean 'steps'"),
        (["optim.lrr=3"], "unknown config key 'optim.lrr': did you mean 'lr'"),
        (["steps=abc"], "expected an integer"),
        (["steps=1.5"], "expected an integer"),
        (["amp=maybe"], "true/false"),
        (["mode=medium"], "not one of"),
        (["optim.betas=[1]"], "expected 2 values"),
        (["steps"], "key=value"),
    ],
)
def test_bad_configs_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, overrides=overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Cfg, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Cfg, tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Cfg, tmp_path / "bad.yaml")


def test_parse_overrides_nests():
    assert parse_overrides(["a.b=1", "a.c=2", "d=x=y"]) == {"a": {"b": "1", "c": "2"}, "d": "x=y"}


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_partial_nested_override_keeps_the_parents_defaults():
    """``train.log_every=5`` must change one field of the recipe's own nested default, not reset the
    nested config to its class defaults."""

    @dataclass
    class Inner:
        lr: float = 1e-3
        steps: int = 10

    @dataclass
    class Outer:
        inner: Inner = field(default_factory=lambda: Inner(lr=5e-5, steps=200))

    cfg = load_config(Outer, overrides=["inner.steps=7"])
    assert cfg.inner == Inner(lr=5e-5, steps=7)
    assert load_config(Outer).inner == Inner(lr=5e-5, steps=200)
