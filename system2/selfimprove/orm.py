"""Outcome reward model (ORM; Havrilla et al., arXiv 2403.04642): a classifier head on a causal
LM's trunk that predicts P(correct | question, solution), trained on the SFT model's own samples labelled
by the exact checker, and used to rerank K samples (rerank@K).

The ORM is a standard ``AutoModelForSequenceClassification`` (one logit, read at the last non-pad
token) initialised from the policy's directory, so it saves and loads like any Hugging Face checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from system2 import dist
from system2.console import Progress
from system2.lm.logprobs import encode_prompt_response
from system2.runs import atomic_dir
from system2.selfimprove.loop import (
    LoopConfig,
    group_by_question,
    sample_and_score,
)
from system2.selfimprove.metrics import best_hit
from system2.selfimprove.stages import cached_json, sharded_rows, stage_done
from system2.train import TrainConfig, train


@dataclass
class ORMConfig(LoopConfig):
    """``model`` is the policy whose samples are labelled; its trunk initialises the ORM."""

    samples: int = 8  # solutions sampled per training question
    temperature: float = 1.0  # sampling temperature
    eval_samples: int = 8  # K for rerank@K on eval_data
    train: TrainConfig = field(  # training of the reward model
        default_factory=lambda: TrainConfig(steps=300, batch_size=32, lr=1e-4, warmup=20)
    )


class RewardData:
    """(question, solution, label) examples as tensors for the training loop."""

    def __init__(
        self,
        tokenizer: Any,
        prompts: Sequence[str],
        responses: Sequence[str],
        labels: Sequence[bool],
        max_len: int,
        ends: Sequence[bool] | None = None,
        chat: bool = False,
    ):
        if not len(prompts) == len(responses) == len(labels):
            raise ValueError("prompts, responses and labels must have the same length")
        self.tokenizer, self.max_len, self.chat = tokenizer, max_len, chat
        self.prompts, self.responses = list(prompts), list(responses)
        self.ends = list(ends) if ends is not None else [True] * len(self.prompts)  # False: truncated, no eos
        self.labels = torch.tensor([float(x) for x in labels])

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        enc = encode_prompt_response(self.tokenizer, [self.prompts[i] for i in indices],
                                     [self.responses[i] for i in indices], self.max_len,
                                     ends=[self.ends[i] for i in indices], chat=self.chat)  # fmt: skip
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "label": self.labels[indices]}


def orm_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
    return F.binary_cross_entropy_with_logits(logits.float(), batch["label"]), int(batch["attention_mask"].sum())


def load_orm(path: str | Path) -> tuple[torch.nn.Module, Any]:
    """An ORM saved by :func:`train_orm` (or a policy directory, giving an untrained head)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a model directory (no config.json)")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.pad_token_id is None:  # pad with eos, as the loops do: padding is tracked by attention masks
        if tok.eos_token_id is None:
            raise ValueError(f"the tokenizer in {path} has neither a pad nor an eos token: set a pad token")
        tok.pad_token = tok.eos_token
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # from a policy directory the new head is "missing" by design: no report
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, pad_token_id=tok.pad_token_id)
    finally:
        hf_logging.set_verbosity(level)
    return model, tok


@torch.no_grad()
def score_solutions(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_len: int,
    batch_size: int = 64,
    progress: bool = True,
    ends: Sequence[bool] | None = None,
    chat: bool = False,
) -> list[float]:
    """P(correct) for each (question, solution); ``ends[i]`` False: solution i was truncated (no eos, as it
    trained); ``chat``: questions rendered by the chat template; ``progress`` shows the solutions scored."""
    model.eval()
    out: list[float] = []
    flags = list(ends) if ends is not None else [True] * len(prompts)
    with Progress(len(prompts), "score solutions (ORM)", enabled=progress) as bar:
        for s in range(0, len(prompts), batch_size):
            enc = encode_prompt_response(tokenizer, prompts[s : s + batch_size], responses[s : s + batch_size], max_len,
                                         ends=flags[s : s + batch_size], chat=chat)  # fmt: skip
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.squeeze(-1)
            out += torch.sigmoid(logits.float()).tolist()
            bar.update(len(out))
    return out


def train_orm(cfg: ORMConfig, progress: bool = True, restart: bool = False) -> dict[str, Any]:
    """Sample, label, train the ORM, and report its accuracy and rerank@K on held-out questions."""
    cfg.validate()
    out = cfg.start("orm", restart)
    problems, _ = cfg.problems()

    def draw(part: list[Any], offset: int) -> list[dict[str, Any]]:
        policy, tok = cfg.load(cfg.model)
        return sample_and_score(policy, tok, part, **cfg.sampling(), n=cfg.samples, temperature=cfg.temperature,
                                seed=cfg.seed, prompt_offset=offset, progress=progress)  # fmt: skip

    rows = sharded_rows(out / "samples.parquet", problems, draw)  # each process samples its share
    final = out / "orm"
    if not stage_done(final / "orm.json"):
        model, tok = load_orm(cfg.model)
        data = RewardData(tok, [r["question"] for r in rows], [r["text"] for r in rows], [r["correct"] for r in rows],
                          cfg.max_len, ends=[not r.get("truncated") for r in rows], chat=cfg.chat)  # fmt: skip
        train(model, data, orm_loss, cfg.train, out / "train", progress=progress)
        if dist.is_main():
            with atomic_dir(final) as tmp:
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
                (tmp / "orm.json").write_text('{"kind": "outcome reward model", "labels": "P(correct)"}\n')
        dist.barrier()
    return cached_json(out / "result.json", evaluate_orm, cfg, final)


def evaluate_orm(cfg: ORMConfig, orm_dir: Path) -> dict[str, Any]:
    """Held-out classification accuracy of the ORM and rerank@K of the policy's samples."""
    _, test = cfg.problems()
    if not test:
        return {}
    policy, tok = cfg.load(cfg.model)
    rows = sample_and_score(
        policy, tok, test, **cfg.sampling(), n=cfg.eval_samples, temperature=cfg.temperature, seed=cfg.seed + 1
    )
    orm, otok = load_orm(orm_dir)
    scores = score_solutions(orm, otok, [r["question"] for r in rows], [r["text"] for r in rows], cfg.max_len,
                             ends=[not r["truncated"] for r in rows], chat=cfg.chat)  # fmt: skip
    acc = sum((s > 0.5) == bool(r["correct"]) for s, r in zip(scores, rows, strict=True)) / len(rows)
    groups = list(group_by_question(rows).values())
    k = cfg.eval_samples
    score_groups, pos = [], 0
    for g in groups:
        score_groups.append(scores[pos : pos + len(g)])
        pos += len(g)
    hits = [
        best_hit([(r["parsed"], bool(r["correct"])) for r in g], sc) for g, sc in zip(groups, score_groups, strict=True)
    ]
    return {
        "orm_accuracy": acc,
        "positive_fraction": sum(bool(r["correct"]) for r in rows) / len(rows),
        f"rerank@{k}": sum(hits) / len(hits),
    }
