"""Loading and saving of any local Hugging Face causal LM (tiny ones from ``system2.lm.tiny`` and real
checkpoints alike), with errors that say what is wrong, and what a loaded model accepts
(``context_length``). Nothing here touches the Hugging Face hub: every load is ``local_files_only``.

(The from-scratch models of ``system2.nn`` and training checkpoints are ``system2.checkpoint``'s.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from system2.runs import FileProblem, atomic_dir, read_json


def save_lm(model: Any, tokenizer: Any, path: str | os.PathLike[str]) -> Path:
    """Write model and tokenizer with ``save_pretrained`` into ``path`` atomically (a killed job never
    leaves a half-written model directory)."""
    _quiet_transformers()
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(path)


def _quiet_transformers() -> None:
    """No per-file progress bars from save_pretrained/from_pretrained in job logs."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def check_lm_dir(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return ``config.json`` of a local causal-LM directory, or raise an error that says what is wrong."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"model path {str(p)!r} does not exist (models load from local directories only; no hub access)"
        )
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p} is not a model directory: it has no config.json (save one with save_lm)")
    raw = read_json(p / "config.json")
    if not isinstance(raw, dict):
        raise FileProblem(f"{p / 'config.json'} is not a model config (a JSON object): restore it")
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    kind = raw.get("model_type")
    if kind is None or kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        known = "" if kind is None else f" (model_type {kind!r} has no causal-LM class in transformers)"
        raise ValueError(f"{p} does not hold a causal language model{known}")
    arch = raw.get("architectures") or []
    if arch and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in arch):
        raise ValueError(f"{p} holds {', '.join(arch)}, not a causal language model (…ForCausalLM)")
    AutoConfig.from_pretrained(p, local_files_only=True)  # raises on a malformed config
    check_weight_files(p)
    return raw


def check_weight_files(path: Path) -> None:
    """Read the header of every safetensors file in ``path`` (cheap: no tensor is loaded), so truncated or
    damaged weights are named before any work starts."""
    from safetensors import SafetensorError, safe_open

    for f in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt"):
                pass
        except (SafetensorError, OSError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FileProblem(
                f"{f} is not a readable safetensors file ({reason}): it is damaged or truncated"
            ) from None


def load_lm(
    path: str | os.PathLike[str],
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "cpu",
    pad_with_eos: bool = False,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a local directory written by ``save_lm`` or any Hugging Face
    causal-LM checkpoint. ``dtype`` defaults to float32 (set e.g. torch.bfloat16 on GPUs).

    A tokenizer without a pad token is an error unless ``pad_with_eos`` sets the pad token to eos (safe
    here: padding is always tracked by attention masks, never by comparing ids)."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_lm_dir(path)
    _quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - the tokenizers library raises plain Exception on a damaged file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileProblem(f"{path} holds no readable tokenizer ({reason[:300]}): restore its files") from None
    if tokenizer.pad_token_id is None:
        if not pad_with_eos or tokenizer.eos_token_id is None:
            raise ValueError(
                f"the tokenizer in {path} has no pad token: call load_lm(..., pad_with_eos=True) to pad with eos, "
                "or set tokenizer.pad_token = tokenizer.eos_token and save it again"
            )
        tokenizer.pad_token = tokenizer.eos_token
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype or torch.float32)
    except (OSError, RuntimeError, ValueError, SafetensorError) as e:  # damaged weights, mismatched shapes
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileProblem(f"{path} holds no readable model weights ({reason[:300]}): restore them") from None
    model.to(device)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def context_length(model: Any, tokenizer: Any | None = None) -> int:
    """The longest sequence the model accepts: its position limit, or the tokenizer's if smaller."""
    limit = getattr(model.config, "max_position_embeddings", None) or 10**9
    if tokenizer is not None and 0 < getattr(tokenizer, "model_max_length", 0) < 10**8:
        limit = min(limit, int(tokenizer.model_max_length))
    return int(limit)
