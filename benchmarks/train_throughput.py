"""Training throughput of our EncoderDecoder against ``torch.nn.Transformer`` of the same shape, on CPU.

Both models train on the same synthetic batches (random token ids, maze-like lengths, batch 32, fp32)
with the same loss (``system2.planning.losses.sequence_loss``: token cross-entropy averaged per sequence)
and the same AdamW step; a step is forward + backward + optimizer. The baseline is the plain PyTorch
model one would write: two embeddings plus fixed sinusoidal positions, ``nn.Transformer(d_model, nhead,
enc_layers, dec_layers, dim_feedforward=1.5 x our SwiGLU hidden, activation="gelu", norm_first=True,
batch_first=True, dropout=0)``, a bias-free output Linear; a causal ``tgt_mask`` with ``tgt_is_causal``
and the prompt's key padding mask for the encoder and the cross-attention. Targets are right-padded, so
under the causal mask no target key padding mask is needed (ours has none); passing one would slow the
baseline down (it turns the causal fast path into a merged float mask). SwiGLU has three matrices and the
GELU feed-forward two, so 1.5 x the hidden width gives both the same feed-forward parameters.

Ours runs twice, as two identical models: with the fused paths of ``system2/nn/fused.py`` (the default) and
with the plain modules (``use_fused(False)``), so the cost of the plain reference code is a number.

Reported: decoder target tokens per second (best of several timed passes over the same batches, after
an untimed one; the three trainers take turns) and the ratios ours / nn.Transformer and plain /
nn.Transformer. Run from the repository root::

    python benchmarks/train_throughput.py [--quick] [--presets cpu,s] [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from system2.nn import fused
from system2.nn.encdec import EncDecConfig, EncoderDecoder
from system2.planning.data import pad_batch
from system2.planning.losses import sequence_loss
from system2.planning.tokens import maze_vocabulary

try:
    from benchmarks.common import THREADS, make_console, print_verdict, torch_run_info, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import THREADS, make_console, print_verdict, torch_run_info, write_json  # type: ignore[no-redef]

TARGET_RATIO = 1.0
VOCAB = len(maze_vocabulary(10, 10))  # 118 tokens, bos (0) doubles as padding
Batch = dict[str, torch.Tensor]
SETTINGS: dict[str, tuple[int, int]] = {"10x10": (125, 280), "short": (45, 150)}  # mean prompt, target


@dataclass(frozen=True)
class Plan:
    """``batches`` distinct batches; one untimed pass over them per model (every shape allocated once),
    then ``rounds`` timed passes per model, the two models alternating."""

    batches: int
    rounds: int


FULL = {"cpu": Plan(2, 9), "s": Plan(2, 5)}
QUICK = {"cpu": Plan(1, 1), "s": Plan(1, 1)}
QUICK_BATCH = 4


class TorchTransformer(nn.Module):
    """Embeddings + sinusoidal positions + ``nn.Transformer`` + output Linear: the baseline."""

    def __init__(
        self,
        vocab: int,
        d_model: int,
        nhead: int,
        enc_layers: int,
        dec_layers: int,
        ffn: int,
        max_len: int = 4096,
    ) -> None:
        super().__init__()
        self.src_embed = nn.Embedding(vocab, d_model)
        self.tgt_embed = nn.Embedding(vocab, d_model)
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        self.register_buffer("pos", table, persistent=False)
        with warnings.catch_warnings():  # "enable_nested_tensor is True, but ... norm_first was True"
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(
                d_model,
                nhead,
                enc_layers,
                dec_layers,
                ffn,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
        self.out = nn.Linear(d_model, vocab, bias=False)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt: torch.Tensor, tgt_mask: torch.Tensor
    ) -> torch.Tensor:
        s, t = src.shape[1], tgt.shape[1]
        pad = ~src_mask
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=tgt.device)
        h = self.transformer(
            self.src_embed(src) + self.pos[:s],
            self.tgt_embed(tgt) + self.pos[:t],
            tgt_mask=causal,
            src_key_padding_mask=pad,
            memory_key_padding_mask=pad,
            tgt_is_causal=True,
        )
        return self.out(h)[tgt_mask]  # the logits sequence_loss asks for


def build_models(preset: str, seed: int) -> tuple[EncoderDecoder, TorchTransformer]:
    """Our model of ``preset`` and the nn.Transformer baseline of the same shape."""
    cfg = EncDecConfig.preset(preset, VOCAB)
    torch.manual_seed(seed)
    ours = EncoderDecoder(cfg)
    torch.manual_seed(seed)
    ffn = round(1.5 * cfg.hidden)
    ref = TorchTransformer(VOCAB, cfg.d_model, cfg.n_heads, cfg.enc_layers, cfg.dec_layers, ffn)
    return ours, ref


def synthetic_batches(n: int, batch: int, src_len: int, tgt_len: int, seed: int) -> list[Batch]:
    """``n`` batches of random token ids: prompt lengths uniform in +-10% of ``src_len``, decoder lengths
    (``bos`` + targets) uniform in +-40% of ``tgt_len``, right-padded as ``PlanningTrainData`` does."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        src_lens = rng.integers(round(0.9 * src_len), round(1.1 * src_len) + 1, batch)
        tgt_lens = rng.integers(round(0.6 * tgt_len), round(1.4 * tgt_len) + 1, batch)
        srcs = [rng.integers(1, VOCAB, k) for k in src_lens]
        tgts = [np.concatenate([[0], rng.integers(1, VOCAB, k - 1)]) for k in tgt_lens]
        src, src_mask = pad_batch(srcs, 0)
        tgt, tgt_mask = pad_batch(tgts, 0)
        out.append({"src": src, "src_mask": src_mask, "tgt": tgt, "tgt_mask": tgt_mask})
    return out


class Trainer:
    """One model, its AdamW and a cursor over the shared batches; ``fused``: the switch of nn/fused.py."""

    def __init__(self, model: nn.Module, batches: Sequence[Batch], use_fused: bool = True) -> None:
        self.model = model.train()
        self.use_fused = use_fused
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.01)
        self.batches = batches
        self.i = 0
        self.last_loss = math.nan

    def step(self) -> int:
        """Forward + backward + optimizer step on the next batch; returns its target tokens."""
        batch = self.batches[self.i % len(self.batches)]
        self.i += 1
        with fused.use_fused(self.use_fused):
            loss, n = sequence_loss(self.model, batch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        self.opt.step()
        self.last_loss = float(loss.detach())
        return n

    def timed(self, steps: int) -> float:
        """Target tokens per second over ``steps`` steps."""
        t0 = time.perf_counter()
        tokens = sum(self.step() for _ in range(steps))
        return tokens / (time.perf_counter() - t0)


def measure(preset: str, setting: str, plan: Plan, batch: int, seed: int, console: Console) -> dict[str, Any]:
    """Ours (fused and plain) and nn.Transformer of ``preset`` on the batches of ``setting``; one result row."""
    src_len, tgt_len = SETTINGS[setting]
    ours, ref = build_models(preset, seed)
    plain, _ = build_models(preset, seed)
    batches = synthetic_batches(plan.batches, batch, src_len, tgt_len, seed)
    trainers = {"ours": Trainer(ours, batches), "plain": Trainer(plain, batches, False), "ref": Trainer(ref, batches)}
    for tr in trainers.values():
        for _ in range(plan.batches):
            tr.step()
        if not math.isfinite(tr.last_loss):
            raise FloatingPointError(f"{preset} {setting}: non-finite loss {tr.last_loss}")
    rates: dict[str, list[float]] = {name: [] for name in trainers}
    order = list(trainers)
    for r in range(plan.rounds):
        for name in order[r % 3 :] + order[: r % 3]:  # each trainer goes first, second and third in turn
            rates[name].append(trainers[name].timed(plan.batches))
    best = {k: max(v) for k, v in rates.items()}
    console.log(
        f"{preset} {setting}: ours {best['ours']:,.0f} tok/s, plain {best['plain']:,.0f} tok/s, "
        f"nn.Transformer {best['ref']:,.0f} tok/s (rounds: "
        + ", ".join(f"{k} {[round(x) for x in v]}" for k, v in rates.items())
        + ")"
    )
    tokens = [int(b["tgt_mask"][:, 1:].sum()) for b in batches]
    return {
        "preset": preset,
        "setting": setting,
        "batch": batch,
        "mean_src_len": src_len,
        "mean_tgt_len": tgt_len,
        "target_tokens_per_batch": statistics.mean(tokens),
        "padded_shapes": [[list(b["src"].shape), list(b["tgt"].shape)] for b in batches],
        "ours_params": sum(p.numel() for p in ours.parameters()),
        "ref_params": sum(p.numel() for p in ref.parameters()),
        "ref_dim_feedforward": ref.transformer.encoder.layers[0].linear1.out_features,
        "plan": vars(plan),
        "ours_tok_s_rounds": rates["ours"],
        "plain_tok_s_rounds": rates["plain"],
        "ref_tok_s_rounds": rates["ref"],
        "ours_tok_s": best["ours"],
        "plain_tok_s": best["plain"],
        "ref_tok_s": best["ref"],
        "ratio": best["ours"] / best["ref"],
        "plain_ratio": best["plain"] / best["ref"],
        "ratio_median": statistics.median(rates["ours"]) / statistics.median(rates["ref"]),
        "plain_ratio_median": statistics.median(rates["plain"]) / statistics.median(rates["ref"]),
        "ratio_paired_median": statistics.median(a / b for a, b in zip(rates["ours"], rates["ref"], strict=True)),
    }


def render(rows: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    cols = ("preset", "setting", "params ours", "params nn.T", "ours tok/s", "plain tok/s", "nn.Transformer tok/s")
    cols += ("ratio", "plain ratio", "ratio of medians", "plain ratio of medians", "paired ratio (median)")
    for col in cols:
        table.add_column(col, justify="left" if col in ("preset", "setting") else "right")
    for r in rows:
        table.add_row(
            r["preset"],
            f"{r['setting']} ({r['mean_src_len']}/{r['mean_tgt_len']})",
            f"{r['ours_params']:,}",
            f"{r['ref_params']:,}",
            f"{r['ours_tok_s']:,.0f}",
            f"{r['plain_tok_s']:,.0f}",
            f"{r['ref_tok_s']:,.0f}",
            f"{r['ratio']:.2f}x",
            f"{r['plain_ratio']:.2f}x",
            f"{r['ratio_median']:.2f}x",
            f"{r['plain_ratio_median']:.2f}x",
            f"{r['ratio_paired_median']:.2f}x",
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"batch {QUICK_BATCH}, one round (a smoke run)")
    parser.add_argument("--presets", default="cpu,s", help="comma-separated model presets (default cpu,s)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated length settings")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    parser.add_argument("--seed", type=int, default=0, help="model and batch seed (default 0)")
    args = parser.parse_args(argv)
    presets, settings = args.presets.split(","), args.settings.split(",")
    plans = QUICK if args.quick else FULL
    for p in presets:
        if p not in plans:
            parser.error(f"unknown preset {p!r}: choose from {', '.join(plans)}")
    for s in settings:
        if s not in SETTINGS:
            parser.error(f"unknown setting {s!r}: choose from {', '.join(SETTINGS)}")
    batch = QUICK_BATCH if args.quick else 32

    console = make_console()
    info = torch_run_info(console)
    rows = [measure(p, s, plans[p], batch, args.seed, console) for p in presets for s in settings]
    console.print(render(rows, f"Training throughput, batch {batch}, fp32, CPU, {THREADS} threads"))
    console.print(
        "tok/s: decoder target tokens (real, not padding) per second of forward + backward + AdamW step, "
        "best round; ours: the fused paths (default), plain: the same model on the plain modules; ratio = "
        "ours / nn.Transformer (best rounds; also of the median rounds, and the median of the ratios of "
        "adjacent rounds). setting: (mean prompt / mean decoder length)."
    )
    print_verdict(console, "lowest ratio", min(r["ratio"] for r in rows), TARGET_RATIO)
    write_json(args.json, console, info, seed=args.seed, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
