"""SFT, DPO and DPO+NLL losses on summed sequence log-probabilities, and the loss functions the training
loop takes (``make_sft_loss_fn``, ``make_dpo_loss_fn``, ``make_moe_sft_loss_fn``) on the batches of
``system2.lm.data``.

DPO (sigmoid form, Rafailov et al.): with ``log pi(y|x)`` the *sum* of response-token log-probs,
``L = -log sigma(beta * [(pi_c - ref_c) - (pi_r - ref_r)])`` averaged over pairs.

DPO+NLL (IRPO, Pang et al. 2024, v3): ``L = L_DPO + alpha * L_NLL``. Two normalisations of the NLL of the
chosen response:

- ``nll_norm="sequence"`` (the paper): each chosen sequence's NLL divided by its own length, then averaged
  over the pairs; every pair weighs the same.
- ``nll_norm="token"`` (TRL's ``loss_type=["sigmoid", "sft"]``): the summed NLL of all chosen tokens in the
  micro-batch divided by their total count, so long chosen responses weigh more.

The lengths count response tokens including eos (the tokens the model is trained to produce).

MoE fine-tuning (BTX, arXiv 2403.07816, section 3): the SFT loss plus ``alpha`` times the load-balancing
loss of a Mixtral-style model, in the paper's form (``system2.lm.moe.load_balancing_loss``) or in
``transformers``' form (the model's ``aux_loss``), with alpha the checkpoint's ``router_aux_loss_coef``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F

from system2.lm.logprobs import labelled_logprobs, token_logprobs
from system2.lm.moe import expert_usage, load_balancing_loss

NllNorm = Literal["sequence", "token"]
NLL_NORMS = ("sequence", "token")
AuxForm = Literal["paper", "transformers"]
AUX_FORMS = ("paper", "transformers")

LossFnWithMetrics = Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, int, dict[str, float]]]


def sft_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], norm: NllNorm = "sequence"
) -> tuple[torch.Tensor, int]:
    """Negative log-likelihood of the response tokens: per sequence averaged then over the batch
    (``"sequence"``, the planning loss convention), or averaged over all tokens (``"token"``); returns
    (loss, number of response tokens)."""
    logp, mask = token_logprobs(model, batch)
    n = mask.sum(1)
    return nll_from_sums(-logp.sum(1), n, norm), int(n.sum())


def nll_from_sums(nll: torch.Tensor, lengths: torch.Tensor, norm: NllNorm) -> torch.Tensor:
    """Mean NLL from per-sequence summed NLLs ``[B]`` and token counts ``[B]`` under ``norm``."""
    if norm == "sequence":
        return (nll / lengths.clamp(min=1)).mean()
    if norm == "token":
        return nll.sum() / lengths.sum().clamp(min=1)
    raise ValueError(f"unknown NLL normalisation {norm!r}: use one of {', '.join(NLL_NORMS)}")


def dpo_loss(
    pol_chosen: torch.Tensor,
    pol_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sigmoid DPO loss over a batch of pairs (all inputs ``[B]`` summed log-probs) and the per-step
    metrics: mean log-probs of chosen/rejected, implicit rewards ``beta * (pi - ref)``, their margin and
    the share of pairs whose chosen reward is strictly higher."""
    chosen_rewards = beta * (pol_chosen - ref_chosen)
    rejected_rewards = beta * (pol_rejected - ref_rejected)
    margins = chosen_rewards - rejected_rewards
    loss = -F.logsigmoid(margins).mean()
    with torch.no_grad():
        metrics = {
            "logps/chosen": pol_chosen.float().mean().item(),
            "logps/rejected": pol_rejected.float().mean().item(),
            "rewards/chosen": chosen_rewards.float().mean().item(),
            "rewards/rejected": rejected_rewards.float().mean().item(),
            "rewards/margins": margins.float().mean().item(),
            "rewards/accuracies": (margins > 0).float().mean().item(),
            "loss/dpo": loss.item(),
        }
    return loss, metrics


def dpo_nll_loss(
    pol_chosen: torch.Tensor,
    pol_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    chosen_nll: torch.Tensor,
    chosen_len: torch.Tensor,
    beta: float = 0.1,
    alpha: float = 1.0,
    nll_norm: NllNorm = "sequence",
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_DPO + alpha * L_NLL`` (IRPO). ``chosen_nll`` is the summed NLL of each chosen response
    (normally ``-pol_chosen``) and ``chosen_len`` its token count; ``nll_norm`` picks the paper's
    per-sequence normalisation or TRL's token mean (module docstring)."""
    dpo, metrics = dpo_loss(pol_chosen, pol_rejected, ref_chosen, ref_rejected, beta)
    nll = nll_from_sums(chosen_nll, chosen_len, nll_norm)
    metrics["loss/nll"] = nll.item()
    return dpo + alpha * nll, metrics


def make_sft_loss_fn(norm: NllNorm = "sequence") -> Callable[[torch.nn.Module, dict], tuple[torch.Tensor, int]]:
    """The SFT loss for ``train``: response NLL, per-sequence mean then batch mean (or token mean)."""
    if norm not in NLL_NORMS:
        raise ValueError(f"unknown NLL normalisation {norm!r}: use one of {', '.join(NLL_NORMS)}")

    return _marked(functools.partial(sft_loss, norm=norm), norm)


def _marked(fn: functools.partial, norm: NllNorm) -> functools.partial:
    """``fn`` with ``token_mean`` set for a token-averaged loss: ``train`` then averages over every token of an
    optimizer step (all micro-steps, all processes) instead of averaging per-batch means."""
    fn.token_mean = norm == "token"  # type: ignore[attr-defined]
    return fn


def make_dpo_loss_fn(beta: float = 0.1, alpha: float = 0.0, nll_norm: NllNorm = "sequence") -> LossFnWithMetrics:
    """The DPO (``alpha=0``) or DPO+NLL loss for ``train`` on ``PreferenceData`` batches; it returns
    (loss, response tokens, metrics) so the loop logs chosen/rejected log-probs, rewards, margins,
    accuracy and the chosen NLL every step."""
    if beta <= 0 or alpha < 0:
        raise ValueError(f"DPO needs beta > 0 and alpha >= 0, got beta={beta}, alpha={alpha}")
    if nll_norm not in NLL_NORMS:
        raise ValueError(f"unknown NLL normalisation {nll_norm!r}: use one of {', '.join(NLL_NORMS)}")

    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, dict[str, float]]:
        logp, mask = token_logprobs(model, batch)
        sums, n = logp.sum(1), mask.sum(1)
        b = batch["ref_chosen"].shape[0]
        loss, metrics = dpo_nll_loss(
            sums[:b], sums[b:], batch["ref_chosen"], batch["ref_rejected"], -sums[:b], n[:b], beta, alpha, nll_norm
        )
        return loss, int(n.sum()), metrics

    return loss_fn


def moe_sft_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    norm: NllNorm = "sequence",
    aux_coef: float | None = None,
    aux_form: AuxForm = "paper",
) -> tuple[torch.Tensor, int, dict[str, float]]:
    """``sft_loss + alpha * aux`` for a Mixtral-style model (one forward pass with router logits); alpha is
    ``aux_coef`` or the model's ``router_aux_loss_coef``. Metrics: the NLL, the unscaled aux loss and each
    expert's share of routed tokens averaged over layers (``router/usage_i``: a dead expert shows as 0)."""
    config: Any = getattr(model, "module", model).config
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False, output_router_logits=True
    )
    logp, mask = labelled_logprobs(out.logits, batch["labels"])
    n = mask.sum(1)
    nll = nll_from_sums(-logp.sum(1), n, norm)
    k, n_experts = int(config.num_experts_per_tok), int(config.num_local_experts)
    if aux_form == "paper":
        aux = load_balancing_loss(out.router_logits, k, n_experts, batch["attention_mask"])
    else:
        aux = out.aux_loss
    with torch.no_grad():
        usage, _ = expert_usage(out.router_logits, k, n_experts, batch["attention_mask"])
    alpha = float(config.router_aux_loss_coef) if aux_coef is None else aux_coef
    metrics = {"loss/nll": nll.item(), "loss/aux": aux.item()}
    metrics.update({f"router/usage_{i}": float(u) for i, u in enumerate(usage.mean(0).tolist())})
    return nll + alpha * aux, int(n.sum()), metrics


def make_moe_sft_loss_fn(
    norm: NllNorm = "sequence", aux_coef: float | None = None, aux_form: AuxForm = "paper"
) -> LossFnWithMetrics:
    """The MoE fine-tuning loss for ``train`` on ``SFTData`` batches (``moe_sft_loss``): response NLL plus
    alpha times the load-balancing loss, logged as ``loss/nll``, ``loss/aux`` and ``router/usage_i``."""
    if norm not in NLL_NORMS:
        raise ValueError(f"unknown NLL normalisation {norm!r}: use one of {', '.join(NLL_NORMS)}")
    if aux_form not in AUX_FORMS:
        raise ValueError(f"unknown load-balancing loss form {aux_form!r}: use one of {', '.join(AUX_FORMS)}")
    if aux_coef is not None and not aux_coef >= 0:
        raise ValueError(f"aux_coef must be >= 0 (or None for the model's router_aux_loss_coef), got {aux_coef}")
    return _marked(functools.partial(moe_sft_loss, norm=norm, aux_coef=aux_coef, aux_form=aux_form), norm)
