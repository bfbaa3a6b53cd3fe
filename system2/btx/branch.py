"""Branch (arXiv 2403.07816, section 3, step 1): copy the seed LLM once per domain, so each copy can be
trained on its own data with no communication between copies."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from system2.btx.checkpoints import check_out_dir, copy_files, model_files, read_dense
from system2.config import ConfigError
from system2.runs import atomic_dir


def branch(
    seed_dir: str | os.PathLike[str], out_dirs: Sequence[str | os.PathLike[str]], *, overwrite: bool = False
) -> list[Path]:
    """Copy the Llama-like checkpoint in ``seed_dir`` (weights, config, tokenizer) into each of ``out_dirs``.

    A seed that is not Llama-like, an output directory that is the seed or appears twice, and one that
    exists with files (unless ``overwrite``) are refused before anything is copied. Each copy is written
    atomically, so a killed job never leaves a half-copied expert."""
    seed = read_dense(seed_dir, "seed_dir")
    if not out_dirs:
        raise ConfigError("branch needs at least one output directory in out_dirs")
    outs = [check_out_dir(o, [seed_dir], overwrite, f"out_dirs[{i}]") for i, o in enumerate(out_dirs)]
    resolved = [o.resolve() for o in outs]
    for i, r in enumerate(resolved):
        if r in resolved[:i]:
            raise ConfigError(f"out_dirs[{i}] {outs[i]} appears twice in out_dirs: give one directory per expert")
    files = model_files(seed.path)
    for out in outs:
        with atomic_dir(out) as tmp:
            copy_files(files, tmp)
    return outs
