"""Measure a reasoning world before any reproduction trusts it (docs/selfimprove.md, "The quantity world").

For the quantity world at a given model size: the accuracy of an answer-prior guesser (always the most frequent
training answer), of SFT on every gold chain, and of M_0 (SFT on a few gold chains); and, over M_0's correct
samples on the test questions, the share whose chain is valid and differs from the question's gold chain (the world
must let a model be right in its own way). A right answer is not a right chain: each greedy accuracy comes with the
share answered right on a valid chain and with the first fault of every greedy chain (``quantity_chains.chain_error``),
which shows where a model fails, and each model's next-token accuracy on the gold test chains by the role of the
token (``quantity_chains.token_roles``: copying a definition, looking up an operand's value, computing a result), which
shows the skill it lacks. The targets (SFT on all gold 60-80%, M_0 30-50%, the guesser near
chance, at least 30% of M_0's correct chains its own) are the reasoning-world issue's; this module only measures.
Every stage is cached in ``out`` (a rerun resumes; other settings are refused before any work, ``restart`` moves
the old run aside).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from system2.config import ConfigError
from system2.lm.encoding import encode_prompt_response
from system2.lm.io import load_lm
from system2.runs import atomic_write_json, open_run, read_json
from system2.selfimprove.base import check_text, pretrain_base
from system2.selfimprove.loop import sample_and_score
from system2.selfimprove.sft import SFTConfig, TinyLMConfig, gold_prefix, run_sft
from system2.tasks import quantities as q
from system2.tasks import quantity_chains as qc
from system2.tasks.task import get_task
from system2.train import TrainConfig


@dataclass
class CalibrationConfig:
    """The world and the model size to measure it at."""

    out: str = ""  # directory: data, the two SFT runs, calibration.json
    train: int = 30000  # training questions (a share ``world.gold`` with gold chains)
    test: int = 300  # test questions
    m0_gold: int = 1500  # gold chains M_0 is trained on
    steps: int = 2000  # SFT steps of both models
    batch: int = 32  # SFT batch
    samples: int = 8  # samples per test question for the chain-diversity share
    pretrain_steps: int = 4000  # steps of pretraining before both SFT runs (0: none)
    pretrain_text: str = "lookup"  # lookup (a shuffled list, then computed) | worked (computations in execution order)
    seed: int = 0  # data and training seed
    tiny: TinyLMConfig = field(default_factory=lambda: TinyLMConfig(max_len=192))  # the model size
    world: q.QuantityConfig = field(default_factory=q.QuantityConfig)  # the world's knobs

    def validate(self) -> None:
        """Raise ConfigError for settings that cannot run, before any work starts."""
        for name in ("train", "test", "m0_gold", "steps", "batch", "samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pretrain_steps < 0:
            raise ConfigError(f"pretrain_steps must be >= 0, got {self.pretrain_steps}")
        check_text(self.pretrain_text)
        if self.samples < 2:
            raise ConfigError(f"samples must be >= 2 (the chain-diversity share needs several), got {self.samples}")
        try:
            self.world.validate()
        except ValueError as e:
            raise ConfigError(f"world: {e}") from None


def calibrate(cfg: CalibrationConfig, progress: bool = True, restart: bool = False) -> dict[str, Any]:
    """The measurements (module docstring), also written to ``out/calibration.json``."""
    if not cfg.out:
        raise ConfigError("out is empty: name the calibration's directory (out=DIR)")
    cfg.validate()
    out = open_run(cfg.out, "calibration", cfg, restart=restart, log=lambda _: None)
    if (out / "calibration.json").is_file():
        return read_json(out / "calibration.json")
    data = out / "data"
    q.write_dataset(data, cfg.seed, cfg.train, cfg.test, cfg=cfg.world)
    task = get_task("quantities")
    train, test = task.read(data / "train.parquet"), task.read(data / "test.parquet")
    prior = Counter(x.answer for x in train).most_common(1)[0][0]
    common = {"task": "quantities", "train_data": str(data / "train.parquet"), "eval_data": str(data / "test.parquet"),
              "max_len": cfg.tiny.max_len, "max_new_tokens": cfg.tiny.max_len // 2, "seed": cfg.seed}  # fmt: skip
    train_cfg = TrainConfig(steps=cfg.steps, batch_size=cfg.batch, lr=1e-3, warmup=max(1, cfg.steps // 10),
                            seed=cfg.seed, ckpt_every=cfg.steps, log_every=max(1, cfg.steps // 20))  # fmt: skip
    base = ""
    if cfg.pretrain_steps:
        steps = dataclasses.replace(train_cfg, steps=cfg.pretrain_steps)
        base = str(pretrain_base(out / "pretrain", cfg.world, cfg.tiny, cfg.pretrain_text, steps, train, progress))
    gold = run_sft(SFTConfig(out=str(out / "sft_all_gold"), model=base, tiny=cfg.tiny, train=train_cfg, **common),
                   progress)  # fmt: skip
    m0 = run_sft(SFTConfig(out=str(out / "m0"), model=base, tiny=cfg.tiny, train=train_cfg,
                           limit=gold_prefix(train, cfg.m0_gold), **common), progress)  # fmt: skip
    by_id = {x.id: x for x in test}
    sample = partial(_sample, test=test, max_new_tokens=common["max_new_tokens"], seed=cfg.seed, progress=progress)
    rows = sample(m0["model"], n=cfg.samples, temperature=1.0)
    gold_greedy, m0_greedy = (sample(m["model"], n=1, temperature=0.0) for m in (gold, m0))
    right = [r for r in rows if r["correct"]]
    own = [r for r in right if _own_chain(r["text"], by_id[r["id"]])]
    valid = [r for r in right if _valid(r["text"], by_id[r["id"]])]
    result = {
        "answer_prior_accuracy": sum(x.answer == prior for x in test) / len(test),
        "sft_all_gold_maj@1": gold["maj@1"],
        "sft_all_gold_valid_chain_maj@1": _valid_share(gold_greedy, by_id),
        "sft_all_gold_first_faults": _faults(gold_greedy, by_id),
        "sft_all_gold_examples": gold["examples"],
        "sft_all_gold_token_accuracy": role_accuracy(gold["model"], test),
        "m0_maj@1": m0["maj@1"],
        "m0_valid_chain_maj@1": _valid_share(m0_greedy, by_id),
        "m0_first_faults": _faults(m0_greedy, by_id),
        "m0_examples": m0["examples"],
        "m0_token_accuracy": role_accuracy(m0["model"], test),
        "m0_correct_samples": len(right),
        "m0_correct_valid_chain_share": len(valid) / len(right) if right else None,
        "m0_correct_own_chain_share": len(own) / len(right) if right else None,
        "m0_sample_accuracy": len(right) / len(rows),
    }
    atomic_write_json(out / "calibration.json", result)
    return result


def role_accuracy(model_dir: str | Path, questions: list[Any], batch: int = 50) -> dict[str, float]:
    """Teacher-forced next-token accuracy (the argmax is the gold token) on the questions' gold chains, per
    ``quantity_chains.token_roles`` role. Needs a word-level tokenizer (one token per word), as the tiny models have."""
    model, tok = load_lm(model_dir, pad_with_eos=True)
    model.eval()
    hits: dict[str, list[int]] = {role: [] for role in qc.TOKEN_ROLES}
    for i in range(0, len(questions), batch):
        part = questions[i : i + batch]
        enc = encode_prompt_response(tok, [x.question for x in part], [x.solution for x in part], 10**9)
        with torch.no_grad():
            guess = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, :-1].argmax(-1)
        labels = enc["labels"][:, 1:]
        for row, x in enumerate(part):
            where = (labels[row] != -100).nonzero().flatten()[:-1]  # the chain's tokens, less eos
            roles = qc.token_roles(x.solution)
            if len(where) != len(roles):
                raise ValueError(f"{model_dir}: the tokenizer does not read one token per word; roles need it")
            for role, pos in zip(roles, where.tolist(), strict=True):
                hits[role].append(int(guess[row, pos] == labels[row, pos]))
    return {role: round(sum(h) / len(h), 4) for role, h in hits.items() if h}


def _sample(model_dir: str, **kw: Any) -> list[dict[str, Any]]:
    model, tok = load_lm(model_dir, pad_with_eos=True)
    return sample_and_score(model, tok, kw.pop("test"), task=get_task("quantities"), **kw)


def _valid_share(rows: list[dict[str, Any]], by_id: dict[str, Any]) -> float:
    """The share of questions answered right on a valid chain (a right answer from a wrong chain does not count)."""
    return sum(r["correct"] and _valid(r["text"], by_id[r["id"]]) for r in rows) / len(rows)


def _valid(text: str, question: Any) -> bool:
    return qc.valid_chain(text, *q.parse_question(question.question))


def _faults(rows: list[dict[str, Any]], by_id: dict[str, Any]) -> dict[str, int]:
    """How many greedy responses are valid chains, and the first fault of the others (``quantity_chains.chain_error``):
    where a model fails, e.g. copying a wrong definition before any arithmetic."""
    faults = Counter(qc.chain_error(r["text"], *q.parse_question(by_id[r["id"]].question)) or "valid" for r in rows)
    return dict(faults.most_common())


def _own_chain(text: str, question: Any) -> bool:
    """A correct sample on a valid chain other than the question's gold chain."""
    facts, target = q.parse_question(question.question)
    chain = q.unfuse(text).split("Final answer:")[0] + "Final answer:"  # a chain differs in its steps, not heads
    gold = q.unfuse(question.solution).split("Final answer:")[0] + "Final answer:"
    return qc.valid_chain(text, facts, target) and chain.split() != gold.split()
