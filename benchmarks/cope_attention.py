"""Forward + backward of one CoPE attention layer against RoPE attention through SDPA, on CPU (or a GPU).

Both layers have the paper's synthetic-task shape (d_model 256, 4 heads of 64) and run causal
self-attention on the same random input (B x T x 256 with B x T = 4096 tokens, fp32); a step is the
forward pass and the backward pass of ``(out * grad).sum()`` for a fixed random ``grad``, with gradients
for the input and every weight. Layers:

- ``rope``: ``system2.nn.layers.Attention`` with RoPE, ``scaled_dot_product_attention(is_causal=True)``
  (the baseline, run in the same process);
- ``cope``: ``system2.nn.cope.CoPEAttention`` with its defaults (one table per layer, gates from the
  attention keys) and p_max = 64 (the paper's language-model setting); in training it takes the
  memory-efficient path of ``system2.nn.cope_fused`` (T x T work recomputed in the backward pass);
- ``cope+rope``: the same with RoPE on queries and keys;
- ``cope plain``, ``cope+rope plain``: the same layers with ``memory_efficient = False``: the plain blocks of
  ``CoPEAttention``, whose T x T tensors autograd keeps for the backward pass.

CPU memory allocation matters: glibc serves blocks over ~32 MB (a B x H x T x T fp32 tensor at T = 512,
B = 8) with a fresh ``mmap`` and returns them on free, so every such temporary is page-faulted again at
every step. RoPE + SDPA makes no T x T tensors; CoPE makes several, so this cost lands on CoPE alone.
``--keep-freed-memory`` (glibc only) turns ``mmap`` off and keeps freed memory in the process
(``mallopt(M_MMAP_MAX, 0)``, ``mallopt(M_TRIM_THRESHOLD, 2^31 - 1)``; the environment variables
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`` do the same for any program), so the table shows
the compute alone. Run both to see the share of each. On cores that another job keeps busy, use
``--threads 1``: with 2 threads every parallel kernel waits for a time slice of the busy core, so the time
counts kernels rather than work (the memory-efficient path runs more, smaller kernels than the plain one).

Reported per T: milliseconds per step (best of up to 5 timed steps within a time budget, after one
untimed step), the ratio to RoPE, and memory: on CPU the bytes of the tensors autograd saves for the
backward pass (distinct storages other than the weights, counted with ``saved_tensors_hooks``: the
activation memory a training step holds), on CUDA the peak allocated memory of the step. Run from the
repository root::

    python benchmarks/cope_attention.py [--quick] [--keep-freed-memory] [--threads N] [--device cpu|cuda] [--json PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from rich.table import Table
from torch import nn

from system2.nn.cope import CoPEAttention
from system2.nn.layers import Attention
from system2.nn.positions import RotaryEmbedding

try:
    from benchmarks.common import THREADS, machine, make_console, print_verdict, set_threads, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import THREADS, machine, make_console, print_verdict, set_threads, write_json  # type: ignore[no-redef]

D_MODEL, HEADS, MAX_POS = 256, 4, 64
TOKENS = 4096
TARGET_RATIO, TARGET_MEMORY, TARGET_T = 2.0, 2.2, 512
LAYERS = ("rope", "cope", "cope plain", "cope+rope", "cope+rope plain")
FULL = {"lengths": (256, 512, 1024), "tokens": TOKENS, "repeats": 5, "budget_s": 20.0}
QUICK = {"lengths": (64, 128), "tokens": 256, "repeats": 1, "budget_s": 0.0}


def layers(max_len: int) -> dict[str, nn.Module]:
    """The layers of LAYERS, seeded the same way."""
    out: dict[str, nn.Module] = {}
    for name in LAYERS:
        torch.manual_seed(0)
        rope = RotaryEmbedding(D_MODEL // HEADS, max_len) if "rope" in name else None
        if name == "rope":
            out[name] = Attention(D_MODEL, HEADS, rope)
            continue
        layer = CoPEAttention(D_MODEL, HEADS, MAX_POS, rope)
        nn.init.normal_(layer.cope.table, std=0.02)  # not the zero init: every path does real work
        layer.memory_efficient = not name.endswith(" plain")
        out[name] = layer
    return out


def keep_freed_memory() -> None:
    """glibc: serve every block from the heap (no ``mmap``) and never give freed memory back."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    m_trim_threshold, m_mmap_max = -1, -4
    if not (libc.mallopt(m_mmap_max, 0) and libc.mallopt(m_trim_threshold, 2**31 - 1)):
        raise RuntimeError("mallopt failed: --keep-freed-memory needs glibc")


def saved_bytes(step: Callable[[], None], layer: nn.Module) -> int:
    """Bytes of the distinct storages autograd saves for backward during one forward + backward, the
    layer's own weights excluded (activation memory)."""
    weights = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(storages.values())


def measure(layer: nn.Module, batch: int, t: int, device: str, repeats: int, budget_s: float) -> dict[str, float]:
    g = torch.Generator().manual_seed(t)
    x = torch.randn(batch, t, D_MODEL, generator=g).to(device)
    grad = torch.randn(batch, t, D_MODEL, generator=g).to(device)
    layer = layer.to(device)

    def step() -> None:
        xx = x.detach().requires_grad_(True)
        (layer(xx, causal=True) * grad).sum().backward()
        layer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    sync()
    best, spent = math.inf, 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
        if spent >= budget_s:
            break
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        memory = torch.cuda.max_memory_allocated() - base
    else:
        memory = saved_bytes(step, layer)
    return {"ms": 1000 * best, "memory_mb": memory / 2**20}


def render(rows: Sequence[dict[str, Any]], title: str, memory_label: str) -> Table:
    table = Table(title=title)
    for col in ("T", "batch", "layer", "ms / step", "x RoPE", memory_label, "x RoPE "):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in rows:
        table.add_row(
            str(r["T"]),
            str(r["batch"]),
            r["layer"],
            f"{r['ms']:.1f}",
            f"{r['time_ratio']:.2f}x",
            f"{r['memory_mb']:.1f}",
            f"{r['memory_ratio']:.1f}x",
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="T = 64 and 128, 256 tokens, one timed step (smoke)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--keep-freed-memory", action="store_true", help="glibc: no mmap, keep freed memory")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads on CPU (default {THREADS})")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    plan = QUICK if args.quick else FULL
    if args.keep_freed_memory:
        keep_freed_memory()
    console = make_console()
    threads = set_threads(args.threads) if args.device == "cpu" else "cuda"
    info = machine() | {"threads": threads, "torch": torch.__version__, "device": args.device}
    info["keep_freed_memory"] = args.keep_freed_memory
    info["loadavg_before"] = os.getloadavg()
    console.log(f"{info['cpu']} ({info['cpu_count']} CPUs, {threads}), torch {torch.__version__}, fp32")
    rows = []
    for t in plan["lengths"]:
        batch = max(1, plan["tokens"] // t)
        results = {
            name: measure(layer, batch, t, args.device, plan["repeats"], plan["budget_s"])
            for name, layer in layers(max(plan["lengths"])).items()
        }
        for name, res in results.items():
            rows.append(
                {
                    "T": t,
                    "batch": batch,
                    "layer": name,
                    **res,
                    "time_ratio": res["ms"] / results["rope"]["ms"],
                    "memory_ratio": res["memory_mb"] / max(results["rope"]["memory_mb"], 1e-9),
                }
            )
            console.log(f"T={t} batch {batch} {name}: {res['ms']:.1f} ms, {res['memory_mb']:.1f} MB")
    memory_label = "saved MB" if args.device == "cpu" else "peak MB"
    where = f"CPU, {args.threads} threads" if args.device == "cpu" else "CUDA"
    where += ", freed memory kept" if args.keep_freed_memory else ""
    console.print(render(rows, f"Attention layer forward + backward, d=256, 4 heads, fp32, {where}", memory_label))
    console.print(
        "ms / step: best of up to 5 steps. saved MB (CPU): tensors autograd keeps for backward; peak MB (CUDA): "
        "peak allocated during a step. Ratios are against RoPE + SDPA at the same T."
    )
    at_target = {r["layer"]: r for r in rows if r["T"] == TARGET_T}
    if "cope" in at_target:
        cope, plain = at_target["cope"], at_target["cope plain"]
        print_verdict(console, f"CoPE at T={TARGET_T}: time vs RoPE", cope["time_ratio"], TARGET_RATIO, at_most=True)
        label = f"CoPE at T={TARGET_T}: saved memory vs RoPE"
        print_verdict(console, label, cope["memory_ratio"], TARGET_MEMORY, at_most=True)
        print_verdict(console, "CoPE time vs the plain path", cope["ms"] / plain["ms"], 1.0, at_most=True)
    write_json(args.json, console, info, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
