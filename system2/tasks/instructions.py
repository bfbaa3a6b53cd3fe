"""The instruction world: seed data, a prompt sampler and loaders for Self-Rewarding LMs (Yuan et al., arXiv
2401.10020, Sec. 2 and 3.1) and the methods built on it (Meta-Rewarding, arXiv 2407.19594); see
docs/instructions.md.

The paper's seed data are Open Assistant instruction-following examples (IFT) and evaluation-fine-tuning examples
(EFT: a judge prompt, a justification and ``Score: s``); new prompts come from a fixed Llama-2-Chat each iteration,
and GPT-4 evaluates (AlpacaEval). Here the hidden oracle of ``instructions_oracle`` stands in for GPT-4 and the
human rankings: it makes the seed data and evaluates, and is never called inside a training loop. The seed
judgments are imperfect by construction, as the paper's (written by an SFT model): a share ``flip`` of their check
bits is flipped, and on open (``SOME``) instructions they add a point to responses of at least ``bias_items`` items
(a length bias for length control to fight, as in Meta-Rewarding). A template sampler stands in for the prompt
generator; it never repeats a prompt it is told to exclude (the seed and test prompts).

Rows are TRL's ``{"prompt", "completion"}`` (plus the instruction and, for judgments, the scores). ``read_ift``,
``read_eft`` and ``read_prompts`` load real data given as local JSON lines or Parquet files.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.judges.prompts import COMPACT, judge_prompt, judgment_text, meta_prompt, parse_score
from system2.tasks import instructions_oracle as oracle
from system2.tasks.instructions_oracle import (
    CHECKS,
    FAMILIES,
    instruction_table,
    item_count,
    justification,
    oracle_checks,
    oracle_score,
    parse_instruction,
    read_checks,
    respond,
)

ACT = "ACT: {instruction} ->"  # the compact actor prompt (the judge's is ``JUDGE: instruction | response ->``)
SPLITS = ("test_prompts", "ift", "eft", "eft_eval", "pairs")  # the files ``write_dataset`` makes, in drawing order
# (and ``meta``, drawn last, only when the dataset has meta-judge seed rows)


@dataclass(frozen=True)
class InstructionConfig:
    """The world's knobs for sampling prompts and writing seed judgments."""

    families: tuple[str, ...] = tuple(FAMILIES)  # families prompts are drawn from (see FAMILIES)
    open_share: float = 0.3  # share of prompts from open (SOME) families, when both kinds are present
    flip: float = 0.15  # share of check bits flipped in the seed judgments (an imperfect judge)
    bias_items: int = 6  # seed judgments of open prompts add 1 point (max 5) at this many items (0: no bias)

    def validate(self) -> None:
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"families must be a non-empty list of {', '.join(FAMILIES)}; unknown: {unknown}")
        if not 0 <= self.open_share <= 1 or not 0 <= self.flip <= 0.5:
            raise ValueError("need 0 <= open_share <= 1 and 0 <= flip <= 0.5")
        if self.bias_items < 0:
            raise ValueError(f"bias_items must be >= 0 (0: no length bias), got {self.bias_items}")


def act_prompt(instruction: str, template: str = "compact") -> str:
    """The actor's prompt: ``ACT: instruction ->`` (compact), or the instruction itself (paper: a chat turn)."""
    if template not in ("compact", "paper"):
        raise ValueError(f"template must be compact or paper, got {template!r}")
    return ACT.format(instruction=instruction) if template == "compact" else instruction


def instruction_of(prompt: str) -> str:
    """The instruction inside an actor prompt: ``act_prompt``'s inverse for the compact form (``ACT: x ->``); any
    other prompt (the paper form, a real prompt) is its own instruction."""
    head, tail = ACT.split("{instruction}")
    if prompt.startswith(head) and prompt.endswith(tail):
        return prompt[len(head) : len(prompt) - len(tail)]
    return prompt


def draw_instructions(n: int, rng: random.Random, exclude: Iterable[str], cfg: InstructionConfig) -> list[str]:
    """``n`` distinct instructions, none in ``exclude``: open with probability ``open_share``, then a family
    uniformly, then an instruction uniformly (an exhausted family drops out)."""
    cfg.validate()
    taken = {" ".join(x.split()) for x in exclude}
    left: dict[str, list[str]] = {f: [] for f in cfg.families}
    for text, spec in instruction_table().items():
        if spec.family.name in left and text not in taken:
            left[spec.family.name].append(text)
    for texts in left.values():
        rng.shuffle(texts)
    if sum(map(len, left.values())) < n:
        raise ValueError(f"only {sum(map(len, left.values()))} instructions of families {list(cfg.families)} are not "
                         f"excluded, {n} asked: ask fewer or allow more families")  # fmt: skip
    out = []
    while len(out) < n:
        kinds = [[f for f, t in left.items() if t and FAMILIES[f].open == o] for o in (True, False)]
        pick = kinds[0] if kinds[0] and (not kinds[1] or rng.random() < cfg.open_share) else kinds[1]
        out.append(left[rng.choice(pick)].pop())
    return out


def sample_prompts(n: int, seed: int, exclude: Iterable[str] = frozenset(),
                   cfg: InstructionConfig = InstructionConfig()) -> list[str]:  # fmt: skip
    """``n`` new instructions from the template sampler, none of them in ``exclude`` (pass the seed and test
    prompts); each iteration passes its own ``seed``."""
    return draw_instructions(n, random.Random(f"instructions/prompts/{seed}"), exclude, cfg)


def seed_judgment(instruction: str, response: str, rng: random.Random, cfg: InstructionConfig) -> tuple[str, int]:
    """A seed judgment (justification, score): the oracle's bits with each flipped with probability ``flip``, the
    score their sum, plus 1 (at most 5) for an open instruction's response of at least ``bias_items`` items."""
    checks = {k: v != (rng.random() < cfg.flip) for k, v in oracle_checks(instruction, response).items()}
    is_open = parse_instruction(instruction).count is None
    long = is_open and cfg.bias_items > 0 and item_count(instruction, response) >= cfg.bias_items
    return justification(checks), min(5, sum(checks.values()) + long)


def _defects(rng: random.Random) -> list[str]:
    """A defect set whose size is uniform in 0..5, so the seed scores are spread evenly."""
    return rng.sample(CHECKS, rng.randint(0, len(CHECKS)))


def ift_rows(instructions: Iterable[str], seed: int, template: str = "compact") -> list[dict[str, Any]]:
    """IFT rows: each instruction's actor prompt and one of its oracle-best responses (score 5)."""
    rng = random.Random(f"instructions/{seed}/ift")
    return [{"prompt": act_prompt(x, template), "completion": respond(x, (), rng), "instruction": x}
            for x in instructions]  # fmt: skip


def eft_rows(instructions: Iterable[str], seed: int, cfg: InstructionConfig = InstructionConfig(),
             template: str = "compact", exact: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """EFT rows: a response of random quality (0-5 defects) per instruction, its judge prompt and a seed judgment
    (``exact``: the oracle's own judgment, no flips and no length bias, the reference for evaluation). ``score`` is
    the judgment's, ``oracle`` the truth."""
    rng = random.Random(f"instructions/{seed}/{'eft_eval' if exact else 'eft'}")
    exact_cfg = InstructionConfig(families=cfg.families, flip=0.0, bias_items=0)
    rows = []
    for x in instructions:
        response = respond(x, _defects(rng), rng)
        text, score = seed_judgment(x, response, rng, exact_cfg if exact else cfg)
        rows.append({"prompt": judge_prompt(x, response, template), "completion": judgment_text(text, score),
                     "instruction": x, "response": response, "score": score,
                     "oracle": oracle_score(x, response)})  # fmt: skip
    return rows


def meta_rows(instructions: Iterable[str], seed: int, cfg: InstructionConfig = InstructionConfig(),
              template: str = "compact") -> list[dict[str, Any]]:  # fmt: skip
    """Meta-judge seed rows (our addition: the paper's model meta-judges zero-shot, a tiny one has to be taught): a
    response of random quality, two seed judgments of it that state different numbers of wrong check bits, and
    ``Winner: A|B`` naming the one with fewer (the more accurate application of the rubric), itself flipped with
    probability ``flip`` like the seed judgments' bits."""
    rng = random.Random(f"instructions/{seed}/meta")
    rows = []
    for x in instructions:
        response = respond(x, _defects(rng), rng)
        truth = oracle_checks(x, response)
        while True:  # two judgments whose errors differ
            (ja, sa), (jb, sb) = seed_judgment(x, response, rng, cfg), seed_judgment(x, response, rng, cfg)
            ea, eb = (sum(v != truth[k] for k, v in read_checks(j).items()) for j in (ja, jb))
            if ea != eb or cfg.flip == 0:
                break
        better = "A" if ea < eb else "B"
        if rng.random() < cfg.flip:
            better = "B" if better == "A" else "A"
        rows.append({"prompt": meta_prompt(x, response, judgment_text(ja, sa), judgment_text(jb, sb), template),
                     "completion": f"Winner: {better}", "instruction": x})  # fmt: skip
    return rows


def response_pairs(n: int, seed: int, exclude: Iterable[str] = frozenset(),
                   cfg: InstructionConfig = InstructionConfig()) -> list[dict[str, Any]]:  # fmt: skip
    """Held-out response pairs for judge evaluation (pairwise accuracy, Spearman): ``n`` new instructions, each
    with two responses of different oracle scores, the better one first or second at random."""
    rng = random.Random(f"instructions/{seed}/pairs")
    rows = []
    for x in draw_instructions(n, rng, exclude, cfg):
        good, bad = sorted(rng.sample(range(len(CHECKS) + 1), 2))  # defect counts: good has fewer
        a, b = respond(x, rng.sample(CHECKS, good), rng), respond(x, rng.sample(CHECKS, bad), rng)
        if rng.random() < 0.5:
            a, b = b, a
        rows.append({"instruction": x, "response_a": a, "response_b": b, "score_a": oracle_score(x, a),
                     "score_b": oracle_score(x, b)})  # fmt: skip
    return rows


def vocabulary() -> list[str]:
    """Every word of the compact prompts, responses and judgments (for the word-level tokenizer)."""
    words: list[str] = [*ACT.split(), *COMPACT.split(), "Score:", *map(str, range(6))]
    for fam in FAMILIES.values():
        words += [fam.verb, oracle.OPEN_COUNT, *map(str, oracle.COUNTS), *fam.predicates, *oracle.ORDERS, *fam.items]
        words += [w for b in fam.lows + fam.highs for t in (fam.above, fam.below) for w in t.format(b).split()]
    words += [*oracle.FORMAT_TOKENS, *" ".join(oracle.EXTRAS).split(), *CHECKS, "yes", "no"]
    return [w for w in dict.fromkeys(words) if "{" not in w]


# ----- real data from local files ------------------------------------------------------------------------------
def read_table(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON lines file (``.jsonl``/``.json``) or a Parquet file (anything else)."""
    from system2.runs import read_parquet
    from system2.tasks.task import read_rows

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    rows = read_rows(p) if p.suffix in (".jsonl", ".json") else read_parquet(p).to_pylist()
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ValueError(f"{p}: row {i} is not an object; each line needs one JSON object such as "
                             '{"prompt": ..., "completion": ...}')  # fmt: skip
    return rows


def checked_rows(what: str, path: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows of input ``what`` (a setting's name) at ``path``, each with non-empty text in ``fields``; a
    ConfigError names the setting, the file, the row and the fields otherwise (before any compute)."""
    from system2.config import ConfigError

    if not path:
        raise ConfigError(f"{what}: no file given; set {what}=FILE or data=DIR")
    try:
        rows = read_table(path)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from None
    for i, r in enumerate(rows):
        bad = [f for f in fields if not isinstance(r.get(f), str) or not r[f].strip()]
        if bad:
            raise ConfigError(f"{what} ({path}): row {i} lacks text field(s) {', '.join(bad)}")
    return rows


def _text(r: dict[str, Any], name: str, path: Path, i: int, fix: str) -> str:
    value = r.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{path}: row {i}: field '{name}' is missing or not a non-empty string; {fix}")
    return value


def _pairs(path: str | Path, what: str) -> list[dict[str, str]]:
    """``{"prompt", "completion"}`` rows: given as such, or as TRL ``messages`` (a user turn, then an assistant
    turn)."""
    p, out = Path(path), []
    fix = f"an {what} row needs 'prompt' and 'completion', or 'messages' with a user then an assistant turn"
    for i, r in enumerate(read_table(p)):
        if "messages" in r and "prompt" not in r:
            turns = r["messages"]
            roles = [t.get("role") if isinstance(t, dict) else None for t in turns] if isinstance(turns, list) else []
            if roles != ["user", "assistant"]:
                raise ValueError(f"{p}: row {i}: field 'messages' must be a user turn then an assistant turn, got "
                                 f"roles {roles}; {fix}")  # fmt: skip
            r = {"prompt": turns[0].get("content"), "completion": turns[1].get("content")}
        out.append({"prompt": _text(r, "prompt", p, i, fix), "completion": _text(r, "completion", p, i, fix)})
    return out


def read_ift(path: str | Path) -> list[dict[str, str]]:
    """Instruction-following examples (Open Assistant style) from JSON lines or Parquet: ``prompt`` and
    ``completion``, or TRL ``messages``."""
    return _pairs(path, "IFT")


def read_eft(path: str | Path) -> list[dict[str, str]]:
    """Judge training examples: ``prompt`` (a judge prompt) and ``completion`` (a justification ending in
    ``Score: s``), or TRL ``messages``; a completion without a score is refused."""
    rows = _pairs(path, "EFT")
    for i, r in enumerate(rows):
        if parse_score(r["completion"]) is None:
            raise ValueError(f"{path}: row {i}: field 'completion' has no 'Score: s' (s in 0..5); an EFT judgment "
                             "ends with its score")  # fmt: skip
    return rows


def read_prompts(path: str | Path) -> list[str]:
    """A prompt pool: each row's ``prompt`` or ``instruction`` (or the user turn of TRL ``messages``), in file
    order, repeats dropped."""
    p, out = Path(path), []
    fix = "a prompt-pool row needs 'prompt' or 'instruction' (or 'messages' starting with a user turn)"
    for i, r in enumerate(read_table(p)):
        turns = r.get("messages")
        if "prompt" not in r and "instruction" not in r and isinstance(turns, list) and turns:
            first = turns[0] if isinstance(turns[0], dict) else {}
            if first.get("role") != "user":
                raise ValueError(f"{p}: row {i}: field 'messages' must start with a user turn; {fix}")
            r = {"prompt": first.get("content")}
        out.append(_text(r, "instruction" if "instruction" in r and "prompt" not in r else "prompt", p, i, fix))
    return list(dict.fromkeys(out))


def read_judge_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Held-out response pairs with reference scores (judge accuracy and Spearman, the paper's Table 4): each row's
    ``instruction``, ``response_a``, ``response_b`` (strings) and ``score_a``, ``score_b`` (numbers: the oracle's,
    or human ranks turned into scores, higher is better)."""
    p, out = Path(path), []
    fix = "a judge-pair row needs instruction, response_a, response_b (strings) and score_a, score_b (numbers)"
    for i, r in enumerate(read_table(p)):
        row: dict[str, Any] = {k: _text(r, k, p, i, fix) for k in ("instruction", "response_a", "response_b")}
        for k in ("score_a", "score_b"):
            if not isinstance(r.get(k), int | float) or isinstance(r.get(k), bool):
                raise ValueError(f"{p}: row {i}: field '{k}' is missing or not a number; {fix}")
            row[k] = float(r[k])
        out.append(row)
    return out


# ----- the dataset directory ------------------------------------------------------------------------------------
@dataclass
class InstructionDataConfig:
    """Settings of an instruction-world dataset directory (``system2 instructions``)."""

    out: str = ""  # dataset directory: ift, eft, eft_eval, test_prompts and pairs Parquet files
    ift: int = 200  # instruction-following examples (oracle-best responses)
    eft: int = 300  # judge training examples (imperfect seed judgments)
    eft_eval: int = 100  # held-out judge examples with the oracle's exact judgments
    test: int = 500  # held-out test prompts (the AlpacaEval analogue)
    pairs: int = 300  # held-out response pairs with their oracle scores (judge evaluation)
    meta: int = 0  # meta-judge seed examples (Meta-Rewarding with a model that cannot meta-judge zero-shot)
    template: str = "compact"  # prompt templates: compact (tiny word-level models) or paper (the paper's wording)
    seed: int = 0  # the same seed gives the same files
    world: InstructionConfig = field(default_factory=InstructionConfig)  # the world's knobs

    def validate(self) -> None:
        from system2.config import ConfigError

        if not self.out:
            raise ConfigError("set out=DIR (the dataset directory)")
        if min(self.ift, self.eft, self.eft_eval, self.test, self.pairs, self.meta) < 0:
            raise ConfigError("ift, eft, eft_eval, test, pairs and meta must be >= 0")
        if self.template not in ("compact", "paper"):
            raise ConfigError(f"template must be compact or paper, got {self.template!r}")
        try:
            self.world.validate()
        except ValueError as e:
            raise ConfigError(f"world: {e}") from None


def generate(cfg: InstructionDataConfig, restart: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Make the dataset ``cfg`` describes in ``cfg.out`` (recorded in its ``run.json``): a rerun with the same
    settings completes or returns it, other settings are refused (``restart``: move it aside)."""
    from system2.runs import open_run

    cfg.validate()
    open_run(cfg.out, "instruction-dataset", cfg, restart=restart, log=lambda _: None)
    return write_dataset(cfg)


def make_dataset(cfg: InstructionDataConfig) -> dict[str, list[dict[str, Any]]]:
    """The splits of ``SPLITS``, their instructions pairwise disjoint (test prompts drawn first)."""
    taken: set[str] = set()

    def draw(n: int, split: str) -> list[str]:
        got = draw_instructions(n, random.Random(f"instructions/{cfg.seed}/{split}"), taken, cfg.world)
        taken.update(got)
        return got

    test = draw(cfg.test, "test")
    ift, eft, eft_eval = draw(cfg.ift, "ift"), draw(cfg.eft, "eft"), draw(cfg.eft_eval, "eft_eval")
    splits = {
        "test_prompts": [{"prompt": act_prompt(x, cfg.template), "instruction": x} for x in test],
        "ift": ift_rows(ift, cfg.seed, cfg.template),
        "eft": eft_rows(eft, cfg.seed, cfg.world, cfg.template),
        "eft_eval": eft_rows(eft_eval, cfg.seed, cfg.world, cfg.template, exact=True),
        "pairs": response_pairs(cfg.pairs, cfg.seed, taken, cfg.world),
    }
    if cfg.meta:  # drawn last, so the other files do not depend on it
        taken.update(r["instruction"] for r in splits["pairs"])
        splits["meta"] = meta_rows(draw(cfg.meta, "meta"), cfg.seed, cfg.world, cfg.template)
    return splits


def write_dataset(cfg: InstructionDataConfig) -> dict[str, list[dict[str, Any]]]:
    """``make_dataset`` written as ``OUT/<split>.parquet``, each file atomically; the same settings give the same
    bytes."""
    from system2.runs import write_parquet

    splits = make_dataset(cfg)
    for name, rows in splits.items():
        write_parquet(Path(cfg.out) / f"{name}.parquet", rows)
    return splits
