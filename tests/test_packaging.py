"""The install contract: constraints.txt pins exactly what `make` tests, inside pyproject's ranges, and
every other dependency is pinned exactly."""

from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    env = default_environment()
    reqs = [Requirement(x) for x in lines if x.strip() and not x.lstrip().startswith("#")]
    return {r.name: r for r in reqs if r.marker is None or r.marker.evaluate(env)}


def test_constraints_pin_the_ranged_dependencies_inside_their_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = _requirements(project["dependencies"])
    pins = _requirements((ROOT / "constraints.txt").read_text().splitlines())
    ranged = {name for name, r in deps.items() if not all(s.operator == "==" for s in r.specifier)}
    assert ranged == set(pins), "every ranged dependency needs an exact pin in constraints.txt, and only those"
    for name, pin in pins.items():
        (spec,) = pin.specifier
        assert spec.operator == "==", name
        assert deps[name].specifier.contains(spec.version), f"{name}=={spec.version} is outside {deps[name]}"
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()  # the CPU build is installed first
    assert pins["torch"].specifier.contains("2.13.0")
    for extra, lines in project["optional-dependencies"].items():
        for name, r in _requirements(lines).items():
            assert [s.operator for s in r.specifier] == ["=="], f"{extra}: {name} is not pinned"
