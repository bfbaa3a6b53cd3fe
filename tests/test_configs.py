"""Every shipped YAML recipe loads into its config class (unknown keys would fail here)."""

from pathlib import Path

import pytest

from system2.config import load_config
from system2.planning.recipes import PlannerTrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "planning").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_planning_recipe_loads(path):
    cfg = load_config(PlannerTrainConfig, path)
    cfg.validate()
    assert cfg.mode in ("solution", "search", "dualformer")


def test_there_are_recipes():
    assert len(CONFIGS) >= 4
