"""DPO from a frozen reference, as the preference loops run it (IRPO, arXiv 2404.19733; Self-Rewarding, arXiv
2401.10020): the reference's summed response log-probs of every pair, computed once per iteration and kept as a stage,
then the policy fine-tuned on the pairs with the DPO loss of ``system2.lm.losses`` (plus the NLL term when
``alpha`` > 0). The reference is the previous iterate in both papers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from system2.lm.data import PreferenceData
from system2.lm.encoding import check_pair_lengths, prompt_token_ids, response_token_ids
from system2.lm.io import load_lm
from system2.lm.logprobs import reference_logprobs
from system2.lm.losses import make_dpo_loss_fn
from system2.selfimprove.loop import finetune
from system2.train import TrainConfig, resolved_precision


def reference_logprobs_rows(
    path: str | Path,
    model: Any,
    tokenizer: Any,
    cfg: Any,
    progress: bool,
    pairs: Sequence[dict[str, Any]],
    offset: int = 0,
) -> list[dict[str, float]]:
    """Summed response log-probs of each pair's chosen and rejected under the frozen reference at ``path`` (a
    truncated rejected response without an eos, as it trains). ``cfg``: a loop config (``train``, ``max_len``,
    ``chat``, ``system_turn``, ``run_device``). The reference runs as the policy trains: float32 weights under the
    training autocast, so ``model`` (the sampler, in the loop's ``dtype``) is reloaded when its dtype differs.
    ``offset``: unused (pairs are scored independently; the argument of ``sharded_rows``)."""
    prompts, chosen = [p["prompt"] for p in pairs], [p["chosen"] for p in pairs]
    rejected = [p["rejected"] for p in pairs]
    rejected_ends = [bool(p.get("rejected_ends", True)) for p in pairs]  # pairs made before: every one ends
    ends = [True] * len(chosen) + rejected_ends
    precision = resolved_precision(cfg.train)  # the policy's autocast
    if next(model.parameters()).dtype != torch.float32:
        model = load_lm(path, device=cfg.run_device(), pad_with_eos=True)[0]
    logps = reference_logprobs(model, tokenizer, prompts + prompts, chosen + rejected, cfg.max_len, progress=progress,
                               mixed_precision=precision, ends=ends, chat=cfg.chat, system=cfg.system_turn)  # fmt: skip
    ref_c, ref_r = logps[: len(prompts)], logps[len(prompts) :]
    return [{"ref_chosen": float(c), "ref_rejected": float(r)} for c, r in zip(ref_c, ref_r, strict=True)]


def dpo_finetune(
    init: str | Path,
    pairs: Sequence[dict[str, Any]],
    ref: Sequence[dict[str, float]],
    train_cfg: TrainConfig,
    out: Path,
    progress: bool,
    *,
    beta: float,
    alpha: float,
    nll_norm: str,
    max_len: int,
    chat: bool,
    system: str | None = None,
) -> Path:
    """The policy at ``init`` trained on ``pairs`` (rows with ``prompt``, ``chosen``, ``rejected`` and optionally
    ``rejected_ends``) with DPO(+NLL) against the reference log-probs ``ref`` (one row per pair); saved to
    ``out/model``, resumable from ``out/ckpt``. ``system``: a system turn before every prompt (chat only)."""
    return finetune(
        init,
        PreferenceData,
        make_dpo_loss_fn(beta=beta, alpha=alpha, nll_norm=nll_norm),
        train_cfg,
        out,
        progress,
        prompts=[p["prompt"] for p in pairs],
        chosen=[p["chosen"] for p in pairs],
        rejected=[p["rejected"] for p in pairs],
        rejected_ends=[bool(p.get("rejected_ends", True)) for p in pairs],  # pairs made before: every one ends
        max_len=max_len,
        chat=chat,
        system=system,
        ref_chosen_logps=[x["ref_chosen"] for x in ref],
        ref_rejected_logps=[x["ref_rejected"] for x in ref],
    )


def fitting_pairs(
    rows: list[dict[str, Any]], tokenizer: Any, max_len: int, chat: bool, system: str | None = None
) -> list[dict[str, Any]]:
    """The pairs (``prompt``, ``chosen``, ``rejected``; ``rejected_ends`` False: a truncated rejected response,
    which trains without an eos) whose prompt + response fits ``max_len`` tokens on both sides; the others are
    dropped."""
    if not rows:
        return rows
    prompt_ids = prompt_token_ids(tokenizer, [r["prompt"] for r in rows], chat, system)
    chosen_ids = response_token_ids(tokenizer, [r["chosen"] for r in rows])
    rejected_ids = response_token_ids(tokenizer, [r["rejected"] for r in rows],
                                      [r.get("rejected_ends", True) for r in rows])  # fmt: skip
    return [rows[i] for i in check_pair_lengths(prompt_ids, chosen_ids, rejected_ids, max_len, drop_long=True)]
