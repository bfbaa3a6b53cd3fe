"""MiX (arXiv 2403.07816, section 3): turn N dense expert LLMs into one Mixtral-style MoE checkpoint.

In every layer the experts' feed-forward networks become the experts of a sparse MoE layer, top-k routed by
a new router; every other parameter (attention, norms, embeddings, output head) is the element-wise mean
over the experts. (mergekit-moe instead copies those from one base model.) The seed's own FFN can join as
an extra, last expert (``include_seed_expert``); it does not enter the averages.

The output is a standard ``MixtralForCausalLM`` checkpoint in the layout ``save_pretrained`` writes (and
transformers 4.x reads natively; 5.x fuses the experts on load):

- ``model.layers.{l}.block_sparse_moe.gate.weight`` ``[E, d]``: the router;
- ``model.layers.{l}.block_sparse_moe.experts.{e}.w1/w3/w2.weight``: expert e's Llama
  ``mlp.gate_proj/up_proj/down_proj`` (``[ff, d]``, ``[ff, d]``, ``[d, ff]``);
- every other tensor under its Llama name.

Tensors are streamed (``system2.btx.tensors``): each output tensor is made from one expert tensor at a time
and written before the next is made, so at most one output tensor, one input tensor and a float64
accumulator are resident, whatever N is. Averages are taken in float64 and rounded once to the output dtype.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from system2.btx.checkpoints import (
    EMBEDDING,
    FFN_PARTS,
    DenseCheckpoint,
    check_out_dir,
    check_same_architecture,
    copy_files,
    ffn_name,
    read_dense,
    tokenizer_files,
)
from system2.btx.router_init import (
    ROUTER_INITS,
    RouterInit,
    TokenBatch,
    check_router_data,
    mean_hidden_routers,
    random_routers,
)
from system2.btx.tensors import PlannedTensor, write_shards
from system2.config import ConfigError
from system2.runs import atomic_dir

MIXTRAL_EXPERT = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"}
# config fields a Mixtral config takes over from the Llama-like experts
SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
    "attention_dropout",
    "rope_parameters",
    "rope_theta",
    "rope_scaling",
    "sliding_window",
)
SKIPPED = re.compile(r"\.rotary_emb\.inv_freq$")  # a buffer some old Llama checkpoints saved
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")
DEFAULT_SHARD_BYTES = 5 * 2**30


def router_name(layer: int) -> str:
    return f"model.layers.{layer}.block_sparse_moe.gate.weight"


def expert_name(layer: int, expert: int, part: str) -> str:
    return f"model.layers.{layer}.block_sparse_moe.experts.{expert}.{MIXTRAL_EXPERT[part]}.weight"


def mix(
    expert_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    seed_dir: str | os.PathLike[str] | None = None,
    include_seed_expert: bool = False,
    router_init: RouterInit = "random",
    router_data: Sequence[Sequence[TokenBatch]] | None = None,
    top_k: int = 2,
    aux_loss_coef: float = 0.01,
    router_seed: int = 0,
    dtype: torch.dtype | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    overwrite: bool = False,
) -> Path:
    """Mix the Llama-like experts in ``expert_dirs`` into a Mixtral checkpoint in ``out_dir``; returns it.

    ``include_seed_expert`` adds the FFN of ``seed_dir`` as the last expert (a reading of the paper's 4
    experts as 3 domains plus the seed: unconfirmed). ``router_init`` is ``random`` (seeded by
    ``router_seed``) or ``mean_hidden`` from
    ``router_data``: one list of token batches per expert, in ``expert_dirs`` order, plus optionally one
    for the seed (without it, the seed's row is computed from all the domains' batches); see
    ``system2.btx.router_init``. The config routes ``top_k`` experts per token and sets
    ``router_aux_loss_coef`` to ``aux_loss_coef`` (the paper's alpha, 0.01) with ``output_router_logits``
    on (when alpha > 0), so a fine-tune through ``transformers`` adds the load-balancing loss. ``dtype``
    (default: each tensor's dtype in the first expert) is the output dtype; the weights are split into
    safetensors shards of at most ``max_shard_bytes``. Tokenizer and generation config come from the first
    expert. All input is checked before any tensor is read."""
    experts, seed_ckpt, out = _check_inputs(
        expert_dirs, out_dir, seed_dir, include_seed_expert, router_init, router_data, top_k, aux_loss_coef,
        max_shard_bytes, overwrite,
    )  # fmt: skip
    sources = experts + ([seed_ckpt] if include_seed_expert and seed_ckpt is not None else [])
    first = experts[0]
    if router_init == "random":
        std = float(first.config.get("initializer_range", 0.02))
        routers = random_routers(first.n_layers, len(sources), first.hidden_size, std, router_seed)
    else:
        assert router_data is not None
        data = list(router_data)
        if len(data) < len(sources):
            data.append([b for batches in data for b in batches])
        routers = mean_hidden_routers([s.path for s in sources], data)
    out_dtype = dtype or first.tensors.dtype(EMBEDDING)
    config = mixtral_config(first, len(sources), top_k, aux_loss_coef, out_dtype)
    plan = mixed_plan(experts, sources, routers, dtype)
    with atomic_dir(out) as tmp:
        write_shards(plan, tmp, max_shard_bytes)
        config.save_pretrained(tmp)
        copy_files(tokenizer_files(first.path), tmp)
    return out


def _check_inputs(
    expert_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    seed_dir: str | os.PathLike[str] | None,
    include_seed_expert: bool,
    router_init: str,
    router_data: Sequence[Sequence[TokenBatch]] | None,
    top_k: int,
    aux_loss_coef: float,
    max_shard_bytes: int,
    overwrite: bool,
) -> tuple[list[DenseCheckpoint], DenseCheckpoint | None, Path]:
    if isinstance(expert_dirs, (str, os.PathLike)) or len(expert_dirs) < 1:
        raise ConfigError("mix needs a list of at least one expert directory in expert_dirs")
    if router_init not in ROUTER_INITS:
        raise ConfigError(f"router_init must be one of {', '.join(ROUTER_INITS)}, got {router_init!r}")
    if include_seed_expert and seed_dir is None:
        raise ConfigError("include_seed_expert=True needs seed_dir (the checkpoint the experts were branched from)")
    if seed_dir is not None and not include_seed_expert:
        raise ConfigError("seed_dir is used only as the extra expert: pass include_seed_expert=True, or drop seed_dir")
    n_experts = len(expert_dirs) + int(include_seed_expert)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= n_experts:
        raise ConfigError(f"top_k must be an integer in [1, {n_experts}] (the number of experts), got {top_k!r}")
    if not (math.isfinite(aux_loss_coef) and aux_loss_coef >= 0):
        raise ConfigError(f"aux_loss_coef must be a finite number >= 0, got {aux_loss_coef!r}")
    if max_shard_bytes < 1:
        raise ConfigError(f"max_shard_bytes must be >= 1, got {max_shard_bytes}")
    experts = [read_dense(d, f"expert_dirs[{i}]") for i, d in enumerate(expert_dirs)]
    for other in experts[1:]:
        check_same_architecture(experts[0], other)
    seed_ckpt = None
    if seed_dir is not None:
        seed_ckpt = read_dense(seed_dir, "seed_dir")
        check_same_architecture(experts[0], seed_ckpt)
    inputs = [*expert_dirs, *([seed_dir] if seed_dir is not None else [])]
    out = check_out_dir(out_dir, inputs, overwrite, "out_dir")
    if router_init == "random" and router_data is not None:
        raise ConfigError("router_data is used only with router_init='mean_hidden': drop it, or set router_init")
    if router_init == "mean_hidden":
        if router_data is None:
            raise ConfigError("router_init='mean_hidden' needs router_data: a list of token batches per expert")
        allowed = {len(expert_dirs), n_experts}
        if isinstance(router_data, (torch.Tensor, dict)) or len(router_data) not in allowed:
            seed_note = " (plus optionally one for the seed)" if include_seed_expert else ""
            raise ConfigError(
                f"router_data must hold one list of token batches per expert{seed_note}: {len(expert_dirs)} expected"
            )
        check_router_data(router_data, int(experts[0].config["vocab_size"]))
    return experts, seed_ckpt, out


def mixtral_config(first: DenseCheckpoint, n_experts: int, top_k: int, aux_loss_coef: float, dtype: torch.dtype):
    """The ``MixtralConfig`` of the mix: the experts' shapes and position settings, no sliding window unless
    the experts had one, ``n_experts`` experts routed top-``top_k``, alpha = ``aux_loss_coef``."""
    from transformers import AutoConfig, MixtralConfig

    dense = AutoConfig.from_pretrained(first.path, local_files_only=True).to_dict()
    fields: dict[str, Any] = {k: dense[k] for k in SHARED_FIELDS if k in dense}
    fields.setdefault("sliding_window", None)
    config = MixtralConfig(
        **fields,
        num_local_experts=n_experts,
        num_experts_per_tok=top_k,
        router_aux_loss_coef=aux_loss_coef,
        output_router_logits=aux_loss_coef > 0,
        router_jitter_noise=0.0,
        dtype=str(dtype).removeprefix("torch."),
    )
    config.architectures = ["MixtralForCausalLM"]
    return config


def _layer_of(name: str, n_layers: int) -> int:
    """Sort key of a tensor: its layer, -1 for the embeddings, ``n_layers`` for the final norm and head."""
    m = _LAYER.match(name)
    if m:
        return int(m.group(1))
    return -1 if "embed_tokens" in name else n_layers


def mixed_plan(
    experts: Sequence[DenseCheckpoint],
    sources: Sequence[DenseCheckpoint],
    routers: torch.Tensor,
    dtype: torch.dtype | None,
) -> list[PlannedTensor]:
    """Every tensor of the mixed checkpoint, layer by layer: averages of ``experts``' non-FFN tensors, the
    routers, then the FFNs of ``sources`` (the experts, plus the seed when it joins) as Mixtral experts."""
    first = experts[0]
    n_layers = first.n_layers
    ffn = {ffn_name(layer, part) for layer in range(n_layers) for part in FFN_PARTS}
    averaged = [n for n in first.tensors.names if n not in ffn and not SKIPPED.search(n)]
    by_layer: dict[int, list[str]] = {}
    for name in sorted(averaged, key=lambda n: (_layer_of(n, n_layers), n)):
        by_layer.setdefault(_layer_of(name, n_layers), []).append(name)
    router_dtype = dtype or first.tensors.dtype(EMBEDDING)

    plan: list[PlannedTensor] = []
    for layer in sorted(set(by_layer) | set(range(n_layers))):
        for name in by_layer.get(layer, []):
            out_dtype = dtype or first.tensors.dtype(name)
            make = functools.partial(_average, experts, name, out_dtype)
            plan.append(PlannedTensor(name, first.tensors.shape(name), out_dtype, make))
        if 0 <= layer < n_layers:
            weight = routers[layer].to(router_dtype)
            plan.append(PlannedTensor(router_name(layer), tuple(weight.shape), router_dtype, lambda w=weight: w))
            for e, source in enumerate(sources):
                for part in FFN_PARTS:
                    name = ffn_name(layer, part)
                    out_dtype = dtype or source.tensors.dtype(name)
                    make = functools.partial(_read, source, name, out_dtype)
                    plan.append(PlannedTensor(expert_name(layer, e, part), source.tensors.shape(name), out_dtype, make))
    return plan


def _read(source: DenseCheckpoint, name: str, dtype: torch.dtype) -> torch.Tensor:
    return source.tensors.get(name).to(dtype)


def _average(experts: Sequence[DenseCheckpoint], name: str, dtype: torch.dtype) -> torch.Tensor:
    """The element-wise mean of tensor ``name`` over ``experts``, read one expert at a time."""
    total: torch.Tensor | None = None
    for expert in experts:
        t = expert.tensors.get(name)
        total = t.to(torch.float64) if total is None else total.add_(t.to(torch.float64))
        del t
    assert total is not None
    return total.div_(len(experts)).to(dtype)
