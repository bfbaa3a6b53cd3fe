"""BTX's mixed model against a dense model of the same active parameters, and the cost of the mix step.

1. Training throughput: forward + backward + AdamW tokens/s of a Mixtral mix (4 experts of FFN width ``ff``,
   top-2, the paper's shape) against a dense Llama of the same active parameter count (FFN width 2 x ``ff``;
   the router's N x d per layer is the only difference), on 2 threads, batches of 32 documents of 64 tokens.
   Ratio: MoE tokens/s over dense tokens/s.
2. The mix step (``system2.btx.mix``) for N = 2, 4, 8 experts of a larger Llama: wall time and the peak resident
   memory it adds (each N in a fresh process: the peak resident size during the mix, VmHWM reset just before it,
   minus the resident size before it; mapped checkpoint pages that were read count), against the size of
   one expert's weights. The mix streams tensors, so the peak should stay near one tensor, not N models.

Run from the repository root::

    python benchmarks/btx_moe.py [--steps 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

try:
    from benchmarks.common import make_console, torch_run_info, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import make_console, torch_run_info, write_json  # type: ignore[no-redef]

SIZES = ((128, 4, 512), (256, 4, 1024))  # (d_model, layers, expert FFN width)
BATCH, SEQ, VOCAB = 32, 64, 512
MIX_SIZE = (512, 8, 2048)  # the experts of the mix benchmark: about 34M parameters each
MIX_CHILD = """
import json, sys, time
from pathlib import Path
from system2.btx import mix

def status(key):  # kB, from /proc/self/status
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
    return int(line.split()[1])

experts, out = sys.argv[1].split(","), sys.argv[2]
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS")
t0 = time.perf_counter()
mix(experts, out, top_k=2)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "added_kib": status("VmHWM") - before}))
"""


def models(d: int, layers: int, ff: int) -> tuple[Any, Any]:
    """(Mixtral with 4 experts of width ``ff``, top-2; dense Llama of width 2 ``ff``), both fp32, seeded."""
    from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    shared = dict(vocab_size=VOCAB, hidden_size=d, num_hidden_layers=layers, num_attention_heads=d // 64,
                  num_key_value_heads=d // 64, max_position_embeddings=SEQ)  # fmt: skip
    torch.manual_seed(0)
    moe = MixtralForCausalLM(MixtralConfig(**shared, intermediate_size=ff, num_local_experts=4, num_experts_per_tok=2,
                                           output_router_logits=True, sliding_window=None))  # fmt: skip
    dense = LlamaForCausalLM(LlamaConfig(**shared, intermediate_size=2 * ff))
    return moe, dense


def step_rate(model: Any, steps: int) -> float:
    """Tokens per second of forward + backward + AdamW on random token batches (3 untimed steps first)."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    elapsed = 0.0
    for i in range(steps + 3):
        ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            elapsed += time.perf_counter() - t0
    return steps * BATCH * SEQ / elapsed


def mix_costs(counts: Sequence[int], root: Path) -> list[dict[str, float]]:
    """Per N: the mix's seconds and added peak memory, and one expert's weight bytes."""
    from system2.btx.scoring import active_params
    from system2.lm.io import save_lm
    from system2.lm.tiny import build_word_tokenizer, tiny_llama

    d, layers, ff = MIX_SIZE
    tok = build_word_tokenizer([f"w{i}" for i in range(VOCAB - 4)], model_max_length=SEQ)
    experts = []
    for i in range(max(counts)):
        model = tiny_llama(tok, d_model=d, n_layers=layers, n_heads=d // 64, max_len=SEQ, seed=i, d_ff=ff)
        experts.append(str(save_lm(model, tok, root / f"expert{i}")))
    expert_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    rows = []
    for n in counts:
        out = subprocess.run([sys.executable, "-c", MIX_CHILD, ",".join(experts[:n]), str(root / f"mix{n}")],
                             capture_output=True, text=True, check=True)  # fmt: skip
        got = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"experts": n, "seconds": got["seconds"], "added_mb": got["added_kib"] / 1024,
                     "expert_mb": expert_bytes / 2**20, "expert_params": active_params(model.config)})  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per model (default 20)")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    args = parser.parse_args(argv)
    console = make_console()
    info = torch_run_info(console)
    from system2.btx.scoring import active_params

    speed = []
    for d, layers, ff in SIZES:
        moe, dense = models(d, layers, ff)
        row = {"d_model": d, "layers": layers, "ff": ff, "moe_active": active_params(moe.config),
               "dense_active": active_params(dense.config), "moe_tps": step_rate(moe, args.steps),
               "dense_tps": step_rate(dense, args.steps)}  # fmt: skip
        speed.append(row)
    table = Table(title=f"Training step, {BATCH} x {SEQ} tokens, 2 threads: Mixtral 4 experts top-2 vs dense")
    for col in ("d / layers / ff", "active params (MoE / dense)", "MoE tokens/s", "dense tokens/s", "MoE / dense"):
        table.add_column(col, justify="right")
    for r in speed:
        shape, active = f"{r['d_model']} / {r['layers']} / {r['ff']}", f"{r['moe_active']:,} / {r['dense_active']:,}"
        table.add_row(shape, active, f"{r['moe_tps']:,.0f}", f"{r['dense_tps']:,.0f}",
                      f"{r['moe_tps'] / r['dense_tps']:.2f}")  # fmt: skip
    console.print(table)

    with tempfile.TemporaryDirectory() as tmp:
        mixes = mix_costs((2, 4, 8), Path(tmp))
    table = Table(title=f"The mix step, experts of d={MIX_SIZE[0]}, {MIX_SIZE[1]} layers, ff={MIX_SIZE[2]} (fp32)")
    for col in ("experts", "seconds", "peak memory added (MB)", "one expert's weights (MB)", "added / one expert"):
        table.add_column(col, justify="right")
    for r in mixes:
        table.add_row(str(r["experts"]), f"{r['seconds']:.1f}", f"{r['added_mb']:.0f}", f"{r['expert_mb']:.0f}",
                      f"{r['added_mb'] / r['expert_mb']:.2f}")  # fmt: skip
    console.print(table)
    write_json(args.json, console, info, steps=args.steps, speed=speed, mix=mixes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
