"""The TPO world's files (Thought Preference Optimization, arXiv 2410.10630; docs/tpo.md): the instruction world's
list families and the thought families of ``thought_world``, with seed data for M0 and the reward model.

The paper starts from Llama-3-8B-Instruct, which answers well directly, writes worse answers when first told to
think (AlpacaEval LC 24.9 direct vs 17.3 with the thought prompt, Table 1), yet can already reason. A tiny model has
to be given all three, so M0's seed data (``ift``) holds, ours:

- **direct** examples: ``ACT: x ->`` answered with the oracle-best answer;
- a few **format** examples: ``THINK: x ->`` answered ``T: <filler> R: <answer>``, with a filler thought that helps
  nothing ("let me think"), so M0 knows the format but not what to think;
- **worked** examples (thought families where a scratchpad helps): ``WORK: x ->`` answered ``T: <a correct
  scratchpad> R: <answer>`` (``thought_world.worked_thought``): working a problem out and answering from the work,
  the skill an LLM has from pretraining, never shown under ``THINK``. Whether TPO makes THINK use it is the question.
  (A first design wrote the scratchpad alone, with no answer after it: the thoughts then never held a partial
  result, docs/tpo.md.)

``rm_pairs`` are oracle-labelled preference pairs (two answers of different oracle scores, the better one chosen) for
the reward model that judges (the ArmoRM analogue), ``rm_eval`` held-out ones for its accuracy; ``test_prompts`` are
held-out instructions with their family.
Every split draws its instructions disjoint from the earlier ones (test first); the same settings give the same files.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.tasks import instructions_oracle as lists
from system2.tasks import thought_world as tw
from system2.tasks.instructions import InstructionConfig, act_prompt, draw_instructions
from system2.tasks.instructions_oracle import CHECKS
from system2.tasks.thoughts import thought_prompt

LIST_FAMILIES = tuple(lists.FAMILIES)
FAMILIES = (*LIST_FAMILIES, *tw.THOUGHT_FAMILIES)  # every family a TPO world can draw
DEFAULT_FAMILIES = ("numbers", "letters", "words", "sum", "sort", "lookup", "copy", "upper")
FILLERS = ("let me think", "ok", "hmm let me see", "thinking", "let me answer")  # thoughts that help nothing
WORK = "WORK: {instruction} ->"  # the worked-scratchpad prompt (ours)


def family_of(instruction: str) -> str | None:
    """The family of an instruction of either world; None for any other text."""
    try:
        return tw.family_of(instruction) or lists.parse_instruction(instruction).family.name
    except ValueError:
        return None


def respond(instruction: str, defects: Iterable[str] = (), rng: random.Random | None = None) -> str:
    """A direct answer with the named defects, for an instruction of either world (no defects: oracle-best)."""
    if tw.family_of(instruction):
        return tw.respond(instruction, defects, rng)
    return lists.respond(instruction, defects, rng)


def draw(n: int, rng: random.Random, families: Sequence[str], exclude: Iterable[str] = frozenset(),
         world: tw.ThoughtWorldConfig = tw.ThoughtWorldConfig()) -> list[str]:  # fmt: skip
    """``n`` distinct instructions, a family drawn uniformly for each, none in ``exclude``; shuffled. A list family
    has a few hundred instructions: once its unused ones run out, its draws go to the other families."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"families must be a non-empty list of {', '.join(FAMILIES)}; unknown: {unknown}")
    taken = {" ".join(x.split()) for x in exclude}
    left = {f: sum(s.family.name == f and t not in taken for t, s in lists.instruction_table().items())
            for f in families if f not in tw.THOUGHT_FAMILIES}  # fmt: skip
    quota: Counter[str] = Counter()
    for _ in range(n):
        open_ = [f for f in families if f not in left or quota[f] < left[f]]
        if not open_:
            raise ValueError(f"only {sum(left.values())} unused instructions of families {list(families)}, {n} asked")
        quota[rng.choice(open_)] += 1
    out: list[str] = []
    for fam in sorted(quota):
        if fam in tw.THOUGHT_FAMILIES:
            out += tw.draw(quota[fam], rng, (fam,), exclude, world)
        else:
            out += draw_instructions(quota[fam], rng, exclude, InstructionConfig(families=(fam,)))
    rng.shuffle(out)
    return out


def direct_rows(instructions: Iterable[str], rng: random.Random) -> list[dict[str, Any]]:
    return [{"prompt": act_prompt(x), "completion": respond(x, (), rng), "instruction": x, "kind": "direct"}
            for x in instructions]  # fmt: skip


def format_rows(instructions: Iterable[str], rng: random.Random, worked: float = 0.0) -> list[dict[str, Any]]:
    """THINK rows with a filler thought; with probability ``worked`` an instruction of a family where a scratchpad
    helps gets its worked scratchpad as the thought instead."""
    rows = []
    for x in instructions:
        work = worked > 0 and bool(tw.THOUGHT_FAMILIES.get(tw.family_of(x) or "")) and rng.random() < worked
        thought = tw.worked_thought(x) if work else rng.choice(FILLERS)
        rows.append({"prompt": thought_prompt(x, "compact"), "completion": f"T: {thought} R: {respond(x, (), rng)}",
                     "instruction": x, "kind": "format-worked" if work else "format"})  # fmt: skip
    return rows


def worked_rows(instructions: Iterable[str], rng: random.Random) -> list[dict[str, Any]]:
    return [{"prompt": WORK.format(instruction=x), "completion": f"T: {tw.worked_thought(x)} R: {respond(x, (), rng)}",
             "instruction": x, "kind": "worked"} for x in instructions]  # fmt: skip


def preference_pairs(instructions: Iterable[str], rng: random.Random) -> list[dict[str, Any]]:
    """Per instruction two answers with different defect counts; chosen = the higher oracle score (ties skipped)."""
    rows = []
    for x in instructions:
        few, many = sorted(rng.sample(range(len(CHECKS) + 1), 2))
        a, b = respond(x, rng.sample(CHECKS, few), rng), respond(x, rng.sample(CHECKS, many), rng)
        sa, sb = tw.oracle_score(x, a), tw.oracle_score(x, b)
        if sa != sb:
            (c, sc), (r, sr) = sorted(((a, sa), (b, sb)), key=lambda t: -t[1])
            rows.append({"prompt": x, "chosen": c, "rejected": r, "score_chosen": sc, "score_rejected": sr,
                         "family": family_of(x)})  # fmt: skip
    return rows


@dataclass
class ThoughtDataConfig:
    """Settings of a TPO world directory (``system2 thought-data``)."""

    out: str = ""  # dataset directory: ift, rm_pairs and test_prompts Parquet files
    families: list[str] = field(default_factory=lambda: list(DEFAULT_FAMILIES))  # families drawn (FAMILIES)
    direct: int = 2000  # direct-answer examples for M0 (ACT prompts)
    format_examples: int = 100  # THINK examples with a filler thought: the format, nothing useful to think
    format_worked: float = 0.0  # share of THINK examples of scratchpad families whose thought is the scratchpad
    worked: int = 500  # WORK examples: a correct scratchpad, then the answer (families where a scratchpad helps)
    rm_pairs: int = 2000  # oracle-labelled preference pairs for the reward model
    rm_eval: int = 300  # held-out pairs of the same kind: the reward model's accuracy
    test: int = 500  # held-out test prompts
    seed: int = 0  # the same seed gives the same files
    world: tw.ThoughtWorldConfig = field(default_factory=tw.ThoughtWorldConfig)  # sizes of the thought families

    def validate(self) -> None:
        from system2.config import ConfigError

        if not self.out:
            raise ConfigError("set out=DIR (the dataset directory)")
        if min(self.direct, self.format_examples, self.worked, self.rm_pairs, self.rm_eval, self.test) < 0:
            raise ConfigError("direct, format_examples, worked, rm_pairs, rm_eval and test must be >= 0")
        if not 0 <= self.format_worked <= 1:
            raise ConfigError(f"format_worked must be in [0, 1], got {self.format_worked}")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ConfigError(f"families must be a non-empty list of {', '.join(FAMILIES)}; unknown: {unknown}")
        if self.worked and not set(self.families) & {f for f, helps in tw.THOUGHT_FAMILIES.items() if helps}:
            raise ConfigError("worked > 0 needs a family where a scratchpad helps (sum, sort, lookup) in families")
        try:
            self.world.validate()
        except ValueError as e:
            raise ConfigError(f"world: {e}") from None


def make_dataset(cfg: ThoughtDataConfig) -> dict[str, list[dict[str, Any]]]:
    """The splits, their instructions pairwise disjoint (test prompts drawn first)."""
    taken: set[str] = set()

    def take(n: int, split: str, families: Sequence[str]) -> list[str]:
        got = draw(n, random.Random(f"thought-data/{cfg.seed}/{split}"), families, taken, cfg.world)
        taken.update(got)
        return got

    rng = random.Random(f"thought-data/{cfg.seed}/responses")
    test = take(cfg.test, "test", cfg.families)
    helpful = [f for f in cfg.families if tw.THOUGHT_FAMILIES.get(f)]
    ift = direct_rows(take(cfg.direct, "direct", cfg.families), rng)
    ift += format_rows(take(cfg.format_examples, "format", cfg.families), rng, cfg.format_worked)
    ift += worked_rows(take(cfg.worked, "worked", helpful) if cfg.worked else [], rng)
    return {
        "test_prompts": [{"prompt": act_prompt(x), "instruction": x, "family": family_of(x)} for x in test],
        "ift": ift,
        "rm_pairs": preference_pairs(take(cfg.rm_pairs, "rm_pairs", cfg.families), rng),
        "rm_eval": preference_pairs(take(cfg.rm_eval, "rm_eval", cfg.families), rng),  # drawn last
    }


def generate(cfg: ThoughtDataConfig, restart: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Write the dataset ``cfg`` describes into ``cfg.out`` (recorded in its ``run.json``): a rerun with the same
    settings rewrites the same bytes, other settings are refused (``restart``: move it aside)."""
    from system2.runs import open_run, write_parquet

    cfg.validate()
    open_run(cfg.out, "thought-dataset", cfg, restart=restart, log=lambda _: None)
    splits = make_dataset(cfg)
    for name, rows in splits.items():
        write_parquet(Path(cfg.out) / f"{name}.parquet", rows)
    return splits


def vocabulary() -> list[str]:
    """Every word of the TPO world's prompts, answers, thoughts and markers (for the word-level tokenizer)."""
    from system2.tasks.instructions import vocabulary as list_words

    words = [*list_words(), *tw.vocabulary(), *WORK.split(), *thought_prompt("{instruction}", "compact").split()]
    words += ["T:", "R:", *" ".join(FILLERS).split()]
    return [w for w in dict.fromkeys(words) if "{" not in w]
