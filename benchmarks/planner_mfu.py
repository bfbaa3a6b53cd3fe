"""Planning-model training throughput and model FLOPs utilisation (MFU) on one device.

Our EncoderDecoder of each preset trains (forward + backward + AdamW) on synthetic maze-like batches (the
10x10 setting of ``train_throughput.py``: prompts of about 125 tokens, decoder sequences of about 280) under
bf16 autocast on CUDA, as the training loop runs there; on CPU it runs in fp32 (a smoke run: CPU MFU means
little). The FLOPs of one step are counted by ``torch.utils.flop_counter.FlopCounterMode`` (forward and
backward), not by a formula: matmuls (padding is packed away, so only real tokens count) and the attention
kernels it knows (CUDA's SDPA kernels; on CPU the fused attention is not counted); the per-op counts are
printed and recorded. MFU = counted FLOPs per second / the device's peak
(``--peak-tflops``; the default 989 is the dense bf16 tensor-core peak of an H100/H200 SXM). Reported per
preset: decoder target tokens/s, all tokens/s (prompt + decoder), TFLOP/s and MFU, best of the timed rounds.
Run from the repository root::

    python benchmarks/planner_mfu.py [--presets s,m] [--batch 64] [--peak-tflops 989] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from system2.nn.encdec import EncDecConfig, EncoderDecoder
from system2.planning.losses import sequence_loss

try:
    from benchmarks.common import make_console, write_json
    from benchmarks.train_throughput import SETTINGS, VOCAB, synthetic_batches
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import make_console, write_json  # type: ignore[no-redef]
    from train_throughput import SETTINGS, VOCAB, synthetic_batches  # type: ignore[no-redef]

H200_BF16_TFLOPS = 989.0


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor], bf16: bool) -> int:
    with torch.autocast(batch["src"].device.type, dtype=torch.bfloat16, enabled=bf16):
        loss, n = sequence_loss(model, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {float(loss)}")
    return int(n)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(preset: str, batch: int, steps: int, rounds: int, device: torch.device, peak: float) -> dict[str, Any]:
    """Train ``preset`` on ``steps`` distinct batches per round; the best of ``rounds`` timed rounds."""
    torch.manual_seed(0)
    model = EncoderDecoder(EncDecConfig.preset(preset, VOCAB)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99), weight_decay=0.01)
    src_len, tgt_len = SETTINGS["10x10"]
    batches = [
        {k: v.to(device) for k, v in b.items()} for b in synthetic_batches(steps, batch, src_len, tgt_len, seed=0)
    ]
    bf16 = device.type == "cuda"
    flops = 0
    by_op: dict[str, int] = {}
    for b in batches:  # untimed: allocates every shape once, and counts each batch's FLOPs
        with FlopCounterMode(display=False) as counter:
            _step(model, opt, b, bf16)
        flops += counter.get_total_flops()
        for op, n in counter.get_flop_counts()["Global"].items():
            by_op[str(op)] = by_op.get(str(op), 0) + n
    all_tokens = sum(int(b["src_mask"].sum() + b["tgt_mask"].sum()) for b in batches)
    best = float("inf")
    target = 0
    for _ in range(rounds):
        _sync(device)
        t0 = time.perf_counter()
        target = sum(_step(model, opt, b, bf16) for b in batches)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    tflops = flops / best / 1e12
    return {
        "preset": preset,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": batch,
        "precision": "bf16 autocast" if bf16 else "fp32",
        "target_tokens_per_s": target / best,
        "all_tokens_per_s": all_tokens / best,
        "step_ms": 1000 * best / len(batches),
        "tflops": tflops,
        "mfu": tflops / peak,
        "flops_by_op": by_op,  # what was counted: on CPU the fused attention kernel is not (matmuls only)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="s,m")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="distinct batches per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    console = make_console()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    console.print(f"device: {name}; torch {torch.__version__}; peak {args.peak_tflops} TFLOP/s")
    rows = [measure(p, args.batch, args.steps, args.rounds, device, args.peak_tflops) for p in args.presets.split(",")]
    table = Table(title=f"planner training, batch {args.batch}, 10x10-like sequences")
    for col in ("preset", "params (M)", "precision", "target tok/s", "all tok/s", "step (ms)", "TFLOP/s", "MFU"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["preset"], f"{r['params_m']:.1f}", r["precision"], f"{r['target_tokens_per_s']:,.0f}",
            f"{r['all_tokens_per_s']:,.0f}", f"{r['step_ms']:.1f}", f"{r['tflops']:.2f}", f"{100 * r['mfu']:.1f}%",
        )  # fmt: skip
    console.print(table)
    for r in rows:
        console.print(
            f"{r['preset']}: FLOPs counted per op: " + ", ".join(f"{k} {v:.3g}" for k, v in r["flops_by_op"].items())
        )
    write_json(args.json, console, {"device": name, "torch": torch.__version__}, rows=rows)


if __name__ == "__main__":
    main()
