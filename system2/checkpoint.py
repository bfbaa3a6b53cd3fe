"""Model files and training checkpoints, written atomically; nothing is ever unpickled.

- A model directory holds ``config.json`` (with ``model_type``) and ``model.safetensors``.
- A training checkpoint directory ``step-NNNNNNNN/`` holds the model files plus ``trainer.pt`` (optimizer
  state, data position, random states: tensors and plain values only, loaded with ``weights_only=True``).
  It is written under a temporary name and renamed, and ``latest`` names the newest complete one.
  This module is the only one that knows that layout; ``resume`` skips a damaged newest checkpoint and
  falls back to the previous one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file

from system2.runs import FileProblem, atomic_dir, atomic_write_text, read_json

T = TypeVar("T")

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


def _read_safetensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FileProblem(
            f"{path} is not a readable safetensors file ({reason}): it is damaged or truncated; "
            "restore it or train again"
        ) from None


def load_model_weights(model: torch.nn.Module, directory: str | os.PathLike[str]) -> None:
    """Load the weights saved in ``directory`` into ``model`` in place. A Hugging Face model is read back
    with ``from_pretrained`` (which handles sharding, tied weights and renamed keys) and copied over.
    Damaged files raise ``FileProblem`` naming them."""
    d = Path(directory)
    if not is_hf_model(model):
        model.load_state_dict(_read_safetensors(d / "model.safetensors"))
        return
    from transformers.utils import logging

    logging.disable_progress_bar()
    dtype = next(model.parameters()).dtype
    try:
        saved = type(model).from_pretrained(d, local_files_only=True, dtype=dtype)
    except (OSError, RuntimeError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FileProblem(f"{d} holds no readable model ({reason}): restore it or train again") from None
    model.load_state_dict(saved.state_dict())


def _write_extra(directory: Path, extra_files: Mapping[str, str] | None) -> None:
    for name, text in (extra_files or {}).items():
        (directory / name).write_text(text)


def save_model(
    model: torch.nn.Module, path: str | os.PathLike[str], extra_files: Mapping[str, str] | None = None
) -> Path:
    """Save a model directory atomically (temporary directory, then rename). ``extra_files`` (name ->
    text) travel with the weights, e.g. a planner's ``vocab.json``."""
    with atomic_dir(path) as tmp:
        write_model_files(model, tmp)
        _write_extra(tmp, extra_files)
    return Path(path)


def load_model(path: str | os.PathLike[str], map_location: str = "cpu") -> torch.nn.Module:
    """Build the model described by ``path/config.json`` and load its safetensors weights."""
    _register_builtin()
    p = Path(path)
    cfg_file, weights = p / "config.json", p / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{p} is not a model directory: it needs config.json and model.safetensors")
    raw = read_json(cfg_file)
    if not isinstance(raw, dict):
        raise FileProblem(f"{cfg_file} is not a model config (a JSON object): restore it")
    kind = raw.pop("model_type", None)
    if kind not in MODEL_TYPES:
        raise FileProblem(f"{cfg_file}: unknown model_type {kind!r}; known: {', '.join(MODEL_TYPES)}")
    model_cls, config_cls = MODEL_TYPES[kind]
    try:
        model = model_cls(config_cls(**raw))
    except TypeError as e:
        raise FileProblem(f"{cfg_file} does not describe a {kind} model ({e}): restore it") from None
    try:
        model.load_state_dict(_read_safetensors(weights, map_location))
    except RuntimeError as e:  # shapes or names that do not match config.json
        reason = str(e).splitlines()[0]
        raise FileProblem(f"{weights} does not match {cfg_file} ({reason}): restore both from one save") from None
    return model


# ----- training checkpoints: DIR/step-NNNNNNNN/ and DIR/latest -------------------------------------------
def save_checkpoint(
    directory: str | os.PathLike[str],
    step: int,
    model: torch.nn.Module,
    trainer_state: dict[str, Any],
    extra_files: Mapping[str, str] | None = None,
    tokenizer: Any = None,
    tensors: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
) -> Path:
    """Write ``directory/step-NNNNNNNN`` atomically and point ``directory/latest`` at it.

    It holds the model files (and the tokenizer's, when given), ``extra_files`` (name -> text), one
    ``NAME.safetensors`` per entry of ``tensors`` (e.g. a value head) and ``trainer.pt``."""
    root = Path(directory)
    final = root / f"step-{step:08d}"
    with atomic_dir(final) as tmp:
        write_model_files(model, tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, state in (tensors or {}).items():
            save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp / f"{name}.safetensors"))
        _write_extra(tmp, extra_files)
        torch.save(trainer_state, tmp / "trainer.pt")
    atomic_write_text(root / "latest", final.name + "\n")
    return final


def checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """The complete step directories in ``directory``, newest first."""
    steps = [p for p in Path(directory).glob("step-*") if p.is_dir() and (p / "trainer.pt").is_file()]
    return sorted(steps, key=lambda p: p.name, reverse=True)


def checkpoint_step(checkpoint: str | os.PathLike[str]) -> int:
    """The optimizer step a checkpoint directory (``step-NNNNNNNN``) was written at."""
    return int(Path(checkpoint).name.split("-")[-1])


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The newest complete step directory, or None."""
    found = checkpoints(directory)
    return found[0] if found else None


def read_tensors(checkpoint: str | os.PathLike[str], name: str) -> dict[str, torch.Tensor]:
    """The ``NAME.safetensors`` saved with ``save_checkpoint(tensors=...)``."""
    return _read_safetensors(Path(checkpoint) / f"{name}.safetensors")


def load_trainer_state(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The training state of a checkpoint (tensors and plain values only: ``weights_only=True``)."""
    import pickle
    import zipfile

    path = Path(checkpoint) / "trainer.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FileProblem(f"{path} is not a readable training state ({reason[:200]}): it is damaged") from None


def resume(
    directory: str | os.PathLike[str], load: Callable[[Path], T], log: Callable[[str], None] = print
) -> tuple[Path, T] | None:
    """Call ``load`` on the newest checkpoint that loads: a damaged or truncated one is skipped, saying so,
    and the previous one is tried. None when there is none (a fresh start)."""
    for ckpt in checkpoints(directory):
        try:
            return ckpt, load(ckpt)
        except FileProblem as e:
            log(f"skipping the damaged checkpoint {ckpt.name}: {e}")
    return None


def prune_checkpoints(directory: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the newest ``keep`` step directories."""
    for old in checkpoints(directory)[keep:] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
