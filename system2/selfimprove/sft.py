"""Supervised fine-tuning on gold solutions: the starting policy M_0 of every self-improvement loop.

With ``model`` empty, a tiny ``LlamaForCausalLM`` and a word-level tokenizer are built from ``tiny`` and saved
first (``OUT/init``), so the whole pipeline runs on a CPU; the tokenizer covers the synthetic world's vocabulary
(arithmetic, quantities), or for another task every word of the training questions and gold solutions (other words
read as ``<unk>``);
with ``model=PATH`` any local causal LM is fine-tuned instead. The paper-scale recipes point ``model`` at a
local Llama checkpoint. ``limit`` trains on the first N gold solutions only: the IRPO reproduction
(docs/selfimprove.md) builds a deliberately under-trained M_0 (300 gold solutions, 30-50% greedy accuracy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2 import dist
from system2.config import ConfigError
from system2.lm.io import save_lm
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.selfimprove.loop import LoopConfig, finetune_sft
from system2.tasks.arithmetic import ArithmeticConfig, vocabulary
from system2.tasks.task import ANSWER_LINE, RETURN_TOKENS
from system2.train import TrainConfig


@dataclass
class TinyLMConfig:
    d_model: int = 128  # model width
    layers: int = 4  # transformer layers
    heads: int = 4  # attention heads
    max_len: int = 128  # longest sequence (positions and the tokenizer's limit)
    modulus: int = 20  # the arithmetic world whose vocabulary the tokenizer covers


@dataclass
class SFTConfig(LoopConfig):
    """``model`` empty: build a tiny model from ``tiny``; ``limit`` = gold solutions used (0: all)."""

    tiny: TinyLMConfig = field(default_factory=TinyLMConfig)  # the tiny Llama built when model is empty
    train: TrainConfig = field(  # fine-tuning on the gold solutions
        default_factory=lambda: TrainConfig(steps=500, batch_size=32, lr=1e-3, warmup=50)
    )

    def validate(self) -> None:
        if not self.train_data or not self.out:
            raise ConfigError("set train_data=FILE and out=DIR (and model=PATH, or leave it empty for a tiny model)")
        self.check_paths()


def tiny_vocabulary(cfg: SFTConfig, problems: list[Any], extra: Sequence[str] = ()) -> list[str]:
    """The words of the tiny tokenizer: the arithmetic world's, or those of the training questions and gold
    solutions in first-seen order (plus the answer marker and the return tokens); then the ``extra`` words it lacks
    (e.g. Dualformer's mode words)."""
    if cfg.task == "arithmetic":
        words = dict.fromkeys(vocabulary(ArithmeticConfig(modulus=cfg.tiny.modulus)))
    elif cfg.task == "quantities":
        from system2.tasks import quantities

        fused = any(w.endswith("=") and w != "=" for p in problems for w in p.question.split())
        words = dict.fromkeys(quantities.vocabulary(fused))
    else:
        words = dict.fromkeys([*ANSWER_LINE.format("").split(), *RETURN_TOKENS])
        for p in problems:
            words.update(dict.fromkeys(f"{p.question} {p.solution}".split()))
    words.update(dict.fromkeys(extra))
    return list(words)


def m0_dir(out: str | Path) -> Path:
    """Where a recipe trains its tiny M0 (``OUT/sft``); its weights end in ``m0_dir(out) / "model"``."""
    return Path(out) / "sft"


def build_tiny(tiny: TinyLMConfig, words: Iterable[str], path: Path, seed: int) -> Path:
    """A new tiny Llama with a word-level tokenizer of ``words`` (duplicates dropped), saved at ``path`` once by the
    main process (an existing one is kept)."""
    if not (path / "config.json").is_file() and dist.is_main():
        tok = build_word_tokenizer(list(dict.fromkeys(words)), model_max_length=tiny.max_len)
        model = tiny_llama(tok, d_model=tiny.d_model, n_layers=tiny.layers, n_heads=tiny.heads, max_len=tiny.max_len,
                           seed=seed)  # fmt: skip
        save_lm(model, tok, path)
    dist.barrier()
    return path


def init_tiny(cfg: SFTConfig, path: Path, problems: list[Any], extra: Sequence[str] = ()) -> Path:
    """Build and save the tiny model + tokenizer (once; the main process writes it); ``extra``: words the tokenizer
    must also know."""
    words = tiny_vocabulary(cfg, problems, extra) if not (path / "config.json").is_file() else []
    return build_tiny(cfg.tiny, words, path, cfg.seed)


def gold_prefix(problems: Sequence[Any], n_gold: int) -> int:
    """The number of leading questions that hold ``n_gold`` gold solutions (all of them when they hold fewer): the
    ``limit`` that trains on ``n_gold`` gold solutions of a world where only some questions have one."""
    seen = 0
    for i, x in enumerate(problems):
        seen += bool(x.solution)
        if seen == n_gold:
            return i + 1
    return len(problems)


def run_sft(cfg: SFTConfig, progress: bool = True, restart: bool = False) -> dict[str, Any]:
    """Fine-tune on gold solutions and evaluate; returns the result row (also in ``OUT/result.json``)."""
    cfg.validate()
    out = cfg.start("sft", restart)
    problems, test = cfg.problems()
    problems = [p for p in problems if p.solution]  # SFT imitates gold solutions: questions without one sit out
    if not problems:
        raise ConfigError(f"{cfg.train_data}: no question has a gold solution, and SFT imitates them ({cfg.task})")
    init = Path(cfg.model) if cfg.model else init_tiny(cfg, out / "init", problems)
    prompts, solutions = [p.question for p in problems], [p.solution for p in problems]
    final = finetune_sft(init, prompts, solutions, cfg.max_len, cfg.train, out, progress, chat=cfg.chat)

    return {
        "model": str(final),
        "examples": len(problems),
        **cfg.evaluate(final, test, out),
    }
