#!/usr/bin/env bash
# The planning GPU check, one run of at most 6 minutes on one GPU (docs/benchmarks.md, "Planning on a GPU"):
# training tokens/s and MFU (bf16) of the `s` and `m` planners, then a 7x7 search-augmented learning curve with
# the `s` model (the data of `repro searchformer --scale gpu`), cut at CURVE_SECONDS. Needs torch and the
# project's dependencies, not an install: run from the repository root as `OUT=DIR bash benchmarks/gpu_check.sh`.
set -euo pipefail
OUT=${OUT:-runs/gpu-check}
CURVE_SECONDS=${CURVE_SECONDS:-240}
mkdir -p "$OUT"
export PYTHONPATH=.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || true
python benchmarks/planner_mfu.py --presets s,m --batch 64 --json "$OUT/mfu.json" 2>&1 | tee "$OUT/mfu.log"
python -m system2.cli planning generate maze --size 7 --train 20000 --test 200 --workers 8 \
    --out "$OUT/maze7" train_per_layout=5 > "$OUT/generate.log" 2>&1
# 3,000 steps scored every 1,000; cut at CURVE_SECONDS (then metrics.jsonl still shows the loss and tokens/s)
timeout "$CURVE_SECONDS" python -m system2.cli planning curve --data "$OUT/maze7" --out "$OUT/curve7" \
    --mode search --preset s --steps 3000 train.batch_size=64 train.lr=0.001 train.warmup=200 \
    train.ckpt_every=1000 eval_limit=200 > "$OUT/curve.log" 2>&1 || echo "curve: cut after ${CURVE_SECONDS}s"
tail -n 5 "$OUT/curve7/metrics.jsonl" 2>/dev/null || true
