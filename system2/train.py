"""The one training loop of the project, on ``accelerate``.

Plain and visible: AdamW (betas 0.9/0.99, weight decay 0.01), linear warm-up then cosine decay to
``min_lr_ratio * lr``, gradient accumulation and clipping, bf16 autocast on GPUs. Each process reads its
own slice of a seeded per-epoch permutation, so one command runs unchanged on 1 CPU, under
``torchrun``/``accelerate launch`` on several processes (DDP, gloo on CPU), or on GPUs.

Checkpoints (weights, optimizer, scheduler, data position, random states) are written atomically every
``ckpt_every`` steps; a rerun of the same command resumes from the newest one and ends with the same
weights as a run that was never interrupted. Metrics go to ``metrics.jsonl`` and TensorBoard.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from system2.checkpoint import (
    latest_checkpoint,
    load_model_weights,
    load_trainer_state,
    prune_checkpoints,
    save_checkpoint,
)
from system2.config import ConfigError, to_dict


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32  # per process and micro-step
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    clip: float = 1.0
    seed: int = 0
    ckpt_every: int = 500
    keep_ckpts: int = 2
    log_every: int = 10
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, none on CPU; or "no" / "bf16"
    tensorboard: bool = True

    def validate(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("train.lr must be > 0 and train.min_lr_ratio in [0, 1]")
        if self.warmup < 0:
            raise ConfigError(f"train.warmup must be >= 0, got {self.warmup}")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ConfigError(f"train.mixed_precision must be auto, no or bf16, got {self.mixed_precision!r}")


class TrainData(Protocol):
    """A dataset the loop can read: ``batch`` must be a pure function of (indices, epoch). An optional
    ``lengths()`` (one number per example) turns on length-grouped batching."""

    def __len__(self) -> int: ...

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]: ...


# (model, batch) -> (loss, n_tokens) or (loss, n_tokens, metrics): float metrics (e.g. DPO's chosen/rejected
# log-probs) are averaged over the micro-steps of a step and over processes, and logged with the loss.
LossFn = Callable[
    [torch.nn.Module, dict[str, torch.Tensor]],
    tuple[torch.Tensor, int] | tuple[torch.Tensor, int, dict[str, float]],
]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_lr_ratio`` at the last step."""
    if cfg.warmup and step < cfg.warmup:
        return (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def epoch_order(
    n: int, seed: int, epoch: int, lengths: Sequence[int] | None = None, batch: int = 1, pool: int = 50
) -> list[int]:
    """A seeded permutation of ``range(n)`` for one epoch.

    With ``lengths``, examples of similar length are batched together to cut padding: the permutation
    is cut into pools of ``pool`` batches, each pool is sorted by length and cut into batches, and the
    batches are shuffled. Batches stay random in content and order; only their padding shrinks."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    if lengths is None or batch <= 1:
        return perm
    chunks: list[list[int]] = []
    size = pool * batch
    for start in range(0, n - n % batch, size):
        part = sorted(perm[start : min(start + size, n - n % batch)], key=lambda i: lengths[i])
        chunks += [part[i : i + batch] for i in range(0, len(part), batch)]
    order = torch.randperm(len(chunks), generator=g).tolist()
    return [i for c in order for i in chunks[c]] + perm[n - n % batch :]


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    seconds: float
    tokens: int


def train(
    model: torch.nn.Module,
    data: TrainData,
    loss_fn: LossFn,
    cfg: TrainConfig,
    out: str | Path,
    eval_fn: Callable[[torch.nn.Module, int], dict[str, float]] | None = None,
    eval_every: int = 0,
    progress: bool = True,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` for ``cfg.steps`` optimizer steps, checkpointing into ``out/ckpt``.

    ``init_from`` (a checkpoint directory) starts a new run from its weights and optimizer moments with
    a fresh step counter and warm-up, as search-dynamics bootstrapping fine-tunes each round; it is
    ignored when ``out`` already holds a checkpoint to resume."""
    from accelerate import Accelerator

    cfg.validate()
    out = Path(out)
    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "no"
    acc = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())
    world, rank = acc.num_processes, acc.process_index
    global_batch = cfg.batch_size * world
    if len(data) < global_batch:
        raise ConfigError(
            f"the dataset has {len(data)} examples, fewer than one global batch ({cfg.batch_size} x {world} "
            "processes): lower train.batch_size or add data"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    ckpt_dir = out / "ckpt"

    step, epoch, pos = 0, 0, 0
    last = latest_checkpoint(ckpt_dir)
    if last is not None:
        load_model_weights(model, last)
        st = load_trainer_state(last)
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        step, epoch, pos = st["step"], st["epoch"], st["pos"]
        torch.set_rng_state(st["torch_rng"])
        random.setstate((st["py_rng"][0], tuple(st["py_rng"][1]), st["py_rng"][2]))
        if acc.is_main_process:
            print(f"resuming from {last} (step {step})")
    elif init_from is not None:
        init = Path(init_from)
        load_model_weights(model, init)
        if (init / "trainer.pt").is_file():
            optimizer.load_state_dict(load_trainer_state(init)["optimizer"])
            for group in optimizer.param_groups:  # keep the moments, take the new run's settings
                group.update(lr=cfg.lr * lr_factor(0, cfg), initial_lr=cfg.lr, weight_decay=cfg.weight_decay)
                group.update(betas=(cfg.beta1, cfg.beta2))
    model, optimizer = acc.prepare(model, optimizer)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    logger = _MetricsLogger(out, cfg.tensorboard) if acc.is_main_process else None
    bar = _Bar(cfg.steps, step, progress and acc.is_main_process)

    lengths = data.lengths() if hasattr(data, "lengths") else None

    def order_of(ep: int) -> list[int]:
        return epoch_order(len(data), cfg.seed, ep, lengths, global_batch)

    order = order_of(epoch)
    t0, tokens_total, window_tokens, window_t = time.time(), 0, 0, time.time()
    loss_value = float("nan")
    try:
        while step < cfg.steps:
            model.train()
            loss_sum = torch.zeros((), device=acc.device)
            metric_sums: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                if pos + global_batch > len(data):
                    epoch, pos = epoch + 1, 0
                    order = order_of(epoch)
                idx = order[pos + rank * cfg.batch_size : pos + (rank + 1) * cfg.batch_size]
                pos += global_batch
                batch = {k: v.to(acc.device) for k, v in data.batch(idx, epoch).items()}
                sync = micro == cfg.grad_accum - 1
                ctx = acc.no_sync(model) if not sync and world > 1 else contextlib.nullcontext()
                with ctx, acc.autocast():
                    loss, n_tok, *extra = loss_fn(model, batch)
                    acc.backward(loss / cfg.grad_accum)
                for k, v in (extra[0] if extra else {}).items():
                    metric_sums[k] = metric_sums.get(k, 0.0) + float(v) / cfg.grad_accum
                loss_sum += loss.detach()
                window_tokens += n_tok * world
            grad_norm = acc.clip_grad_norm_(params, cfg.clip) if cfg.clip > 0 else None
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = acc.reduce(loss_sum / cfg.grad_accum, "mean").item()
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.time()
                tok_s = window_tokens / max(now - window_t, 1e-9)
                tokens_total += window_tokens
                window_tokens, window_t = 0, now
                row = {
                    "step": step,
                    "loss": loss_value,
                    "lr": scheduler.get_last_lr()[0],
                    "tokens_per_s": tok_s,
                }
                if grad_norm is not None:
                    row["grad_norm"] = float(grad_norm)
                if metric_sums:
                    keys = sorted(metric_sums)
                    values = acc.reduce(torch.tensor([metric_sums[k] for k in keys], device=acc.device), "mean")
                    row.update(zip(keys, values.tolist(), strict=True))
                if logger:
                    logger.log(row)
                bar.update(step, loss_value, tok_s)
            if eval_fn is not None and eval_every and step % eval_every == 0:
                metrics = eval_fn(acc.unwrap_model(model), step)
                if logger:
                    logger.log({"step": step, **{f"eval/{k}": v for k, v in metrics.items()}})
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                acc.wait_for_everyone()
                if acc.is_main_process:
                    state = {
                        "optimizer": optimizer.optimizer.state_dict()
                        if hasattr(optimizer, "optimizer")
                        else optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "step": step,
                        "epoch": epoch,
                        "pos": pos,
                        "torch_rng": torch.get_rng_state(),
                        "py_rng": _py_rng_state(),
                        "world_size": world,
                    }
                    save_checkpoint(ckpt_dir, step, acc.unwrap_model(model), state)
                    prune_checkpoints(ckpt_dir, cfg.keep_ckpts)
                acc.wait_for_everyone()
    finally:
        bar.close()
        if logger:
            logger.close()
    acc.wait_for_everyone()  # a barrier before teardown (gloo can abort otherwise)
    return TrainResult(step, loss_value, time.time() - t0, tokens_total)


def _py_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


class _MetricsLogger:
    """Append-only JSONL plus TensorBoard scalars, both in the run directory."""

    def __init__(self, out: Path, tensorboard: bool) -> None:
        self.file = open(out / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))

    def log(self, row: dict[str, float]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step":
                    self.tb.add_scalar(k, v, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


class _Bar:
    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.p = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.p = Progress(
            "[bold]train", BarColumn(), MofNCompleteColumn(), "{task.fields[info]}", TimeRemainingColumn()
        )
        self.p.start()
        self.task = self.p.add_task("train", total=total, completed=start, info="")

    def update(self, step: int, loss: float, tok_s: float) -> None:
        if self.p is not None:
            self.p.update(self.task, completed=step, info=f"loss {loss:.4f}  {tok_s:,.0f} tok/s")

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
