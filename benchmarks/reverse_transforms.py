"""Cost of the reversal transforms (system2/reverse.py) against the training step they feed, per token.

The corpus: bioS-lite biographies (``system2.tasks.bios``, entity spans from the world) repeated until the
text reaches ``--mb`` megabytes (default 100). Each transform runs over the whole corpus on one core: word,
entity-preserving (with the spans), random segments (k = 3, the bioS name length) and token reversal (on the
word-level token ids, tokenized beforehand and not timed). A word-level tokenizer gives one token per word, so
tokens/s = words/s. The training step: the ``small`` reverse-training arm (a Llama with d = 64, 2 layers,
4 heads, on that world's vocabulary), forward + backward + AdamW on batches of 32 documents as
``ReversedLMData`` makes them (data-matched segment reversal), on 2 threads as the reproduction runs.
Reported: the transforms' tokens/s, the step's tokens/s and the ratio transform time / step time per token
(the target: at most 10%). Run from the repository root::

    python benchmarks/reverse_transforms.py [--mb 100] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from rich.table import Table

from system2.lm.losses import make_sft_loss_fn
from system2.lm.reversal_data import ReversedLMData, add_rev_token
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.reverse import Reversal, reverse_tokens
from system2.tasks.bios import BioWorldConfig, make_bio_world
from system2.tasks.reversal import vocabulary

try:
    from benchmarks.common import make_console, pin_one_core, print_verdict, torch_run_info, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import (  # type: ignore[no-redef]
        make_console,
        pin_one_core,
        print_verdict,
        torch_run_info,
        write_json,
    )

TARGET = 0.10
WORLD = BioWorldConfig(n_people=200, attributes=("birth_date", "birth_city", "university"))
STEP_BATCH = 32


def corpus(mb: float) -> tuple[list[str], list[list[tuple[int, int]]], Any]:
    """Texts, entity spans and the world: the world's documents repeated to ``mb`` megabytes of text."""
    world = make_bio_world(WORLD)
    docs = list(world.documents)
    size = sum(len(d.text) + 1 for d in docs)
    copies = max(1, round(mb * 1e6 / size))
    texts = [d.text for d in docs] * copies
    spans = [[tuple(s) for s in d.entities] for d in docs] * copies
    return texts, spans, world  # type: ignore[return-value]


def time_transform(fn: Callable[[int], Any], n: int) -> float:
    """Seconds to apply ``fn`` to every example index."""
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - t0


def transforms(texts: Sequence[str], spans: Sequence[Any], ids: Sequence[list[int]]) -> dict[str, float]:
    """Seconds per transform over the corpus (one core)."""
    word, entity, segment = Reversal("word"), Reversal("entity"), Reversal("segment", k=3)
    return {
        "word": time_transform(lambda i: word.apply(texts[i]), len(texts)),
        "entity": time_transform(lambda i: entity.apply(texts[i], spans[i], 0, i), len(texts)),
        "segment k=3": time_transform(lambda i: segment.apply(texts[i], (), 0, i), len(texts)),
        "token": time_transform(lambda i: reverse_tokens(ids[i]), len(ids)),
    }


def step_rate(world: Any, steps: int) -> float:
    """Real tokens per second of training steps of the ``small`` arm model (2 threads)."""
    tok = build_word_tokenizer(vocabulary(world), model_max_length=512)
    add_rev_token(tok)
    model = tiny_llama(tok, d_model=64, n_layers=2, n_heads=4, max_len=512)
    texts = [d.text for d in world.documents]
    data = ReversedLMData(tok, texts, Reversal("segment", k=3), max_len=512)
    loss_fn = make_sft_loss_fn()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    batches = [data.batch(list(range(s, s + STEP_BATCH)), 0) for s in range(0, STEP_BATCH * (steps + 3), STEP_BATCH)]
    batches = [b for b in batches if b["input_ids"].shape[0] == STEP_BATCH]
    tokens, elapsed = 0, 0.0
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        loss, _ = loss_fn(model, batch)[:2]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:  # the first steps allocate
            elapsed += time.perf_counter() - t0
            tokens += int(batch["attention_mask"].sum())
    return tokens / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size in megabytes of text (default 100)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    args = parser.parse_args(argv)
    console = make_console()
    info = torch_run_info(console)
    texts, spans, world = corpus(args.mb)
    words = sum(len(t.split()) for t in texts)
    console.log(f"corpus: {len(texts):,} documents, {sum(len(t) + 1 for t in texts) / 1e6:.1f} MB, {words:,} words")
    tok = build_word_tokenizer(vocabulary(world), model_max_length=512)
    unique = [d.text for d in world.documents]
    unique_ids = tok(unique, add_special_tokens=False)["input_ids"]
    ids = unique_ids * (len(texts) // len(unique))
    step = step_rate(world, args.steps)
    console.log(pin_one_core())
    seconds = transforms(texts, spans, ids)
    rows = [
        {"transform": k, "seconds": s, "tokens_per_s": words / s, "ratio_to_step": (s / words) * step}
        for k, s in seconds.items()
    ]
    table = Table(title=f"Reversal transforms over {args.mb:g} MB (one core) vs a small training step (2 threads)")
    for col in ("transform", "seconds", "tokens/s", "step tokens/s", "transform / step time per token"):
        table.add_column(col, justify="left" if col == "transform" else "right")
    for r in rows:
        table.add_row(
            r["transform"],
            f"{r['seconds']:.1f}",
            f"{r['tokens_per_s']:,.0f}",
            f"{step:,.0f}",
            f"{100 * r['ratio_to_step']:.2f}%",
        )
    console.print(table)
    print_verdict(console, "highest ratio", max(r["ratio_to_step"] for r in rows), TARGET, at_most=True)
    write_json(args.json, console, info, mb=args.mb, words=words, step_tokens_per_s=step, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
