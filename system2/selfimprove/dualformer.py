"""Dualformer for language models: SFT on chains of thought with randomly dropped steps, and fast / slow modes chosen
by a control word (arXiv 2410.09918, Sec. 5.2; docs/selfimprove.md, "Dualformer for language models").

What is known of the paper's recipe is second-hand [S]: the maths solutions (the data called Aug-MATH) have each
intermediate step dropped with a single probability p (best p = 0.1 for Mistral-7B, 0.2-0.3 for Llama-3-8B), and the
models are evaluated at temperature 0.7, top-p 0.9 by greedy@1 and pass@20. The rest is ours, after the planning
Dualformer (docs/planning.md): its fast mode answers with the plan only, and its slow mode searches first.

- Steps come from the task (``system2.tasks.steps``): lines, sentences, `` ; ``, or a callable. The final-answer part
  (the shortest tail of the solution that states the gold answer) is never dropped; a solution whose answer the task
  cannot read even from the whole text has nothing droppable and is counted (``undroppable``).
- Slow examples: the prompt starts with the slow word (``[SLOW] question``) and the response is the gold chain with
  each intermediate step left out with probability ``drop``. Fast examples, a share ``fast_share`` (q, default 0.1)
  drawn per example: the fast word and the final-answer part alone, so fast mode has something to learn from.
- Auto mode (``auto_share`` > 0): that share of examples has no control word in the prompt; the response starts with
  the mode's word, so the model chooses its mode, as the planning Dualformer's auto mode does with its first token.
- The drop is drawn once per example (the paper's data are constructed once [S]); ``redraw`` draws it again every
  epoch, as the official maze code does for traces. Each draw is a pure function of (seed, epoch, example), so a
  resumed or multi-process run sees the same data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from system2.config import ConfigError
from system2.lm.data import check_pad_token
from system2.lm.encoding import check_lengths, collate, prompt_token_ids, response_token_ids
from system2.lm.losses import make_sft_loss_fn
from system2.selfimprove.loop import finetune
from system2.selfimprove.sft import SFTConfig, init_tiny
from system2.tasks.steps import SPLITS, Splitter, chain_steps, final_start, splitter
from system2.tasks.task import QuestionLike, ReasoningTask

MODES = ("slow", "fast", "auto")


@dataclass(frozen=True)
class StepExample:
    """A training question with its gold solution cut into steps; ``final``: the first step of the final-answer part
    (the steps before it may be dropped), None when the task cannot read the gold answer from the solution (then
    the example is always slow and whole)."""

    prompt: str
    steps: tuple[str, ...]
    final: int | None


def step_examples(problems: Sequence[QuestionLike], task: ReasoningTask, split: Splitter) -> list[StepExample]:
    """The questions' gold solutions as ``StepExample``s (questions without a gold solution are left out)."""
    out = []
    for p in problems:
        if not p.solution:
            continue
        steps = split(p.solution)
        out.append(StepExample(p.question, tuple(steps), final_start(steps, task.extract, p.answer)))
    return out


def undroppable(examples: Sequence[StepExample]) -> int:
    """How many examples have no step that may be dropped (one step only, or no readable answer)."""
    return sum(not e.final for e in examples)


@dataclass(frozen=True)
class DropSettings:
    """How training examples are drawn (the recipe's settings, without the file and training ones)."""

    drop: float = 0.1  # p: each intermediate step is left out with this probability
    fast_share: float = 0.1  # q: share of examples that answer directly, with the fast word
    auto_share: float = 0.0  # share of examples with no control word, the mode word leading the response
    slow_word: str = "[SLOW]"  # control word of slow mode (the chain of thought)
    fast_word: str = "[FAST]"  # control word of fast mode (the answer directly)
    redraw: bool = False  # draw the dropped steps again every epoch (False: once per example)
    seed: int = 0  # seed of the draws


def draw_example(example: StepExample, index: int, epoch: int, s: DropSettings) -> tuple[str, str, str]:
    """(mode, prompt, response) of training example ``index`` at ``epoch``: a pure function of its arguments."""
    rng = random.Random(f"dualformer-lm:{s.seed}:{epoch if s.redraw else 0}:{index}")
    fast = rng.random() < s.fast_share and example.final is not None
    auto = rng.random() < s.auto_share
    if example.final is None:  # no known final part: nothing to drop, no answer to give alone
        response = "".join(example.steps)
    elif fast:
        response = "".join(example.steps[example.final :])
    else:
        kept = [x for x in example.steps[: example.final] if rng.random() >= s.drop]
        response = "".join(kept + list(example.steps[example.final :]))
    word = s.fast_word if fast else s.slow_word
    if auto:
        return ("fast" if fast else "slow"), example.prompt, f"{word} {response}"
    return ("fast" if fast else "slow"), f"{word} {example.prompt}", response


class StepDropData:
    """SFT data whose responses are gold chains with dropped steps (``draw_example``); a batch is right-padded
    ``input_ids``/``attention_mask``/``labels`` as ``SFTData``'s. Every example's longest form (slow word, full chain,
    and the mode word when auto mode is on) must fit in ``max_len``: checked before training."""

    def __init__(
        self,
        tokenizer: Any,
        examples: Sequence[StepExample],
        settings: DropSettings,
        max_len: int,
        chat: bool = False,
    ) -> None:
        if not examples:
            raise ValueError("Dualformer SFT data is empty: no training question has a gold solution")
        check_pad_token(tokenizer)
        self.tokenizer, self.examples, self.settings, self.chat = tokenizer, list(examples), settings, chat
        lead = f"{settings.slow_word} " if settings.auto_share > 0 else ""
        prompts = prompt_token_ids(tokenizer, [f"{settings.slow_word} {e.prompt}" for e in self.examples], chat)
        responses = response_token_ids(tokenizer, [lead + "".join(e.steps) for e in self.examples])
        check_lengths(prompts, responses, max_len, drop_long=False)
        self._lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]

    def __len__(self) -> int:
        return len(self.examples)

    def lengths(self) -> list[int]:
        return self._lengths

    def texts(self, index: int, epoch: int) -> tuple[str, str, str]:
        """(mode, prompt, response) of example ``index`` at ``epoch``."""
        return draw_example(self.examples[index], index, epoch, self.settings)

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        drawn = [self.texts(i, epoch) for i in indices]
        prompts = prompt_token_ids(self.tokenizer, [d[1] for d in drawn], self.chat)
        responses = response_token_ids(self.tokenizer, [d[2] for d in drawn])
        return collate(prompts, responses, self.tokenizer.pad_token_id)


@dataclass
class DualformerLMConfig(SFTConfig):
    """SFT on gold chains with steps dropped (``drop``), answer-only fast examples (``fast_share``), evaluated in slow
    and fast modes (and auto with ``auto_share``)."""

    drop: float = 0.1  # p: each intermediate step left out with this probability (paper: 0.1-0.3 [S])
    fast_share: float = 0.1  # q: share of examples that answer directly with the fast word (1: an answer-only model)
    auto_share: float = 0.0  # share of examples with no control word (> 0 turns auto mode on and evaluates it)
    redraw: bool = False  # draw the dropped steps again every epoch (False: once per example, as the paper's data)
    step_split: str = "auto"  # step boundaries: auto (the task's) | lines | sentences | semicolons
    slow_word: str = "[SLOW]"  # control word of slow mode
    fast_word: str = "[FAST]"  # control word of fast mode
    eval_temperature: float = 0.7  # temperature of the eval_samples (the paper's 0.7 [S])
    eval_top_p: float = 0.9  # nucleus of the eval_samples (the paper's 0.9 [S])
    eval_modes: list[str] = field(default_factory=list)  # modes evaluated; empty: slow, fast (and auto if trained)

    def validate(self) -> None:
        super().validate()
        if self.eval_temperature <= 0 or not 0 < self.eval_top_p <= 1:
            raise ConfigError(f"eval_temperature must be > 0 and eval_top_p in (0, 1], got {self.eval_temperature}, "
                              f"{self.eval_top_p}")  # fmt: skip
        if not 0 <= self.drop < 1:
            raise ConfigError(f"drop must be in [0, 1), got {self.drop}")
        for name in ("fast_share", "auto_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        unknown = [m for m in self.eval_modes if m not in MODES]
        if unknown:
            raise ConfigError(f"eval_modes: {unknown[0]!r} is not a mode; use {', '.join(MODES)}")
        if "auto" in self.eval_modes and self.auto_share == 0:
            raise ConfigError("eval_modes has auto but auto_share=0: no example taught the model to choose its mode")
        if self.step_split not in SPLITS:
            raise ConfigError(f"step_split must be one of {', '.join(SPLITS)}, got {self.step_split!r}")
        for name in ("slow_word", "fast_word"):
            word = getattr(self, name)
            if not word or word.split() != [word]:
                raise ConfigError(f"{name} must be one word without spaces, got {word!r}")
        if self.slow_word == self.fast_word:
            raise ConfigError(f"slow_word and fast_word must differ, both are {self.slow_word!r}")

    def settings(self) -> DropSettings:
        """The draw settings of the training data."""
        return DropSettings(drop=self.drop, fast_share=self.fast_share, auto_share=self.auto_share,
                            slow_word=self.slow_word, fast_word=self.fast_word, redraw=self.redraw,
                            seed=self.seed)  # fmt: skip

    def modes(self) -> list[str]:
        """The modes evaluated: ``eval_modes``, or slow and fast, and auto when the model was trained for it."""
        return list(self.eval_modes) or [*MODES[:2], *(["auto"] if self.auto_share > 0 else [])]


def annotate_response(text: str, split: Splitter, fast_word: str, slow_word: str, auto: bool) -> dict[str, float]:
    """A greedy response's intermediate steps (its mode word left out) and, in auto mode, whether it chose fast."""
    words = text.split(maxsplit=1)
    fast = bool(words) and words[0] == fast_word
    if words and words[0] in (fast_word, slow_word):
        text = words[1] if len(words) > 1 else ""
    return {"response_steps": chain_steps(text, split), **({"chose_fast": float(fast)} if auto else {})}


def run_dualformer_lm(cfg: DualformerLMConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Fine-tune on gold chains with dropped steps, then evaluate each mode; returns one result row per mode
    (evaluations cached in ``OUT/eval_MODE``; without eval data, one row without rates)."""
    cfg.validate()
    out = cfg.start("dualformer-lm", restart)
    problems, test = cfg.problems()
    task, split = cfg.get_task(), splitter(cfg.step_split, cfg.task)
    examples = step_examples(problems, task, split)
    if not examples:
        raise ConfigError(f"{cfg.train_data}: no question has a gold solution to drop steps from ({cfg.task})")
    words = (cfg.slow_word, cfg.fast_word)
    init = Path(cfg.model) if cfg.model else init_tiny(cfg, out / "init", problems, extra=words)
    final = finetune(init, StepDropData, make_sft_loss_fn(), cfg.train, out, progress, examples=examples,
                     settings=cfg.settings(), max_len=cfg.max_len, chat=cfg.chat)  # fmt: skip
    base = {"model": str(final), "examples": len(examples), "undroppable": undroppable(examples)}
    rows = []
    for mode in cfg.modes() if test else []:
        prefix = {"slow": f"{cfg.slow_word} ", "fast": f"{cfg.fast_word} ", "auto": ""}[mode]
        annotate = partial(annotate_response, split=split, fast_word=cfg.fast_word, slow_word=cfg.slow_word,
                           auto=mode == "auto")  # fmt: skip
        rates = cfg.evaluate(final, test, out / f"eval_{mode}", prefix, annotate, cfg.eval_temperature, cfg.eval_top_p)
        rows.append({"mode": mode, **base, **rates})
    return rows or [base]
