"""Processes: the one module that knows about ranks, the main process and barriers.

Every command runs unchanged on one process, under ``torchrun`` or under ``accelerate launch``. Both
launchers set ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` before Python starts; once a process group exists
(``accelerate`` creates it), it is the authority. Code elsewhere asks here instead of reading the
environment (lingua's ``distributed.py`` keeps the same rule).
"""

from __future__ import annotations

import os
import sys


def _group_ready() -> bool:
    """A process group exists. Without torch imported none can, and a command that needs no torch (dataset
    generation) does not pay for importing it here."""
    if "torch" not in sys.modules:
        return False
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


def local_rank() -> int:
    """This process's rank on its machine (its GPU index under the launchers; 0 on a single process)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def shard(n: int) -> tuple[int, int]:
    """The contiguous slice ``[lo, hi)`` of ``n`` items that this process handles (the first ``n % world``
    processes take one item more); the slices of all processes cover ``range(n)`` in order."""
    world, r = world_size(), rank()
    base, extra = divmod(n, world)
    lo = r * base + min(r, extra)
    return lo, lo + base + (r < extra)


def all_gather(obj: object) -> list[object]:
    """Every process's ``obj`` (picklable, sent between this run's own processes), in rank order; ``[obj]`` on a
    single process."""
    if world_size() == 1:
        return [obj]
    init()
    import torch.distributed as td

    out: list[object] = [None] * world_size()
    td.all_gather_object(out, obj)
    return out


def init() -> None:
    """Create the process group when a launcher started several processes and none exists yet (accelerate's
    ``PartialState``: gloo on CPUs, nccl on GPUs), so that work before the first training step can be shared."""
    if world_size() > 1 and not _group_ready():
        import torch
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())
