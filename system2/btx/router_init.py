"""Initial router weights of the mixed model: one ``[n_experts, d]`` matrix per MoE layer, the only new
parameters BTX adds (arXiv 2403.07816, section 3, "MiX"). The paper's initialisation is unconfirmed; two
are offered.

- ``random``: ``N(0, std^2)`` with ``std`` the seed's ``initializer_range`` (0.02 for Llama), the
  initialisation ``transformers`` gives a new Mixtral router; seeded, the global random state untouched.
  Small logits route almost uniformly at first, and MoE fine-tuning learns the routing.
- ``mean_hidden``: the router row of expert i at layer l is the L2-normalised mean of the MoE-layer input
  (the output of ``post_attention_layernorm``, which is what the router sees) over the non-padding tokens
  of a few batches of expert i's own domain data, run through **expert i's own dense model**. A token then
  starts out routed towards the experts whose domain it resembles. This is mergekit-moe's ``hidden`` gate
  (mean over tokens, no negative prompts) on each expert's own model instead of one shared base model.
  Unit rows keep the logit scale that of the hidden state (``|x| cos``), not of the data's norm.

For ``mean_hidden`` each model is loaded on its own and freed before the next (one dense model resident).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Literal

import torch

from system2.config import ConfigError

RouterInit = Literal["random", "mean_hidden"]
ROUTER_INITS = ("random", "mean_hidden")
# a batch of token ids: ``input_ids`` [B, T] alone (no padding) or a mapping with input_ids and attention_mask
TokenBatch = torch.Tensor | Mapping[str, torch.Tensor]


def random_routers(n_layers: int, n_experts: int, hidden_size: int, std: float, seed: int) -> torch.Tensor:
    """``[n_layers, n_experts, hidden_size]`` float32 weights drawn from ``N(0, std^2)`` with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n_layers, n_experts, hidden_size, generator=generator) * std


def as_batch(batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of a token batch (a mask of ones when none is given)."""
    if isinstance(batch, torch.Tensor):
        return batch, torch.ones_like(batch)
    ids = batch["input_ids"]
    return ids, batch.get("attention_mask", torch.ones_like(ids))


def check_router_data(data: Sequence[Sequence[TokenBatch]], vocab_size: int) -> None:
    """Refuse malformed router data (naming the expert and batch) before any model is loaded."""
    for i, batches in enumerate(data):
        if isinstance(batches, (torch.Tensor, Mapping)) or len(batches) == 0:
            raise ConfigError(
                f"router_data[{i}] must be a non-empty list of token batches (LongTensor [B, T] or a dict with "
                "input_ids and attention_mask)"
            )
        for j, batch in enumerate(batches):
            where = f"router_data[{i}][{j}]"
            if not isinstance(batch, (torch.Tensor, Mapping)) or (
                isinstance(batch, Mapping) and "input_ids" not in batch
            ):
                raise ConfigError(f"{where} is not a LongTensor [B, T] nor a dict with input_ids")
            ids, mask = as_batch(batch)
            if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32) or mask.shape != ids.shape:
                raise ConfigError(
                    f"{where}: input_ids must be an integer tensor [B, T] and attention_mask the same shape, got "
                    f"{ids.dtype} {list(ids.shape)} and {list(mask.shape)}"
                )
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
                raise ConfigError(f"{where}: token ids must be in [0, {vocab_size}) (the experts' vocabulary)")
            if int(mask.sum()) == 0:
                raise ConfigError(f"{where}: the attention mask keeps no token")


@torch.no_grad()
def mean_moe_inputs(model_dir: str | os.PathLike[str], batches: Sequence[TokenBatch]) -> torch.Tensor:
    """``[n_layers, d]``: the mean over non-padding tokens of each layer's MLP input in the dense model
    stored in ``model_dir``."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    model.eval()
    layers = model.model.layers
    sums = torch.zeros(len(layers), model.config.hidden_size, dtype=torch.float64)
    current: dict[str, torch.Tensor] = {}

    def hook(layer: int):
        def capture(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            sums[layer] += (args[0].double() * current["mask"][..., None]).sum((0, 1))

        return capture

    handles = [layer.mlp.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    count = 0.0
    try:
        for batch in batches:
            ids, mask = as_batch(batch)
            current["mask"] = mask.double()
            model(input_ids=ids.long(), attention_mask=mask.long(), use_cache=False)
            count += float(mask.sum())
    finally:
        for h in handles:
            h.remove()
    del model
    return (sums / count).float()


def mean_hidden_routers(
    model_dirs: Sequence[str | os.PathLike[str]], data: Sequence[Sequence[TokenBatch]]
) -> torch.Tensor:
    """``[n_layers, n_experts, d]``: row i of each layer is the L2-normalised ``mean_moe_inputs`` of
    ``model_dirs[i]`` on ``data[i]``."""
    means = torch.stack([mean_moe_inputs(d, batches) for d, batches in zip(model_dirs, data, strict=True)], dim=1)
    return means / means.norm(dim=-1, keepdim=True).clamp(min=1e-12)
