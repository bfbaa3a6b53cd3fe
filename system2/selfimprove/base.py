"""A pretrained base for the quantity world: what the papers' M_0 brings from pretraining (docs/selfimprove.md,
"Calibrating the inline world").

In the papers M_0 is a pretrained LLM that can already read a problem and compute; it only lacks the task. A tiny
model from random weights that sees a few hundred gold chains memorises them instead. So M_0 starts from a base
trained on world documents that carry no question and no answer: ``lookup`` (a question's facts shuffled, then every
relation among them computed; reading and arithmetic, not which quantities an answer needs) or ``worked``
(computations in execution order). One base is trained per (world, model size, steps, seed) and shared, as the
papers share one checkpoint.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from system2.selfimprove.loop import finetune_sft
from system2.selfimprove.sft import SFTConfig, TinyLMConfig, init_tiny
from system2.tasks import quantities as q
from system2.train import TrainConfig

TEXTS = {"worked": q.worked_text, "lookup": q.lookup_text, "solved": q.solved_text}  # the pretraining documents


def pretrain_base(
    out: Path,
    world: q.QuantityConfig,
    tiny: TinyLMConfig,
    text: str,
    train: TrainConfig,
    questions: list[Any],
    progress: bool = True,
    extra: Sequence[str] = (),
    solved_share: float = q.SOLVED_SHARE,
) -> Path:
    """Train a tiny model ``train.steps`` steps on ``text`` documents of ``world`` (one fresh document per example,
    drawn from ``train.seed``) and return its directory, ``out/model`` (cached: a rerun returns it). ``questions``
    give the tokenizer its words (the world's vocabulary); ``extra``: words the models fine-tuned from it will
    need besides (e.g. Dualformer's mode words); ``solved_share``: the share of solved problems in ``solved`` text."""
    if text not in TEXTS:
        raise ValueError(f"pretraining text must be one of {', '.join(TEXTS)}, got {text!r}")
    if (out / "model" / "config.json").is_file():
        return out / "model"
    sft = SFTConfig(out=str(out), task="quantities", tiny=tiny, seed=train.seed)
    init = init_tiny(sft, out.parent / f"{out.name}_init", questions, extra)
    rng = random.Random(f"quantities/{train.seed}/pretrain")
    write = partial(q.solved_text, share=solved_share) if text == "solved" else TEXTS[text]
    docs = [write(rng, world, max_words=tiny.max_len - 7) for _ in range(train.steps * train.batch_size)]
    steps = dataclasses.replace(train, warmup=max(1, train.steps // 10), ckpt_every=train.steps,
                                log_every=max(1, train.steps // 20))  # fmt: skip
    return finetune_sft(init, [""] * len(docs), docs, tiny.max_len, steps, out, progress)


def check_base(steps: int, text: str, run: Any) -> None:
    """A reproduction's base settings, checked before any compute: a base is pretrained on the generated quantity
    world only (``run``: its ``task``, ``model`` and ``train_data``)."""
    from system2.config import ConfigError

    if steps < 0:
        raise ConfigError(f"pretrain_steps must be >= 0, got {steps}")
    if steps and (run.task != "quantities" or run.model or run.train_data):
        raise ConfigError("pretrain_steps pretrains a tiny base on the generated quantity world: it needs "
                          "task=quantities and no model or data files (or set pretrain_steps=0)")  # fmt: skip
    check_text(text)


def check_text(text: str) -> None:
    """ConfigError unless ``text`` names a kind of base document (``TEXTS``)."""
    from system2.config import ConfigError

    if text not in TEXTS:
        raise ConfigError(f"pretrain_text must be one of {', '.join(TEXTS)}, got {text!r}")


def world_base(out: Path, train_file: str, d_model: int, layers: int, max_len: int, text: str, train: TrainConfig,
               extra: Sequence[str] = (), solved_share: float = q.SOLVED_SHARE) -> Path:  # fmt: skip
    """The base a reproduction's tiny models start from, on its generated quantity world (the world's defaults;
    ``train_file``: its training questions, for the vocabulary), cached in ``out`` and shared by the seeds;
    ``solved_share``: as in ``pretrain_base``."""
    from system2.tasks.task import get_task

    tiny = TinyLMConfig(d_model=d_model, layers=layers, max_len=max_len)
    questions = get_task("quantities").read(train_file)
    return pretrain_base(out, q.QuantityConfig(), tiny, text, train, questions, extra=extra, solved_share=solved_share)
