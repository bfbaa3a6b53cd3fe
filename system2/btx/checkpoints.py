"""The dense checkpoints BTX branches from and mixes: Llama-like Hugging Face causal LMs, checked from their
``config.json`` and safetensors headers only, so every refusal comes before any tensor is read.

Llama-like means ``model_type`` llama or mistral (the models Mixtral extends) with a gate/up/down SwiGLU MLP
in every layer and no bias terms (a Mixtral checkpoint has no place for them). Experts must share the seed's
architecture: the same config fields below and the same tensor names and shapes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from system2.btx.tensors import INDEX_FILE, SafetensorsDir
from system2.config import ConfigError
from system2.lm.io import check_lm_dir
from system2.runs import FileProblem

LLAMA_TYPES = ("llama", "mistral")
FFN_PARTS = ("gate_proj", "up_proj", "down_proj")
EMBEDDING = "model.embed_tokens.weight"
BIAS_FIELDS = ("attention_bias", "mlp_bias")
ARCH_FIELDS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "rms_norm_eps",
    "max_position_embeddings",
    "tie_word_embeddings",
    "rope_theta",
    "rope_parameters",
    "rope_scaling",
    "sliding_window",
    *BIAS_FIELDS,
)
# files of a model directory that are not the model or its tokenizer
NOT_MODEL_FILES = frozenset({"trainer.pt", "run.json"})
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def ffn_name(layer: int, part: str) -> str:
    return f"model.layers.{layer}.mlp.{part}.weight"


@dataclass
class DenseCheckpoint:
    """A checked Llama-like checkpoint: where it is (``role`` names it in errors), its config and weights."""

    path: Path
    role: str
    config: dict[str, Any]
    tensors: SafetensorsDir

    @property
    def n_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])


def read_dense(path: str | os.PathLike[str], role: str) -> DenseCheckpoint:
    """Check that ``path`` holds a Llama-like causal LM in safetensors and return it (no tensor is read)."""
    where = f"{role} ({path})"
    try:
        raw = check_lm_dir(path)
    except FileProblem:
        raise
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{role}: {e}") from None
    kind = raw.get("model_type")
    if kind not in LLAMA_TYPES:
        raise ConfigError(
            f"{where}: model_type {kind!r} is not Llama-like; BTX branches and mixes checkpoints of model_type "
            f"{' or '.join(LLAMA_TYPES)} (a gate/up/down MLP in every layer): use such a checkpoint"
        )
    for field in BIAS_FIELDS:
        if raw.get(field):
            raise ConfigError(
                f"{where}: config.json sets {field}=true, and a Mixtral checkpoint has no bias terms: "
                "use a model without biases"
            )
    tensors = SafetensorsDir(path)
    n_layers = raw.get("num_hidden_layers")
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ConfigError(f"{where}: config.json field num_hidden_layers is {n_layers!r}, not a positive integer")
    if EMBEDDING not in tensors:
        raise ConfigError(f"{where}: the weights have no tensor {EMBEDDING}: use a Llama-style checkpoint")
    for layer in range(n_layers):
        for part in FFN_PARTS:
            if ffn_name(layer, part) not in tensors:
                raise ConfigError(
                    f"{where}: the weights have no tensor {ffn_name(layer, part)}, so the model has no Llama "
                    "gate/up/down MLP to turn into an expert: use a Llama-style checkpoint"
                )
    return DenseCheckpoint(Path(path), role, raw, tensors)


def check_same_architecture(reference: DenseCheckpoint, other: DenseCheckpoint) -> None:
    """Refuse ``other`` unless it has the config fields and tensor shapes of ``reference``, naming the first
    difference."""
    where = f"{other.role} ({other.path})"
    fix = "every expert must be branched from the same seed"
    for field in ARCH_FIELDS:
        a, b = reference.config.get(field), other.config.get(field)
        if a != b:
            raise ConfigError(
                f"{where}: config field {field} is {b!r} but {reference.role} ({reference.path}) has {a!r}: {fix}"
            )
    ref_names, names = set(reference.tensors.names), set(other.tensors.names)
    for name in sorted(ref_names ^ names):
        has, lacks = (reference, other) if name in ref_names else (other, reference)
        raise ConfigError(
            f"{where}: tensor {name} is in {has.role} ({has.path}) but not in {lacks.role} ({lacks.path}): {fix}"
        )
    for name in reference.tensors.names:
        a, b = reference.tensors.shape(name), other.tensors.shape(name)
        if a != b:
            raise ConfigError(
                f"{where}: tensor {name} has shape {list(b)} but {reference.role} ({reference.path}) has "
                f"{list(a)}: {fix}"
            )


def check_out_dir(
    out: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]], overwrite: bool, role: str
) -> Path:
    """Refuse an output directory that is one of the inputs, or that exists with files unless ``overwrite``."""
    p = Path(out)
    if any(p.resolve() == Path(i).resolve() for i in inputs):
        raise ConfigError(f"{role} {p} is also an input directory: write to a new directory")
    if p.exists() and (not p.is_dir() or any(p.iterdir())) and not overwrite:
        raise ConfigError(f"{role} {p} already exists and is not empty: pass a new directory, or overwrite=True")
    return p


def model_files(path: Path) -> list[Path]:
    """The files of a model directory that make the model and its tokenizer (no optimizer state, run record
    or hidden files)."""
    return sorted(
        f for f in path.iterdir() if f.is_file() and not f.name.startswith(".") and f.name not in NOT_MODEL_FILES
    )


def tokenizer_files(path: Path) -> list[Path]:
    """The files of a model directory other than its weights and model config: tokenizer, generation config."""
    return [
        f
        for f in model_files(path)
        if f.name not in ("config.json", INDEX_FILE) and not f.name.endswith(WEIGHT_SUFFIXES)
    ]


def copy_files(files: Sequence[Path], directory: Path) -> None:
    for f in files:
        shutil.copy2(f, directory / f.name)
