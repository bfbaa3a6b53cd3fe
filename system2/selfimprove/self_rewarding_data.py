"""The inputs of a Self-Rewarding run (arXiv 2401.10020, Sec. 3.1), read and checked before any compute: seed IFT
and EFT rows, held-out test prompts and judge pairs, and where new prompts come from (a local prompt pool, or the
instruction world's template sampler with the settings its dataset directory recorded). Errors name the file, the
row or field, and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.config import ConfigError, from_dict
from system2.judges.prompts import TEMPLATES
from system2.runs import read_run
from system2.tasks import instructions
from system2.tasks.instructions_oracle import parse_instruction


@dataclass(frozen=True)
class SeedData:
    """Everything a run reads. ``pool`` is None when the template sampler makes the prompts (``world`` and
    ``template`` then say how); ``excluded``: instructions no new prompt may repeat (seed, test and judge-pair ones)."""

    ift: list[dict[str, str]]
    eft: list[dict[str, str]]
    test: list[dict[str, Any]]  # id, prompt, instruction
    pairs: list[dict[str, Any]]  # instruction, response_a, response_b, score_a, score_b
    pool: list[str] | None
    world: instructions.InstructionConfig | None
    template: str
    excluded: frozenset[str]
    meta: list[dict[str, str]] = field(default_factory=list)  # meta-judge seed rows (Meta-Rewarding), trained with M1


def _read(what: str, path: str, reader: Any) -> Any:
    if not path:
        raise ConfigError(f"{what}: no file given; set {what}=FILE or data=DIR")
    try:
        return reader(path)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from None


def _instructions(path: str) -> list[str]:
    """The ``instruction`` column of a file, where it has one (the instruction world's files do)."""
    return [r["instruction"] for r in instructions.read_table(path) if isinstance(r.get("instruction"), str)]


def read_seed_data(cfg: Any) -> SeedData:
    """The inputs ``cfg`` (a ``SelfRewardingConfig``) names, checked against each other and against its settings."""
    ift = _read("ift", cfg.file("ift", "ift.parquet"), instructions.read_ift)
    eft = _read("eft", cfg.file("eft", "eft.parquet"), instructions.read_eft)
    template = TEMPLATES.get(cfg.judge.template, cfg.judge.template)
    head = template.split("{instruction}")[0]
    for i, r in enumerate(eft):
        if not r["prompt"].startswith(head):
            raise ConfigError(f"eft: row {i}'s prompt does not start as judge.template={cfg.judge.template!r} "
                              f"prompts do ({head[:40]!r}): set judge.template to the template the EFT data was "
                              "written with, so the judge is asked as it was taught")  # fmt: skip
    test_prompts = _read("test_prompts", cfg.file("test_prompts", "test_prompts.parquet"), instructions.read_prompts)
    test_prompts = test_prompts[: cfg.eval_limit or None]
    test = [{"id": i, "prompt": p, "instruction": instructions.instruction_of(p)} for i, p in enumerate(test_prompts)]
    pairs_path = cfg.file("judge_pairs", "pairs.parquet")
    pairs = _read("judge_pairs", pairs_path, instructions.read_judge_pairs) if pairs_path else []
    pairs = pairs[: cfg.eval_limit or None]
    if cfg.eval_oracle:
        for i, r in enumerate(test):
            try:
                parse_instruction(r["instruction"])
            except ValueError:
                raise ConfigError(f"test_prompts: prompt {i} ({r['instruction'][:60]!r}) is not an instruction of the "
                                  "instruction world, which the oracle scores: set eval_oracle=false for other "
                                  "data") from None  # fmt: skip
    excluded = {instructions.instruction_of(r["prompt"]) for r in ift} | {r["instruction"] for r in test}
    excluded |= {r["instruction"] for r in pairs}
    if cfg.data:
        for name in ("ift", "eft"):
            path = cfg.file(name, f"{name}.parquet")
            excluded |= set(_instructions(path))
    pool, world, template_name = None, None, "compact"
    need = cfg.iterations * cfg.prompts_per_iteration
    if cfg.prompts:
        pool = [p for p in _read("prompts", cfg.prompts, instructions.read_prompts)
                if instructions.instruction_of(p) not in excluded]  # fmt: skip
        if len(pool) < need:
            raise ConfigError(f"prompts: {cfg.prompts} has {len(pool)} prompts that are not seed or test prompts, "
                              f"but {cfg.iterations} iterations x prompts_per_iteration={cfg.prompts_per_iteration} "
                              f"need {need}: give a larger pool or lower prompts_per_iteration")  # fmt: skip
    elif cfg.iterations:
        record = read_run(cfg.data) if cfg.data and Path(cfg.data).is_dir() else None
        if record is None or record.get("kind") != "instruction-dataset":
            raise ConfigError("new prompts come from a prompt pool or from the instruction world's sampler: set "
                              "prompts=FILE, or data=DIR made by system2 instructions (its run.json holds the "
                              "sampler's settings)")  # fmt: skip
        settings = record["settings"]
        world = from_dict(instructions.InstructionConfig, settings.get("world", {}))
        template_name = settings.get("template", "compact")
    return SeedData(ift, eft, test, pairs, pool, world, template_name, frozenset(excluded))
