"""Streaming safetensors reading and writing, so a mix of N experts never holds N models in memory.

``SafetensorsDir`` knows every tensor's name, shape and dtype from the file headers (nothing is loaded) and
reads one tensor at a time. ``write_shards`` writes a planned list of tensors (name, shape, dtype and a
function that makes the tensor) into safetensors files: the header is written from the plan, then each
tensor is made, written and dropped, so at most one output tensor and its inputs are resident. More than
one shard gets the Hugging Face index ``model.safetensors.index.json``, which ``from_pretrained`` reads.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from system2.runs import FileProblem, atomic_write_json, read_json

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

_CODES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_DTYPES = {code: dtype for dtype, code in _CODES.items()}


def dtype_of_code(code: str, where: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype code (``F32``, ``BF16``, ...)."""
    if code not in _DTYPES:
        raise FileProblem(f"{where}: safetensors dtype {code} is not supported here (use {', '.join(_DTYPES)})")
    return _DTYPES[code]


class SafetensorsDir:
    """The safetensors weights of a model directory (``model.safetensors`` or shards with an index), read
    lazily: headers at construction, one tensor per ``get``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from safetensors import safe_open

        self.path = Path(path)
        self._file: dict[str, Path] = {}
        self._meta: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        for f in self._files():
            with safe_open(str(f), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 - a safe_open handle is not iterable
                    piece = handle.get_slice(name)
                    self._file[name] = f
                    self._meta[name] = (tuple(piece.get_shape()), dtype_of_code(piece.get_dtype(), f"{f} {name}"))

    def _files(self) -> list[Path]:
        index = self.path / INDEX_FILE
        if index.is_file():
            data = read_json(index)
            weight_map = data.get("weight_map") if isinstance(data, dict) else None
            if not isinstance(weight_map, dict) or not weight_map:
                raise FileProblem(f"{index} has no 'weight_map': restore it, or save the model again")
            files = [self.path / name for name in sorted(set(weight_map.values()))]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise FileProblem(f"{index} names shards that do not exist ({', '.join(missing)}): restore them")
            return files
        if (self.path / WEIGHTS_FILE).is_file():
            return [self.path / WEIGHTS_FILE]
        raise FileProblem(
            f"{self.path} holds no {WEIGHTS_FILE} (nor {INDEX_FILE}): save the model with save_pretrained, "
            "which writes safetensors"
        )

    @property
    def names(self) -> list[str]:
        return list(self._meta)

    def __contains__(self, name: str) -> bool:
        return name in self._meta

    def shape(self, name: str) -> tuple[int, ...]:
        return self._meta[name][0]

    def dtype(self, name: str) -> torch.dtype:
        return self._meta[name][1]

    def nbytes(self, name: str) -> int:
        shape, dtype = self._meta[name]
        return _numel(shape) * dtype.itemsize

    def get(self, name: str) -> torch.Tensor:
        """One tensor, read from disk now (the caller owns it; nothing is cached)."""
        from safetensors import safe_open

        with safe_open(str(self._file[name]), framework="pt") as handle:
            return handle.get_tensor(name)


@dataclass(frozen=True)
class PlannedTensor:
    """A tensor to write: its name, shape and dtype, and ``make``, called once when its bytes are written."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    make: Callable[[], torch.Tensor]

    @property
    def nbytes(self) -> int:
        return _numel(self.shape) * self.dtype.itemsize


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _groups(plan: Sequence[PlannedTensor], max_shard_bytes: int) -> list[list[PlannedTensor]]:
    groups: list[list[PlannedTensor]] = [[]]
    size = 0
    for t in plan:
        if groups[-1] and size + t.nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(t)
        size += t.nbytes
    return groups


def write_shards(plan: Sequence[PlannedTensor], directory: Path, max_shard_bytes: int) -> list[str]:
    """Write ``plan`` into ``directory`` as ``model.safetensors``, or as shards of at most ``max_shard_bytes``
    (a larger single tensor gets a shard of its own) with the index; returns the file names written."""
    names = [t.name for t in plan]
    if len(set(names)) != len(names):
        raise ValueError("write_shards: the plan names a tensor twice")
    if sys.byteorder != "little":
        raise RuntimeError("safetensors files are little-endian; this machine is not")
    groups = _groups(plan, max_shard_bytes)
    if len(groups) == 1:
        files = [WEIGHTS_FILE]
    else:
        files = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    for name, group in zip(files, groups, strict=True):
        _write_file(directory / name, group)
    if len(groups) > 1:
        weight_map = {t.name: f for f, group in zip(files, groups, strict=True) for t in group}
        index = {"metadata": {"total_size": sum(t.nbytes for t in plan)}, "weight_map": weight_map}
        atomic_write_json(directory / INDEX_FILE, index)
    return files


def _write_file(path: Path, group: Sequence[PlannedTensor]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for t in group:
        if t.dtype not in _CODES:
            raise ValueError(f"{t.name}: dtype {t.dtype} cannot be written to safetensors here")
        header[t.name] = {"dtype": _CODES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for data in _made(group):
            f.write(data)


def _made(group: Sequence[PlannedTensor]) -> Iterator[memoryview]:
    """The bytes of each planned tensor in turn, each made only when the previous one has been written."""
    for t in group:
        tensor = t.make()
        if tuple(tensor.shape) != t.shape or tensor.dtype != t.dtype:
            raise RuntimeError(
                f"{t.name}: made {tuple(tensor.shape)} {tensor.dtype}, planned {t.shape} {t.dtype} (a bug in the plan)"
            )
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        del tensor
        if flat.numel() == 0:
            yield memoryview(b"")
            continue
        yield memoryview(flat.view(torch.uint8).numpy())
