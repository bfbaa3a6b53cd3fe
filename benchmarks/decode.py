"""KV-cached greedy decoding against re-running the full decoder at every step, on CPU.

For model presets "cpu" and "s" (random init, fp32), batch sizes 1 and 32 and prompts of ~125 tokens,
``system2.nn.generation.generate`` decodes exactly 100 and 300 new tokens, once with the KV cache
(``use_cache=True``) and once re-running the whole decoder over the growing prefix (``use_cache=False``).
To force the full length, eos must never be the argmax: eos is the last vocabulary id and the output
layer gets a bias that is 0 everywhere except -1e4 on eos (logits of the random model are O(1)); every
output is checked to hold ``1 + tokens`` ids. Both modes must also give the same tokens (greedy).

Reported: generated tokens per second (batch x new tokens / wall time of ``generate``, which includes
encoding the prompt; best of up to 3 runs within a time budget) and the speedup cached / uncached.
Run from the repository root::

    python benchmarks/decode.py [--quick] [--presets cpu,s] [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from system2.nn.encdec import EncDecConfig, EncoderDecoder
from system2.nn.generation import DecodingConfig, generate
from system2.planning.data import pad_batch

try:
    from benchmarks.common import THREADS, make_console, print_verdict, torch_run_info, write_json
    from benchmarks.train_throughput import VOCAB
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import THREADS, make_console, print_verdict, torch_run_info, write_json  # type: ignore[no-redef]
    from train_throughput import VOCAB  # type: ignore[no-redef]

TARGET_SPEEDUP = 3.0  # at 300 generated tokens
TARGET_TOKENS = 300
BOS, EOS = 0, VOCAB - 1
PROMPT_LEN = 125


@dataclass(frozen=True)
class Plan:
    """Batch sizes and new-token counts to run; at most ``repeats`` timed runs per cell, fewer once a
    cell has used ``budget_s`` seconds (at least one)."""

    batches: tuple[int, ...]
    tokens: tuple[int, ...]
    repeats: int
    budget_s: float


FULL = Plan(batches=(1, 32), tokens=(100, 300), repeats=3, budget_s=15.0)
QUICK = Plan(batches=(1, 4), tokens=(20, 60), repeats=1, budget_s=0.0)


def never_stopping_model(preset: str, seed: int) -> EncoderDecoder:
    """A random-init model of ``preset`` whose output layer can never pick ``EOS`` (see the docstring)."""
    torch.manual_seed(seed)
    model = EncoderDecoder(EncDecConfig.preset(preset, VOCAB)).eval()
    head = nn.Linear(model.config.d_model, VOCAB, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[EOS] = -1e4
    model.lm_head = head
    return model


def prompts(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompt ids (no bos/eos); lengths uniform in +-10% of ``PROMPT_LEN`` (exactly it for batch 1)."""
    rng = np.random.default_rng(seed)
    lo, hi = (PROMPT_LEN, PROMPT_LEN) if batch == 1 else (round(0.9 * PROMPT_LEN), round(1.1 * PROMPT_LEN))
    return pad_batch([rng.integers(1, EOS, rng.integers(lo, hi + 1)) for _ in range(batch)], BOS)


Outputs = list[list[int]]


def best_time(fn: Callable[[], Outputs], repeats: int, budget_s: float) -> tuple[float, Outputs]:
    """Best wall time of up to ``repeats`` calls (stop once ``budget_s`` is spent) and the first output."""
    best, first, spent = math.inf, None, 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
        first = out if first is None else first
        if spent >= budget_s:
            break
    return best, first  # type: ignore[return-value]


def measure(preset: str, plan: Plan, seed: int, console: Console) -> list[dict[str, Any]]:
    """Cached and uncached decoding of ``preset`` for every batch size and length of ``plan``."""
    model = never_stopping_model(preset, seed)
    rows = []
    for batch in plan.batches:
        src, src_mask = prompts(batch, seed)

        def run(n: int, cached: bool, src: torch.Tensor = src, src_mask: torch.Tensor = src_mask) -> Outputs:
            cfg = DecodingConfig(max_new_tokens=n)
            return generate(model, src, src_mask, BOS, EOS, cfg, use_cache=cached)

        for cached in (True, False):  # warm-up
            run(8, cached)
        for n in plan.tokens:
            cached_s, cached_out = best_time(lambda n=n: run(n, True), plan.repeats, plan.budget_s)
            plain_s, plain_out = best_time(lambda n=n: run(n, False), plan.repeats, plan.budget_s)
            lengths = {len(s) for s in cached_out + plain_out}
            if lengths != {1 + n}:
                raise AssertionError(f"{preset} batch {batch}: expected {1 + n} ids per row, got {lengths}")
            same = sum(a == b for a, b in zip(cached_out, plain_out, strict=True))
            row = {
                "preset": preset,
                "batch": batch,
                "new_tokens": n,
                "prompt_len": int(src_mask.sum(1).float().mean()),
                "cached_seconds": cached_s,
                "uncached_seconds": plain_s,
                "cached_tok_s": batch * n / cached_s,
                "uncached_tok_s": batch * n / plain_s,
                "speedup": plain_s / cached_s,
                "identical_rows": same,
            }
            console.log(
                f"{preset} batch {batch}, {n} tokens: cached {cached_s:.2f} s, uncached {plain_s:.2f} s "
                f"({row['speedup']:.1f}x), identical outputs {same}/{batch}"
            )
            rows.append(row)
    return rows


def render(rows: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    cols = ("preset", "batch", "new tokens", "cached tok/s", "uncached tok/s", "speedup", "identical")
    for col in cols:
        table.add_column(col, justify="left" if col == "preset" else "right")
    for r in rows:
        table.add_row(
            r["preset"],
            str(r["batch"]),
            str(r["new_tokens"]),
            f"{r['cached_tok_s']:,.0f}",
            f"{r['uncached_tok_s']:,.0f}",
            f"{r['speedup']:.1f}x",
            f"{r['identical_rows']}/{r['batch']}",
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 and 4, 20 and 60 tokens (a smoke run)")
    parser.add_argument("--presets", default="cpu,s", help="comma-separated model presets (default cpu,s)")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    parser.add_argument("--seed", type=int, default=0, help="model and prompt seed (default 0)")
    args = parser.parse_args(argv)
    presets = args.presets.split(",")
    for p in presets:
        if p not in ("cpu", "s"):
            parser.error(f"unknown preset {p!r}: choose from cpu, s")
    plan = QUICK if args.quick else FULL

    console = make_console()
    info = torch_run_info(console)
    rows = [row for p in presets for row in measure(p, plan, args.seed, console)]
    console.print(render(rows, f"Greedy decoding, KV cache vs full re-run, fp32, CPU, {THREADS} threads"))
    console.print(
        "tok/s: generated tokens (batch x new tokens) per second of generate(), prompt encoding included; "
        "best of up to 3 runs. speedup = cached / uncached tok/s. identical: rows with the same tokens."
    )
    at_target = [r for r in rows if r["new_tokens"] == TARGET_TOKENS]
    if at_target:
        worst = min(r["speedup"] for r in at_target)
        print_verdict(console, f"lowest speedup at {TARGET_TOKENS} tokens", worst, TARGET_SPEEDUP)
    write_json(args.json, console, info, seed=args.seed, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
