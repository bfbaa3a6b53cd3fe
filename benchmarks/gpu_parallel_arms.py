"""Can the Searchformer data-size sweep run in minutes on one GPU? (docs/benchmarks.md, "Planning on a GPU")

The four arms of one seed of ``repro searchformer --scale gpu`` (search-augmented and solution-only, on 2,000 and on
20,000 7x7 mazes; the ``s`` model) train at the same time, one process each, for ``--seconds`` at batch ``--batch``;
then each arm's newest checkpoint (``--curve``: every checkpoint) is decoded greedily on the same 200 unseen tasks.
Reported per arm: the steps it reached while four shared the GPU (steps per second), tokens per second, and the greedy
optimal and feasible rates.
It calls the library (no command-line dependencies), so it runs on a machine that has torch and the planning code's
packages. Run from the repository root::

    PYTHONPATH=. python benchmarks/gpu_parallel_arms.py --out DIR [--seconds 240] [--batch 256] [--lr 0.001]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from system2.checkpoint import latest_checkpoint
from system2.config import load_config
from system2.planning.generate import GenerateConfig, generate_dataset
from system2.planning.recipes import PlannerEvalConfig, PlannerTrainConfig, evaluate_planner, train_planner


def _train(args: argparse.Namespace) -> None:
    """One arm (run in its own process)."""
    cfg = load_config(PlannerTrainConfig, None, [
        f"data={args.data}", f"out={args.run}", f"mode={args.mode}", f"model.preset={args.preset}",
        "train.steps=100000", f"limit={args.n}", f"train.batch_size={args.batch}", f"train.lr={args.lr}",
        "train.warmup=200", f"train.ckpt_every={args.ckpt}", "train.log_every=50",
        f"train.keep_ckpts={1000 if args.curve else 2}",
    ])  # fmt: skip
    cfg.validate()
    train_planner(cfg)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--preset", default="s")
    p.add_argument("--ckpt", type=int, default=250)
    p.add_argument("--sizes", default="2000,20000")
    p.add_argument("--curve", action="store_true", help="keep and score every checkpoint, not only the newest")
    p.add_argument("--arm", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)  # one arm's process
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--run", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.arm:
        args.mode, args.n = args.arm
        _train(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    data = out / "maze7"
    gen = load_config(GenerateConfig, None, ["env=maze", "width=7", "height=7", f"train={max(sizes)}", "test=200",
                                              "workers=8", "train_per_layout=5"])  # fmt: skip
    gen.validate()
    t0 = time.monotonic()
    generate_dataset(gen, data)
    lines = [f"generate: {max(sizes)} train + 200 test tasks in {time.monotonic() - t0:.0f}s",
             f"batch {args.batch}, lr {args.lr}, preset {args.preset}, {args.seconds:.0f}s of training per arm, "
             f"{2 * len(sizes)} arms at once"]  # fmt: skip
    arms = [(mode, n) for n in sizes for mode in ("search", "solution")]
    env = {**os.environ, "SYSTEM2_PROGRESS_SECONDS": "10"}
    procs = {}
    start = time.monotonic()
    for mode, n in arms:
        log = open(out / f"{mode}-{n}.log", "w")  # noqa: SIM115 (closed below)
        cmd = [sys.executable, __file__, "--out", str(out), "--arm", mode, str(n), "--data", str(data),
               "--run", str(out / f"{mode}-{n}"), "--batch", str(args.batch), "--lr", str(args.lr),
               "--preset", args.preset, "--ckpt", str(args.ckpt)]  # fmt: skip
        procs[(mode, n)] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    time.sleep(max(0.0, args.seconds - (time.monotonic() - start)))
    for proc, _ in procs.values():
        proc.terminate()
    for proc, log in procs.values():
        proc.wait()
        log.close()
    for mode, n in arms:
        run = out / f"{mode}-{n}"
        logged = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").is_file() else []
        last = json.loads(logged[-1]) if logged else {}
        ckpts = sorted((run / "ckpt").glob("step-*")) if args.curve else [latest_checkpoint(run / "ckpt")]
        steps = last.get("step", 0)
        line = (
            f"{mode} {n}: {steps} steps logged ({steps / args.seconds:.1f} steps/s, start-up included), "
            f"{last.get('tokens_per_s', 0):,.0f} tokens/s at the last log"
        )
        for ckpt in [c for c in ckpts if c is not None]:
            scored = out / f"{mode}-{n}-eval" / ckpt.name
            ev = load_config(PlannerEvalConfig, None, [f"model={ckpt}", f"data={data}", "samples=1", "limit=200",
                                                       "mode=auto", f"out={scored}"])  # fmt: skip
            ev.validate()
            s = evaluate_planner(ev)
            s = s.get("summary", s)
            line += f"\n  {ckpt.name}: " + json.dumps({k: s.get(k) for k in ("greedy_optimal", "greedy_feasible")})
        lines.append(line)
        print(line, flush=True)
    (out / "summary.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
