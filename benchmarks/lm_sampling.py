"""Sampling from a tiny Hugging Face Llama: ``system2.lm.sampling.sample`` against ``model.generate`` on left-padded
batches of the same prompts, as a user would call it, on CPU.

The model is ``tiny_llama`` (random init, fp32) over an arithmetic word vocabulary; prompts are seeded
arithmetic questions of 8-20 words. To make every row generate exactly ``max_new_tokens`` tokens on both
sides, the output layer gets a bias of -1e4 on the special tokens (0 elsewhere), so eos is never drawn; every
completion is checked to hold that many words. Two cells, both with 64 rows (prompt x sample) per call:

- greedy (n=1, temperature 0): ours in batches of 64 rows with left padding; the baseline is
  ``model.generate(batch, do_sample=False)`` on 64 left-padded prompts. Both must give identical completions.
- sampling (n samples per prompt, temperature 1): ours, with a seeded random stream per row (sample j of a prompt
  is the same whatever the batch); the baseline is ``model.generate(batch, do_sample=True,
  num_return_sequences=n)`` on 64/n prompts at a time (one global random stream).

Reported: completions per second (best of up to 3 timed runs within a budget, after a warm-up) and the
ratio ours / baseline (target >= 1.0x). Run from the repository root::

    python benchmarks/lm_sampling.py [--quick] [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from system2.lm.sampling import SampleConfig, sample
from system2.lm.tiny import build_word_tokenizer, tiny_llama

try:
    from benchmarks.common import THREADS, make_console, print_verdict, torch_run_info, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import THREADS, make_console, print_verdict, torch_run_info, write_json  # type: ignore[no-redef]

TARGET = 1.0
WORDS = ["Q:", *map(str, range(100)), "+", "-", "*", "=", "?", "|", ";", "Final", "answer:"]


@dataclass(frozen=True)
class Plan:
    prompts: int
    n: int
    max_new_tokens: int
    d_model: int
    n_layers: int
    repeats: int
    budget_s: float


FULL = Plan(prompts=64, n=8, max_new_tokens=40, d_model=128, n_layers=4, repeats=3, budget_s=20.0)
QUICK = Plan(prompts=16, n=4, max_new_tokens=8, d_model=64, n_layers=2, repeats=1, budget_s=0.0)


def questions(k: int, seed: int) -> list[str]:
    """Seeded arithmetic prompts such as ``Q: 7 + 3 * 2 = ? |``."""
    rng = random.Random(seed)
    out = []
    for _ in range(k):
        terms = [str(rng.randrange(10))]
        for _ in range(rng.randint(2, 7)):
            terms += [rng.choice("+-*"), str(rng.randrange(10))]
        out.append(f"Q: {' '.join(terms)} = ? |")
    return out


def never_stopping_model(plan: Plan, seed: int) -> tuple[Any, Any]:
    """A random tiny Llama whose output layer can never pick eos (see the docstring)."""
    tok = build_word_tokenizer(WORDS, model_max_length=128)
    model = tiny_llama(tok, d_model=plan.d_model, n_layers=plan.n_layers, n_heads=4, max_len=128, seed=seed).eval()
    head = torch.nn.Linear(plan.d_model, len(tok), bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tok.all_special_ids] = -1e4  # eos, and the other special tokens decoding would drop
    model.lm_head = head
    return model, tok


def best_time(fn: Callable[[], list[list[str]]], repeats: int, budget_s: float) -> tuple[float, list[list[str]]]:
    best, first, spent = math.inf, None, 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best, spent, first = min(best, dt), spent + dt, first if first is not None else out
        if spent >= budget_s:
            break
    return best, first  # type: ignore[return-value]


def baseline(model: Any, tok: Any, prompts: list[str], n: int, greedy: bool, max_new: int, rows: int = 64
             ) -> list[list[str]]:  # fmt: skip
    """``generate`` on left-padded batches of ``rows // n`` prompts (``rows`` completions per call)."""
    tok.padding_side = "left"
    out: list[list[str]] = []
    per_call = max(1, rows // n)
    kw: dict[str, Any] = {"do_sample": False} if greedy else {"do_sample": True, "top_k": 0}
    with torch.no_grad():
        for s in range(0, len(prompts), per_call):
            enc = tok(prompts[s : s + per_call], return_tensors="pt", padding=True)
            seqs = model.generate(
                **enc, max_new_tokens=max_new, min_new_tokens=max_new, num_return_sequences=1 if greedy else n,
                pad_token_id=tok.pad_token_id, **kw,
            )  # fmt: skip
            texts = [tok.decode(x[enc["input_ids"].shape[1] :], skip_special_tokens=True) for x in seqs]
            k = 1 if greedy else n
            out += [texts[i * k : (i + 1) * k] for i in range(len(texts) // k)]
    return out


def measure(plan: Plan, seed: int, console: Console) -> list[dict[str, Any]]:
    model, tok = never_stopping_model(plan, seed)
    prompts = questions(plan.prompts, seed)
    rows = []
    for name, n, temp in (("greedy", 1, 0.0), ("sample", plan.n, 1.0)):
        cfg = SampleConfig(n=n, temperature=temp, max_new_tokens=plan.max_new_tokens, seed=seed, batch_size=64)
        sample(model, tok, prompts[:2], cfg)  # warm-up
        baseline(model, tok, prompts[:1], n, temp == 0, 4)
        ours_s, ours = best_time(lambda c=cfg: sample(model, tok, prompts, c), plan.repeats, plan.budget_s)
        greedy = temp == 0
        base_s, base = best_time(
            lambda n=n, g=greedy: baseline(model, tok, prompts, n, g, plan.max_new_tokens), plan.repeats, plan.budget_s
        )
        lengths = {len(s.split()) for x in ours + base for s in x}
        if lengths != {plan.max_new_tokens}:
            raise AssertionError(f"{name}: expected {plan.max_new_tokens} words per completion, got {lengths}")
        if greedy and ours != base:
            raise AssertionError("greedy: our sampler and batched generate disagree")
        total = len(prompts) * n
        row = {
            "cell": name,
            "prompts": len(prompts),
            "n": n,
            "new_tokens": plan.max_new_tokens,
            "ours_samples_s": total / ours_s,
            "baseline_samples_s": total / base_s,
            "ratio": base_s / ours_s,
        }
        console.log(f"{name}: ours {row['ours_samples_s']:,.1f}/s, generate {row['baseline_samples_s']:,.1f}/s")
        rows.append(row)
    return rows


def render(rows: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("cell", "prompts x n", "new tokens", "ours samples/s", "generate samples/s", "ratio"):
        table.add_column(col, justify="left" if col == "cell" else "right")
    for r in rows:
        table.add_row(r["cell"], f"{r['prompts']} x {r['n']}", str(r["new_tokens"]), f"{r['ours_samples_s']:,.1f}",
                      f"{r['baseline_samples_s']:,.1f}", f"{r['ratio']:.1f}x")  # fmt: skip
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 prompts, 8 tokens, a smaller model (smoke run)")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads (default {THREADS})")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    console = make_console()
    info = torch_run_info(console, args.threads)
    rows = measure(plan, args.seed, console)
    title = f"Tiny Llama (d={plan.d_model}, {plan.n_layers} layers) sampling, fp32, CPU, {args.threads} threads"
    console.print(render(rows, title))
    console.print("samples/s: completions per second, best of up to 3 runs; ratio = ours / batched generate.")
    print_verdict(console, "lowest ratio", min(r["ratio"] for r in rows), TARGET)
    write_json(args.json, console, info, plan=plan.__dict__, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
