"""A pairwise reward model: a scalar head on a causal LM trained on preference pairs with the Bradley-Terry loss,
-log sigma(r(x, chosen) - r(x, rejected)), as reward models such as ArmoRM's base are (Ouyang et al., arXiv
2203.02155, Sec. 3.5). TPO (arXiv 2410.10630, Sec. 3.1) judges with ArmoRM, an 8B reward model with a scalar output;
here a head trained on oracle-labelled seed pairs stands in for it, and the oracle only evaluates.

The model is the outcome reward model's ``AutoModelForSequenceClassification`` (one logit at the last non-pad token,
``system2.selfimprove.orm``), so a trained one is a judge as it is: ``judge.backend=reward_model judge.model=DIR``
(which reports 5 sigma(r), monotone in r; TPO z-scores the scores per prompt, so only their order and spread count).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from system2 import dist
from system2.lm.encoding import encode_prompt_response
from system2.runs import atomic_dir
from system2.selfimprove.orm import load_orm, score_solutions
from system2.train import TrainConfig, train

MARKER = "reward_model.json"  # written last into a finished model directory


class RewardPairs:
    """(prompt, chosen, rejected) triples as tensors: each batch holds the chosen sequences, then the rejected."""

    def __init__(self, tokenizer: Any, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str],
                 max_len: int, chat: bool = False) -> None:  # fmt: skip
        if not len(prompts) == len(chosen) == len(rejected):
            raise ValueError(f"{len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected responses")
        self.tokenizer, self.max_len, self.chat = tokenizer, max_len, chat
        self.prompts, self.chosen, self.rejected = list(prompts), list(chosen), list(rejected)

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        prompts = [self.prompts[i] for i in indices] * 2
        responses = [self.chosen[i] for i in indices] + [self.rejected[i] for i in indices]
        enc = encode_prompt_response(self.tokenizer, prompts, responses, self.max_len, chat=self.chat)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def rewards(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """r(x, y) per sequence: the head's one logit."""
    return model(input_ids=input_ids, attention_mask=attention_mask).logits.squeeze(-1).float()


def bradley_terry_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """-log sigma(r_chosen - r_rejected) averaged over the batch's pairs (``RewardPairs`` order), and its tokens."""
    r = rewards(model, batch["input_ids"], batch["attention_mask"])
    half = r.shape[0] // 2
    return -F.logsigmoid(r[:half] - r[half:]).mean(), int(batch["attention_mask"].sum())


def train_reward_model(
    init: str | Path,
    pairs: Sequence[dict[str, str]],
    cfg: TrainConfig,
    out: str | Path,
    max_len: int,
    chat: bool = False,
    progress: bool = True,
) -> Path:
    """Train a reward head from the causal LM in ``init`` on ``pairs`` (``prompt``, ``chosen``, ``rejected``; the
    prompt as the judge will see it) and save it to ``out/model``; a finished model is returned as it is, and a
    killed run resumes from its checkpoints (``out/ckpt``)."""
    out = Path(out)
    final = out / "model"
    if (final / MARKER).is_file():
        return final
    missing = [i for i, p in enumerate(pairs) if not all(isinstance(p.get(k), str) for k in ("prompt", "chosen",
                                                                                             "rejected"))]  # fmt: skip
    if missing or not pairs:
        raise ValueError(f"reward-model pairs need text fields prompt, chosen and rejected (rows {missing[:5]} "
                         f"lack them)" if missing else "no reward-model pairs to train on")  # fmt: skip
    model, tok = load_orm(init)
    data = RewardPairs(tok, [p["prompt"] for p in pairs], [p["chosen"] for p in pairs],
                          [p["rejected"] for p in pairs], max_len, chat)  # fmt: skip
    train(model, data, bradley_terry_loss, cfg, out, progress=progress)
    if dist.is_main():
        with atomic_dir(final) as tmp:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / MARKER).write_text('{"kind": "pairwise reward model", "loss": "Bradley-Terry"}\n')
    dist.barrier()
    return final


def pairwise_accuracy(model: torch.nn.Module, tokenizer: Any, pairs: Sequence[dict[str, str]], max_len: int,
                      chat: bool = False) -> float:  # fmt: skip
    """The share of ``pairs`` whose chosen response the model scores strictly higher."""
    n = len(pairs)
    scores = score_solutions(model, tokenizer, [p["prompt"] for p in pairs] * 2,
                             [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs], max_len, progress=False,
                             chat=chat)  # fmt: skip
    return sum(scores[i] > scores[n + i] for i in range(n)) / n if n else float("nan")
