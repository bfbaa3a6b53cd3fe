"""The math of PPO (Schulman et al., arXiv 1707.06347; as in trlx, docs/selfimprove.md): generalized advantage
estimation over response tokens, the clipped policy and value losses, and per-token log-probs and values, each
tested against a direct reference (tests/test_ppo_math.py). The loop that uses them is ``ppo.py``."""

from __future__ import annotations

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalized advantage estimates over the masked (response) positions of each row.

    ``rewards``, ``values``, ``mask``: (B, T); positions outside the mask are skipped, so a response may sit
    anywhere in the row. The value after the last response token is 0 (the episode ends at eos)."""
    b, t = rewards.shape
    adv = torch.zeros_like(rewards)
    next_value = torch.zeros(b, dtype=rewards.dtype, device=rewards.device)
    next_adv = torch.zeros_like(next_value)
    for i in range(t - 1, -1, -1):
        m = mask[:, i].to(rewards.dtype)
        delta = rewards[:, i] + gamma * next_value - values[:, i]
        a = delta + gamma * lam * next_adv
        adv[:, i] = a * m
        next_value = torch.where(m.bool(), values[:, i], next_value)
        next_adv = torch.where(m.bool(), a, next_adv)
    return adv


def ppo_losses(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    value_clip: float,
    n_tokens: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Clipped surrogate policy loss and clipped value loss, both token means over ``mask`` (sums over
    ``mask`` divided by ``n_tokens`` when given: one process's share of a minibatch spread over several)."""
    m = mask.to(logp.dtype)
    n = m.sum().clamp(min=1) if n_tokens is None else torch.tensor(n_tokens, dtype=logp.dtype, device=logp.device)
    ratio = torch.exp(logp - old_logp)
    pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    pg_loss = (pg * m).sum() / n
    v_clipped = old_values + (values - old_values).clamp(-value_clip, value_clip)
    vf = 0.5 * torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)
    vf_loss = (vf * m).sum() / n
    with torch.no_grad():
        stats = {
            "clip_fraction": float((((ratio - 1).abs() > clip).to(m.dtype) * m).sum() / n),
            "approx_kl": float((((ratio - 1) - torch.log(ratio)) * m).sum() / n),
        }
    return pg_loss, vf_loss, stats


def token_logprobs_and_values(
    model: torch.nn.Module,
    value_head: torch.nn.Module | None,
    batch: dict[str, torch.Tensor],
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Per-position log-prob of the next token under ``softmax(logits / temperature)`` (the distribution the
    samples were drawn from, so PPO stays on-policy at any temperature), the value of the state before it,
    and the response mask, all of shape (B, T-1) aligned on the predicted token."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=value_head is not None,
    )
    logits = out.logits[:, :-1].float() / temperature
    target = batch["input_ids"][:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    mask = batch["labels"][:, 1:] != -100
    values = value_head(out.hidden_states[-1][:, :-1].float()).squeeze(-1) if value_head is not None else None
    return logp, values, mask
