"""Processes: the one module that knows about ranks, the main process and barriers.

Every command runs unchanged on one process, under ``torchrun`` or under ``accelerate launch``. Both
launchers set ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` before Python starts; once a process group exists
(``accelerate`` creates it), it is the authority. Code elsewhere asks here instead of reading the
environment (lingua's ``distributed.py`` keeps the same rule).
"""

from __future__ import annotations

import os


def _group_ready() -> bool:
    import torch.distributed as td

    return td.is_available() and td.is_initialized()


def rank() -> int:
    """This process's global rank (0 on a single process)."""
    if _group_ready():
        import torch.distributed as td

        return td.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """The number of processes of this run (1 on a single process)."""
    if _group_ready():
        import torch.distributed as td

        return td.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True on the process that writes shared files and prints tables."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op on a single process)."""
    if _group_ready():
        import torch.distributed as td

        td.barrier()
