"""Model files and training checkpoints, written atomically; nothing is ever unpickled.

- A model directory holds ``config.json`` (with ``model_type``) and ``model.safetensors``.
- A training checkpoint directory ``step-NNNNNNNN/`` holds the model files plus ``trainer.pt`` (optimizer
  state, data position, random states: tensors and plain values only, loaded with ``weights_only=True``).
  It is written under a temporary name and renamed, and ``latest`` names the newest complete one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from system2.runs import atomic_dir, atomic_write_text

MODEL_TYPES: dict[str, tuple[type, type]] = {}


def register_model(model_cls: type, config_cls: type) -> None:
    MODEL_TYPES[model_cls.model_type] = (model_cls, config_cls)


def _register_builtin() -> None:
    from system2.nn.decoder import DecoderConfig, DecoderLM
    from system2.nn.encdec import EncDecConfig, EncoderDecoder

    register_model(EncoderDecoder, EncDecConfig)
    register_model(DecoderLM, DecoderConfig)


def is_hf_model(model: torch.nn.Module) -> bool:
    """A Hugging Face ``transformers`` model (saved with its own ``save_pretrained``)."""
    return callable(getattr(model, "save_pretrained", None)) and hasattr(model, "config")


def write_model_files(model: torch.nn.Module, directory: Path) -> None:
    """Write config.json + model.safetensors into an existing directory (not atomic by itself); a Hugging
    Face model writes its own files with ``save_pretrained``, so the directory loads with ``from_pretrained``."""
    if is_hf_model(model):
        from transformers.utils import logging

        logging.disable_progress_bar()  # no per-file bars in training logs
        model.save_pretrained(directory)
        return
    cfg = {"model_type": model.model_type, **dataclasses.asdict(model.config)}
    (directory / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))


def load_model_weights(model: torch.nn.Module, directory: str | os.PathLike[str]) -> None:
    """Load the weights saved in ``directory`` into ``model`` in place. A Hugging Face model is read back
    with ``from_pretrained`` (which handles sharding, tied weights and renamed keys) and copied over."""
    d = Path(directory)
    if not is_hf_model(model):
        model.load_state_dict(load_file(str(d / "model.safetensors")))
        return
    from transformers.utils import logging

    logging.disable_progress_bar()
    dtype = next(model.parameters()).dtype
    saved = type(model).from_pretrained(d, local_files_only=True, dtype=dtype)
    model.load_state_dict(saved.state_dict())


def save_model(model: torch.nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save a model directory atomically (temporary directory, then rename)."""
    with atomic_dir(path) as tmp:
        write_model_files(model, tmp)
    return Path(path)


def load_model(path: str | os.PathLike[str], map_location: str = "cpu") -> torch.nn.Module:
    """Build the model described by ``path/config.json`` and load its safetensors weights."""
    _register_builtin()
    p = Path(path)
    cfg_file, weights = p / "config.json", p / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{p} is not a model directory: it needs config.json and model.safetensors")
    raw = json.loads(cfg_file.read_text())
    kind = raw.pop("model_type", None)
    if kind not in MODEL_TYPES:
        raise ValueError(f"{cfg_file}: unknown model_type {kind!r}; known: {', '.join(MODEL_TYPES)}")
    model_cls, config_cls = MODEL_TYPES[kind]
    model = model_cls(config_cls(**raw))
    model.load_state_dict(load_file(str(weights), device=map_location))
    return model


def save_checkpoint(
    directory: str | os.PathLike[str], step: int, model: torch.nn.Module, trainer_state: dict[str, Any]
) -> Path:
    """Write ``directory/step-NNNNNNNN`` atomically and point ``directory/latest`` at it."""
    root = Path(directory)
    final = root / f"step-{step:08d}"
    with atomic_dir(final) as tmp:
        write_model_files(model, tmp)
        torch.save(trainer_state, tmp / "trainer.pt")
    atomic_write_text(root / "latest", final.name + "\n")
    return final


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    pointer = Path(directory) / "latest"
    if not pointer.is_file():
        return None
    path = Path(directory) / pointer.read_text().strip()
    return path if (path / "trainer.pt").is_file() else None


def load_trainer_state(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / "trainer.pt", map_location="cpu", weights_only=True)


def prune_checkpoints(directory: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the newest ``keep`` step directories."""
    steps = sorted(Path(directory).glob("step-*"))
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
