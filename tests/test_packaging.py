"""The install contract: pyproject.toml gives every dependency a range (or an exact pin), and constraints.txt
pins with == exactly what `make` installs and tests, for every runtime and dev dependency, inside those
ranges."""

from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    """The requirements that apply to this interpreter, by normalized name."""
    env = default_environment()
    reqs = [Requirement(x) for x in lines if x.strip() and not x.lstrip().startswith("#")]
    return {_norm(r.name): r for r in reqs if r.marker is None or r.marker.evaluate(env)}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_declared_dependency_has_a_range_or_a_pin():
    project = _project()
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    for group, lines in groups.items():
        for name, r in _requirements(lines).items():
            ops = {s.operator for s in r.specifier}
            assert ops & {">=", "==", "~=", ">"}, f"{group}: {name} has no lower bound or pin ({r or name})"


def test_runtime_dependencies_are_ranges_not_pins():
    """A pin in pyproject would make `pip install system2` replace what a user's environment has."""
    for name, r in _requirements(_project()["dependencies"]).items():
        assert all(s.operator != "==" for s in r.specifier), f"{name} is pinned in pyproject ({r}): give it a range"


def test_constraints_pin_every_runtime_and_dev_dependency_inside_its_range():
    project = _project()
    declared = {**_requirements(project["dependencies"]), **_requirements(project["optional-dependencies"]["dev"])}
    pins = _requirements((ROOT / "constraints.txt").read_text().splitlines())
    missing, extra = sorted(set(declared) - set(pins)), sorted(set(pins) - set(declared))
    assert not missing and not extra, f"constraints.txt: pins missing for {missing}, pins of undeclared {extra}"
    for name, pin in pins.items():
        (spec,) = pin.specifier
        assert spec.operator == "==", f"constraints.txt: {name} is not pinned with == ({pin})"
        assert declared[name].specifier.contains(spec.version, prereleases=True), (
            f"constraints.txt: {name}=={spec.version} is outside pyproject's {declared[name]}"
        )


def test_make_installs_the_pinned_cpu_torch_first():
    pins = _requirements((ROOT / "constraints.txt").read_text().splitlines())
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()  # the CPU build, before everything else
    assert str(pins["torch"].specifier) == "==2.13.0"


def test_the_vllm_extra_keeps_its_pin():
    (vllm,) = _requirements(_project()["optional-dependencies"]["vllm"]).values()
    assert [s.operator for s in vllm.specifier] == ["=="]
