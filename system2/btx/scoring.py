"""What the BTX comparisons measure (arXiv 2403.07816): per-document validation loss, where a mixed model routes
each document's tokens, the Branch-Train-Merge ensemble, and training compute as ``6 x active parameters x
tokens``.

Branch-Train-Merge (Li et al., arXiv 2208.03306) keeps the experts as whole dense models with no MoE
fine-tuning. Here it is scored as the uniform Bayesian mixture of the experts over the whole document,
``p(x) = (1/N) sum_i p_i(x)``: by the chain rule each token is predicted by the experts weighted by their
posterior given the document so far, so a document is routed to the experts that explain its prefix best,
with no look-ahead. (BTM's own ensembles estimate that posterior from a few prefix tokens; the full posterior
is our choice.) ``usage_i`` of a BTM document is expert i's posterior after the whole document.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch

from system2.btx.routing import routing_of, variant_scores
from system2.lm.io import load_lm
from system2.lm.logprobs import labelled_logprobs
from system2.lm.reversal_data import plain_lm_data


def active_params(config: Any) -> int:
    """Parameters one token passes through in a Llama or Mixtral model (the input embedding is a lookup and
    does not count; the output head does): the ``N`` in the ``6 N D`` training-compute estimate. A Mixtral
    layer counts its router and ``num_experts_per_tok`` experts."""
    d, layers, heads = config.hidden_size, config.num_hidden_layers, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    attention = 2 * d * heads * head_dim + 2 * d * kv * head_dim
    experts = getattr(config, "num_local_experts", None)
    active, router = (config.num_experts_per_tok, experts * d) if experts else (1, 0)
    per_layer = attention + 2 * d + active * 3 * d * config.intermediate_size + router
    return layers * per_layer + d + config.vocab_size * d


def _routed_shares(router_logits: Sequence[torch.Tensor], model: Any, mask: torch.Tensor) -> torch.Tensor:
    """``[B, N]``: per document, the share of its routed token slots each expert receives, averaged over layers
    (soft routing sends every token to every expert: there, each expert's share of the routing weight)."""
    routing, k = routing_of(model), int(model.config.num_experts_per_tok)
    n = int(model.config.num_local_experts)
    b, t = mask.shape
    shares = torch.zeros(b, n)
    for logits in router_logits:
        weights, index = variant_scores(logits.reshape(-1, n).float().cpu(), routing, k, training=False)
        fill = weights if routing == "soft" else torch.ones_like(weights)
        slots = torch.zeros(b * t, n).scatter_add_(1, index, fill).reshape(b, t, n)
        per_token = 1 if routing == "soft" else index.shape[-1]
        shares += (slots * mask[..., None]).sum(1) / (mask.sum(1, keepdim=True) * per_token)
    return shares / len(router_logits)


@torch.no_grad()
def document_scores(
    model: Any, tokenizer: Any, texts: Sequence[str], max_len: int, batch_size: int = 16
) -> list[dict[str, Any]]:
    """One dict per document: ``nll`` (summed over its predicted tokens, nats), ``tokens``, and for a mixture of
    experts ``usage`` (each expert's share of the document's routed slots, averaged over layers)."""
    model.eval()
    moe = hasattr(model.config, "num_local_experts")
    data = plain_lm_data(tokenizer, list(texts), max_len)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        batch = data.batch(list(range(start, min(start + batch_size, len(texts)))), 0)
        ids, attention = batch["input_ids"].to(model.device), batch["attention_mask"].to(model.device)
        out = model(input_ids=ids, attention_mask=attention, use_cache=False,
                    **({"output_router_logits": True} if moe else {}))  # fmt: skip
        logp, mask = labelled_logprobs(out.logits.float().cpu(), batch["labels"])
        shares = _routed_shares(out.router_logits, model, batch["attention_mask"].float()) if moe else None
        for i in range(logp.shape[0]):
            row: dict[str, Any] = {"nll": -float(logp[i].sum()), "tokens": int(mask[i].sum())}
            if shares is not None:
                row["usage"] = shares[i].tolist()
            rows.append(row)
    return rows


def btm_scores(
    expert_dirs: Sequence[str | os.PathLike[str]], texts: Sequence[str], max_len: int, batch_size: int = 16
) -> list[dict[str, Any]]:
    """``document_scores`` of the Branch-Train-Merge ensemble of the dense experts (module docstring): ``nll`` of
    the uniform mixture ``-log((1/N) sum_i p_i(doc))``, ``usage`` the experts' posterior after the document."""
    per_expert = []
    for path in expert_dirs:  # one expert resident at a time
        model, tok = load_lm(path, pad_with_eos=True)
        per_expert.append(document_scores(model, tok, texts, max_len, batch_size))
        del model
    rows = []
    for doc in zip(*per_expert, strict=True):
        logp = torch.tensor([-r["nll"] for r in doc], dtype=torch.float64)
        mixture = torch.logsumexp(logp, 0) - math.log(len(doc))
        rows.append({"nll": -float(mixture), "tokens": doc[0]["tokens"], "usage": torch.softmax(logp, 0).tolist()})
    return rows
