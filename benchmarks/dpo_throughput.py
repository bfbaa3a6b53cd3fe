"""DPO training throughput: ``system2.train.train`` with ``system2.lm`` against TRL's ``DPOTrainer`` on the
same tiny Llama and the same preference pairs, on CPU.

Data: seeded arithmetic questions ``Q: a + b * c = ? |`` with a worked chosen solution and a wrong short
rejected answer. Both sides start from the same random-init ``tiny_llama`` (fp32), the reference is a
frozen copy of it, and both run ``steps`` optimizer steps of ``batch`` pairs with sigmoid DPO (beta 0.1),
AdamW at a constant 1e-4 (ours: no warm-up, min_lr_ratio 1) and no gradient accumulation. What is timed is
everything from the text pairs to a trained model:

- ours: reference log-probs with ``reference_logprobs`` (once), ``PreferenceData`` (tokenization), then
  ``train`` (one forward of the policy per step, and one checkpoint at the end);
- TRL, default: ``DPOTrainer`` construction (tokenization) and ``train()``, which runs the reference model
  on every batch;
- TRL, precomputed: the same with ``precompute_ref_log_probs=True`` (reference pass once, like ours).

Reported: optimizer steps per second and the ratio ours / TRL (target >= 1.0x against both). Run from the
repository root::

    python benchmarks/dpo_throughput.py [--quick] [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from system2.lm.data import PreferenceData
from system2.lm.logprobs import reference_logprobs
from system2.lm.losses import make_dpo_loss_fn
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.train import TrainConfig, train

try:
    from benchmarks.common import THREADS, make_console, print_verdict, torch_run_info, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import THREADS, make_console, print_verdict, torch_run_info, write_json  # type: ignore[no-redef]

TARGET = 1.0
BETA, LR, MAX_LEN = 0.1, 1e-4, 64
WORDS = ["Q:", *map(str, range(1000)), "+", "*", "=", "?", "|", ";", "Final", "answer:"]


@dataclass(frozen=True)
class Plan:
    pairs: int
    batch: int
    steps: int
    d_model: int
    n_layers: int


FULL = Plan(pairs=512, batch=16, steps=60, d_model=128, n_layers=4)
QUICK = Plan(pairs=32, batch=8, steps=4, d_model=64, n_layers=2)


def pairs(k: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """Seeded (prompt, chosen, rejected) texts: a worked solution against a wrong final answer."""
    rng = random.Random(seed)
    prompts, chosen, rejected = [], [], []
    for _ in range(k):
        a, b, c = rng.randrange(10), rng.randrange(10), rng.randrange(10)
        prompts.append(f"Q: {a} + {b} * {c} = ? |")
        chosen.append(f"{a} + {b} = {a + b} ; {a + b} * {c} = {(a + b) * c} ; Final answer: {(a + b) * c}")
        rejected.append(f"Final answer: {(a + b) * c + rng.randint(1, 9)}")
    return prompts, chosen, rejected


def run_ours(model: Any, tok: Any, data: tuple[list[str], ...], plan: Plan, out: str) -> float:
    t0 = time.perf_counter()
    prompts, chosen, rejected = data
    ref = copy.deepcopy(model).requires_grad_(False)
    ref_c = reference_logprobs(ref, tok, prompts, chosen, MAX_LEN)
    ref_r = reference_logprobs(ref, tok, prompts, rejected, MAX_LEN)
    del ref
    pref = PreferenceData(tok, prompts, chosen, rejected, MAX_LEN, ref_c, ref_r)
    cfg = TrainConfig(steps=plan.steps, batch_size=plan.batch, lr=LR, warmup=0, min_lr_ratio=1.0, weight_decay=0.0,
                      ckpt_every=plan.steps, log_every=plan.steps, tensorboard=False)  # fmt: skip
    train(model, pref, make_dpo_loss_fn(beta=BETA), cfg, out, progress=False)
    return time.perf_counter() - t0


def run_trl(model: Any, tok: Any, data: tuple[list[str], ...], plan: Plan, out: str, precompute: bool) -> float:
    import datasets
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    datasets.disable_progress_bars()
    t0 = time.perf_counter()
    prompts, chosen, rejected = data
    ds = Dataset.from_dict({"prompt": [p + " " for p in prompts], "chosen": chosen, "rejected": rejected})
    args = DPOConfig(
        output_dir=out, use_cpu=True, bf16=False, beta=BETA, loss_type=["sigmoid"], learning_rate=LR,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, per_device_train_batch_size=plan.batch,
        max_steps=plan.steps, max_length=MAX_LEN, save_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True, precompute_ref_log_probs=precompute, precompute_ref_batch_size=64, seed=0,
    )  # fmt: skip
    ref = copy.deepcopy(model).requires_grad_(False)
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=tok)
    trainer.train()
    return time.perf_counter() - t0


def measure(plan: Plan, seed: int, console: Console) -> list[dict[str, Any]]:
    tok = build_word_tokenizer(WORDS, model_max_length=MAX_LEN)
    data = pairs(plan.pairs, seed)

    def fresh() -> Any:
        return tiny_llama(tok, d_model=plan.d_model, n_layers=plan.n_layers, n_heads=4, max_len=MAX_LEN, seed=seed)

    runs = {
        "ours": lambda d: run_ours(fresh(), tok, data, plan, d),
        "TRL": lambda d: run_trl(fresh(), tok, data, plan, d, precompute=False),
        "TRL precomputed ref": lambda d: run_trl(fresh(), tok, data, plan, d, precompute=True),
    }
    seconds = {}
    for name, fn in runs.items():
        with tempfile.TemporaryDirectory() as d:
            seconds[name] = fn(d)
        console.log(f"{name}: {plan.steps} steps in {seconds[name]:.2f} s")
    return [
        {
            "baseline": name,
            "pairs": plan.pairs,
            "batch": plan.batch,
            "steps": plan.steps,
            "ours_steps_s": plan.steps / seconds["ours"],
            "baseline_steps_s": plan.steps / seconds[name],
            "ratio": seconds[name] / seconds["ours"],
        }
        for name in runs
        if name != "ours"
    ]


def render(rows: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("baseline", "pairs", "batch x steps", "ours steps/s", "baseline steps/s", "ratio"):
        table.add_column(col, justify="left" if col == "baseline" else "right")
    for r in rows:
        table.add_row(r["baseline"], str(r["pairs"]), f"{r['batch']} x {r['steps']}", f"{r['ours_steps_s']:.2f}",
                      f"{r['baseline_steps_s']:.2f}", f"{r['ratio']:.2f}x")  # fmt: skip
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="32 pairs, 4 steps, a smaller model (smoke run)")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads (default {THREADS})")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    console = make_console()
    info = torch_run_info(console, args.threads)
    rows = measure(plan, args.seed, console)
    title = f"DPO training, tiny Llama (d={plan.d_model}, {plan.n_layers} layers), fp32, CPU, {args.threads} threads"
    console.print(render(rows, title))
    console.print("steps/s: optimizer steps per second, from text pairs to a trained model; ratio = ours / baseline.")
    print_verdict(console, "lowest ratio", min(r["ratio"] for r in rows), TARGET)
    write_json(args.json, console, info, plan=plan.__dict__, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
