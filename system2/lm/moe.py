"""Token routing and the load-balancing loss of mixture-of-experts layers, as BTX uses them (arXiv 2403.07816,
section 3, "MiX").

Routing: ``g(W x) = softmax(TopK(W x))`` with top-2: the softmax is taken over the k largest logits only.
Mixtral (``MixtralTopKRouter``) takes the softmax over all logits, keeps the top k and renormalises; the
two are equal, because renormalising ``exp(l_i) / Z`` over the kept experts cancels ``Z``.

Load balancing (the paper's form, Switch Transformer style), per MoE layer:

    aux = N * sum_i u_i * p_i

with ``u_i`` the fraction of routed token slots that go to expert i (each token fills k slots, so the
``u_i`` sum to 1 and a perfectly balanced router gives aux = 1) and ``p_i`` the mean router probability
(softmax over all N logits) of expert i. Padding tokens are left out. The layers' values are **averaged**,
so the coefficient alpha means the same for any depth. Gradients reach the router through ``p`` only.

How it differs from ``transformers``' ``load_balancing_loss_func`` (Mixtral's ``aux_loss``): that function
pools token counts and probabilities over all layers before multiplying (``N * sum_i U_i * P_i`` with
``U_i``, ``P_i`` the means over layers and tokens) and its usage fractions sum to k. With one MoE layer it
equals k times the value here; with several layers the two differ by more than a constant, since a mean of
products is not a product of means (it is k times the value here whenever every layer routes alike).

Unconfirmed: the paper's normalisation of ``u_i`` under top-2 and whether layers are summed or averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def route(router_logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(TopK(logits))``: the weights (float32) and indices of the ``top_k`` experts of each token,
    both ``[..., top_k]``."""
    top, index = torch.topk(router_logits, top_k, dim=-1)
    return torch.softmax(top.float(), dim=-1), index


def _flat_mask(attention_mask: torch.Tensor | None, rows: int, device: torch.device) -> torch.Tensor:
    if attention_mask is None:
        return torch.ones(rows, device=device)
    mask = attention_mask.reshape(-1).to(device=device, dtype=torch.float32)
    if mask.numel() != rows:
        raise ValueError(f"the attention mask has {mask.numel()} tokens but the router logits have {rows} rows")
    return mask


def _check(router_logits_per_layer: Sequence[torch.Tensor], top_k: int, n_experts: int) -> None:
    if not router_logits_per_layer:
        raise ValueError("no router logits: run the model with output_router_logits=True")
    if not 1 <= top_k <= n_experts:
        raise ValueError(f"top_k must be in [1, n_experts={n_experts}], got {top_k}")
    for i, logits in enumerate(router_logits_per_layer):
        if logits.shape[-1] != n_experts:
            raise ValueError(f"router logits of layer {i} have {logits.shape[-1]} experts, expected {n_experts}")


def expert_usage(
    router_logits_per_layer: Sequence[torch.Tensor],
    top_k: int,
    n_experts: int,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, p)``, both ``[layers, n_experts]``: per layer, the fraction of routed token slots each expert
    receives (rows sum to 1) and each expert's mean router probability (rows sum to 1), over the tokens
    that ``attention_mask`` keeps. Each layer's logits are ``[tokens, n_experts]`` or ``[B, T, n_experts]``."""
    _check(router_logits_per_layer, top_k, n_experts)
    usage, probs = [], []
    for logits in router_logits_per_layer:
        flat = logits.reshape(-1, n_experts)
        mask = _flat_mask(attention_mask, flat.shape[0], flat.device)
        p = torch.softmax(flat.float(), dim=-1)
        _, index = torch.topk(flat, top_k, dim=-1)
        routed = torch.zeros_like(p).scatter_(-1, index, 1.0)
        tokens = mask.sum().clamp(min=1)
        usage.append((routed * mask[:, None]).sum(0) / (tokens * top_k))
        probs.append((p * mask[:, None]).sum(0) / tokens)
    return torch.stack(usage), torch.stack(probs)


def load_balancing_loss(
    router_logits_per_layer: Sequence[torch.Tensor],
    top_k: int,
    n_experts: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The paper's auxiliary loss ``N * sum_i u_i * p_i`` per MoE layer, averaged over layers (module
    docstring); multiply by alpha (0.01 in the paper, ``router_aux_loss_coef`` of a mixed checkpoint)."""
    u, p = expert_usage(router_logits_per_layer, top_k, n_experts, attention_mask)
    return n_experts * (u * p).sum(-1).mean()
