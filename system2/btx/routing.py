"""Routing variants of a mixed model (BTX ablations, arXiv 2403.07816, section 4; the variants' exact forms there are
unconfirmed, so the standard forms are used and named here).

- ``topk`` (default, top-2): ``softmax(TopK(W x))``, Mixtral's own router (``system2.lm.moe.route``).
- ``soft``: every expert, weighted by ``softmax(W x)``. This is Mixtral with ``num_experts_per_tok`` = N (the
  top-N renormalisation divides by 1), so it exports as a standard checkpoint; every expert runs for every
  token, so its active parameters are the model's total.
- ``switch`` (Switch Transformer, Fedus et al. arXiv 2101.03961, section 2.1): the single most probable
  expert, its output scaled by that expert's probability ``p_i(x)``, which is how the router gets a gradient
  from the language-model loss. Mixtral renormalises a single top-1 weight to 1, so this form has no Mixtral
  equivalent: it is measured in this module and not exported.
- ``sample_top1``: in training, one expert drawn from ``softmax(W x)`` (torch's global generator, so the
  training loop's seed and checkpoints make it deterministic and resumable), scaled by its probability; in
  evaluation, as ``switch``. Not exported, for the same reason.

``set_routing`` swaps each layer's router for a ``VariantRouter`` that shares the router's weight, so the
router logits the load-balancing loss reads are recorded as usual, and sets ``num_experts_per_tok`` to the
number of experts a token is routed to (1 for ``switch`` and ``sample_top1``, N for ``soft``: the
load-balancing loss is then constant, so soft routing trains without it).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

ROUTINGS = ("topk", "soft", "switch", "sample_top1")
EXPORTABLE = ("topk", "soft")


def check_routing(routing: str) -> None:
    if routing not in ROUTINGS:
        raise ValueError(f"unknown routing {routing!r}: use one of {', '.join(ROUTINGS)}")


def variant_scores(logits: torch.Tensor, routing: str, top_k: int, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights, experts)`` of each token under ``routing``, both ``[tokens, k]`` (k = experts per token);
    the weights are float32."""
    check_routing(routing)
    probs = torch.softmax(logits.float(), dim=-1)
    if routing == "topk":
        top, index = torch.topk(probs, top_k, dim=-1)
        return top / top.sum(-1, keepdim=True), index
    if routing == "soft":
        index = torch.arange(probs.shape[-1], device=probs.device).expand_as(probs)
        return probs, index
    if routing == "sample_top1" and training:
        index = torch.multinomial(probs.detach(), 1)
    else:
        index = probs.argmax(-1, keepdim=True)
    return probs.gather(-1, index), index


def _router_class() -> type:
    from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter

    class VariantRouter(MixtralTopKRouter):
        """A Mixtral router (same weight, same recorded logits) with another routing rule."""

        def __init__(self, base: Any, routing: str, top_k: int) -> None:
            torch.nn.Module.__init__(self)
            self.weight = base.weight  # shared: optimiser state and checkpoints see one parameter
            self.hidden_dim, self.num_experts = base.hidden_dim, base.num_experts
            self.routing, self.top_k = routing, top_k

        def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            logits = F.linear(hidden_states.reshape(-1, self.hidden_dim), self.weight)
            weights, index = variant_scores(logits, self.routing, self.top_k, self.training)
            return logits, weights, index

    return VariantRouter


def set_routing(model: Any, routing: str, top_k: int | None = None) -> Any:
    """Route every MoE layer of the Mixtral ``model`` with ``routing`` (in place; returns the model).
    ``top_k`` (``topk`` only) defaults to the model's ``num_experts_per_tok``."""
    check_routing(routing)
    config = model.config
    n = int(config.num_local_experts)
    k = {"topk": top_k or int(config.num_experts_per_tok), "soft": n}.get(routing, 1)
    if not 1 <= k <= n:
        raise ValueError(f"top_k must be in [1, {n}] (the number of experts), got {k}")
    cls = _router_class()
    for layer in model.model.layers:
        block = layer.mlp
        block.gate = cls(block.gate, routing, k).train(block.training)  # a new module would start in training mode
        block.top_k = k
    config.num_experts_per_tok = k
    return model


def routing_of(model: Any) -> str:
    """The routing rule of ``model``'s MoE layers (``topk`` for a plain Mixtral)."""
    return getattr(model.model.layers[0].mlp.gate, "routing", "topk")


def check_exportable(model: Any) -> None:
    """Refuse to save a model whose routing a standard Mixtral checkpoint cannot express."""
    routing = routing_of(model)
    if routing not in EXPORTABLE:
        raise ValueError(
            f"{routing} routing scales the one chosen expert by its probability, which Mixtral (it renormalises a "
            "single top-1 weight to 1) cannot express: evaluate it in system2, or train with routing topk or soft"
        )
