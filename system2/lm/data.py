"""SFT and preference datasets for the project's training loop (``system2.train.train``); their losses are
``system2.lm.losses`` (``make_sft_loss_fn``, ``make_dpo_loss_fn``).

Texts are tokenized once, when the dataset is built, so every error (a missing field, a tokenizer without a
pad token, an example longer than ``max_len``) is raised before training starts. ``PreferenceData`` holds
reference log-probs computed beforehand with the frozen reference model (``reference_logprobs``), so DPO
training keeps a single model in memory. A preference batch stacks the chosen sequences over the rejected
ones (``[2B, T]``), and one forward pass scores both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from system2.lm.encoding import check_lengths, check_pair_lengths, collate, prompt_token_ids, response_token_ids


def require_fields(rows: Sequence[Mapping[str, Any]], fields: Sequence[str], what: str) -> None:
    """Raise a ValueError naming the first row that lacks one of ``fields`` (or holds None there)."""
    for i, row in enumerate(rows):
        missing = [f for f in fields if row.get(f) is None]
        if missing:
            raise ValueError(
                f"{what} row {i} has no {', '.join(repr(m) for m in missing)} (each row needs {', '.join(fields)})"
            )


def check_pad_token(tokenizer: Any) -> None:
    """Raise a ValueError with the fix when the tokenizer has no pad token (batches are padded)."""
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "the tokenizer has no pad token: load it with load_lm(..., pad_with_eos=True) or set "
            "tokenizer.pad_token = tokenizer.eos_token"
        )


class SFTData:
    """(prompt, response) pairs; a batch is right-padded ``input_ids``/``attention_mask``/``labels``.
    ``ends[i]`` False: response i was cut at its sampling budget and gets no eos (``response_token_ids``)."""

    def __init__(
        self,
        tokenizer: Any,
        prompts: Sequence[str],
        responses: Sequence[str],
        max_len: int,
        chat: bool = False,
        ends: Sequence[bool] | None = None,
    ) -> None:
        if len(prompts) != len(responses):
            raise ValueError(f"SFT data: {len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            raise ValueError("SFT data is empty")
        check_pad_token(tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self.prompt_ids = prompt_token_ids(tokenizer, prompts, chat)
        self.response_ids = response_token_ids(tokenizer, responses, ends)
        check_lengths(self.prompt_ids, self.response_ids, max_len, drop_long=False)

    @classmethod
    def from_rows(
        cls,
        tokenizer: Any,
        rows: Sequence[Mapping[str, Any]],
        max_len: int,
        prompt_key: str = "prompt",
        response_key: str = "response",
        chat: bool = False,
    ) -> SFTData:
        require_fields(rows, (prompt_key, response_key), "SFT data")
        return cls(tokenizer, [r[prompt_key] for r in rows], [r[response_key] for r in rows], max_len, chat)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def lengths(self) -> list[int]:
        return [len(p) + len(r) for p, r in zip(self.prompt_ids, self.response_ids, strict=True)]

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        return collate([self.prompt_ids[i] for i in indices], [self.response_ids[i] for i in indices], self.pad_id)


class PreferenceData:
    """(prompt, chosen, rejected) triples with the reference's summed log-probs of chosen and rejected.

    A batch of B pairs holds ``input_ids``/``attention_mask``/``labels`` of shape ``[2B, T]`` (rows 0..B-1
    chosen, B..2B-1 rejected) and ``ref_chosen``/``ref_rejected`` of shape ``[B]``. ``rejected_ends[i]`` False:
    rejected response i was cut at its sampling budget and gets no eos (its reference log-prob must be computed
    the same way)."""

    def __init__(
        self,
        tokenizer: Any,
        prompts: Sequence[str],
        chosen: Sequence[str],
        rejected: Sequence[str],
        max_len: int,
        ref_chosen_logps: Sequence[float],
        ref_rejected_logps: Sequence[float],
        chat: bool = False,
        rejected_ends: Sequence[bool] | None = None,
        system: str | None = None,
    ) -> None:
        sizes = {len(prompts), len(chosen), len(rejected), len(ref_chosen_logps), len(ref_rejected_logps)}
        if len(sizes) != 1:
            raise ValueError(
                f"preference data: {len(prompts)} prompts, {len(chosen)} chosen, {len(rejected)} rejected, "
                f"{len(ref_chosen_logps)} and {len(ref_rejected_logps)} reference log-probs: they must match"
            )
        if not prompts:
            raise ValueError("preference data is empty")
        check_pad_token(tokenizer)
        for name, values in (("ref_chosen_logps", ref_chosen_logps), ("ref_rejected_logps", ref_rejected_logps)):
            bad = [i for i, v in enumerate(values) if v is None or not math.isfinite(float(v))]
            if bad:
                raise ValueError(f"preference data: {name}[{bad[0]}] is {values[bad[0]]!r}, not a finite log-prob")
        self.pad_id = tokenizer.pad_token_id
        self.prompt_ids = prompt_token_ids(tokenizer, prompts, chat, system)
        self.chosen_ids = response_token_ids(tokenizer, chosen)
        self.rejected_ids = response_token_ids(tokenizer, rejected, rejected_ends)
        check_pair_lengths(self.prompt_ids, self.chosen_ids, self.rejected_ids, max_len, drop_long=False)
        self.ref_chosen = torch.tensor([float(v) for v in ref_chosen_logps], dtype=torch.float32)
        self.ref_rejected = torch.tensor([float(v) for v in ref_rejected_logps], dtype=torch.float32)

    @classmethod
    def from_rows(cls, tokenizer: Any, rows: Sequence[Mapping[str, Any]], max_len: int, chat: bool = False):
        """From rows with ``prompt``, ``chosen``, ``rejected``, ``ref_chosen`` and ``ref_rejected``."""
        keys = ("prompt", "chosen", "rejected", "ref_chosen", "ref_rejected")
        require_fields(rows, keys, "preference data")
        cols = {k: [r[k] for r in rows] for k in keys}
        return cls(
            tokenizer,
            prompts=cols["prompt"],
            chosen=cols["chosen"],
            rejected=cols["rejected"],
            max_len=max_len,
            ref_chosen_logps=cols["ref_chosen"],
            ref_rejected_logps=cols["ref_rejected"],
            chat=chat,
        )

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def lengths(self) -> list[int]:
        return [
            len(p) + max(len(c), len(r))
            for p, c, r in zip(self.prompt_ids, self.chosen_ids, self.rejected_ids, strict=True)
        ]

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        prompts = [self.prompt_ids[i] for i in indices]
        responses = [self.chosen_ids[i] for i in indices] + [self.rejected_ids[i] for i in indices]
        out = collate(prompts + prompts, responses, self.pad_id)
        out["ref_chosen"] = self.ref_chosen[indices]
        out["ref_rejected"] = self.ref_rejected[indices]
        return out
