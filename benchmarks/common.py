"""What every benchmark script shares: the machine description, CPU threads, the console, the verdict line
against a target and the JSON record of a run."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any

from rich.console import Console

THREADS = 2


def machine() -> dict[str, Any]:
    """CPU model, CPU count and Python/platform versions, for the record of a run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def pin_one_core() -> str:
    """Restrict this process to a single CPU where the OS allows it; returns a description."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def set_threads(n: int = THREADS) -> str:
    """Use ``n`` torch intra-op threads and one inter-op thread, on the first ``n`` allowed CPUs."""
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, set(cpus))
        return f"torch threads {n}, pinned to CPUs {cpus}"
    return f"torch threads {n}, not pinned (no sched_setaffinity)"


def make_console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=120)


def torch_run_info(console: Console, threads: int = THREADS) -> dict[str, Any]:
    """Set the torch threads, log the machine line and return the record (load average included)."""
    import torch

    described = set_threads(threads)
    info = machine() | {"threads": described, "torch": torch.__version__, "loadavg_before": os.getloadavg()}
    console.log(f"{info['cpu']} ({info['cpu_count']} CPUs, {described}), torch {torch.__version__}, fp32")
    return info


def print_verdict(console: Console, label: str, value: float, target: float, at_most: bool = False) -> bool:
    """``label value: target >= target met|NOT met`` (``at_most``: the target is an upper bound)."""
    met = value <= target if at_most else value >= target
    sign = "<=" if at_most else ">="
    console.print(f"{label} {value:.2f}x: target {sign} {target:g}x " + ("[green]met" if met else "[red]NOT met"))
    return met


def write_json(path: str | None, console: Console, info: dict[str, Any], **payload: Any) -> None:
    """Write the command line, the machine record and ``payload`` to ``path`` (nothing when None)."""
    if not path:
        return
    if "loadavg_before" in info:
        info = info | {"loadavg_after": os.getloadavg()}
    with open(path, "w") as f:
        json.dump({"command": " ".join(["python", *sys.argv]), "machine": info, **payload}, f, indent=2)
    console.log(f"wrote {path}")
