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

from system2 import dist
from system2.checkpoint import load_model_weights, load_trainer_state, prune_checkpoints, resume, save_checkpoint
from system2.config import ConfigError
from system2.console import Progress
from system2.runs import atomic_write_text


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # examples per process and micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine decay ends at lr * min_lr_ratio
    warmup: int = 100  # linear warm-up steps
    weight_decay: float = 0.01  # AdamW weight decay
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.99  # AdamW beta2
    clip: float = 1.0  # gradient norm clip (0: none)
    seed: int = 0  # seed of the data order (planners and CoPE arms: also of the initial weights)
    ckpt_every: int = 500  # steps between checkpoints (a rerun resumes from the newest)
    keep_ckpts: int = 2  # checkpoints kept on disk
    log_every: int = 10  # steps between metrics records (metrics.jsonl)
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, none on CPU; or "no" / "bf16"
    tensorboard: bool = True  # also write metrics for TensorBoard

    def validate(self, field: str = "train") -> None:
        """Raise ConfigError for settings that cannot run, naming them under ``field`` (the config's key for
        this block: train, sft, ...)."""
        f = field
        for name in ("steps", "batch_size", "grad_accum", "ckpt_every", "log_every", "keep_ckpts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{f}.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "min_lr_ratio", "weight_decay", "beta1", "beta2", "clip"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{f}.{name} must be a finite number, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"{f}.lr must be > 0 (got {self.lr}) and {f}.min_lr_ratio in [0, 1]")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1) or self.weight_decay < 0 or self.clip < 0:
            raise ConfigError(f"{f}.beta1 and {f}.beta2 must be in [0, 1); {f}.weight_decay and {f}.clip >= 0")
        if not 0 <= self.warmup <= self.steps:
            raise ConfigError(f"{f}.warmup must be in [0, {f}.steps], got warmup={self.warmup} with steps={self.steps}")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ConfigError(f"{f}.mixed_precision must be auto, no or bf16, got {self.mixed_precision!r}")


class TrainData(Protocol):
    """A dataset the loop can read: ``batch`` must be a pure function of (indices, epoch). An optional
    ``lengths()`` (one number per example) turns on length-grouped batching."""

    def __len__(self) -> int: ...

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]: ...


# (model, batch) -> (loss, n_tokens) or (loss, n_tokens, metrics): float metrics (e.g. DPO's chosen/rejected
# log-probs) are averaged over the micro-steps of a step and over processes, and logged with the loss. A loss
# function with ``token_mean = True`` (a mean over its batch's n_tokens) is averaged over every token of the step
# across micro-steps and processes; any other is averaged per micro-batch (e.g. a mean over sequences or pairs).
LossFn = Callable[
    [torch.nn.Module, dict[str, torch.Tensor]],
    tuple[torch.Tensor, int] | tuple[torch.Tensor, int, dict[str, float]],
]


def resolved_precision(cfg: TrainConfig) -> str:
    """``"bf16"`` or ``"no"``: the autocast the loop trains under (``auto``: bf16 on CUDA). A frozen model whose
    log-probs the loss compares with the policy's (a DPO reference) is run under the same one."""
    if cfg.mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return cfg.mixed_precision


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
    extra_files: dict[str, str] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` for ``cfg.steps`` optimizer steps, checkpointing into ``out/ckpt``.

    ``init_from`` (a checkpoint directory) starts a new run from its weights and optimizer moments with
    a fresh step counter and warm-up, as search-dynamics bootstrapping fine-tunes each round; it is
    ignored when ``out`` already holds a checkpoint to resume. ``extra_files`` (name -> text, e.g. a
    vocabulary) are saved inside every checkpoint's model files. A damaged newest checkpoint is skipped
    (the previous one is used, saying so); metrics logged after the resumed step are dropped."""
    from accelerate import Accelerator

    cfg.validate()
    out = Path(out)
    acc = Accelerator(mixed_precision=resolved_precision(cfg), cpu=not torch.cuda.is_available())
    world, rank = dist.world_size(), dist.rank()
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

    def load(ckpt: Path) -> dict[str, Any]:
        st = load_trainer_state(ckpt)
        load_model_weights(model, ckpt)
        return st

    found = resume(ckpt_dir, load, log=print if dist.is_main() else lambda _: None)
    if found is not None:
        last, st = found
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        step, epoch, pos = st["step"], st["epoch"], st["pos"]
        torch.set_rng_state(st["torch_rng"])
        random.setstate((st["py_rng"][0], tuple(st["py_rng"][1]), st["py_rng"][2]))
        if dist.is_main():
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
    if dist.is_main():
        out.mkdir(parents=True, exist_ok=True)
    logger = _MetricsLogger(out, cfg.tensorboard, resumed_step=step) if dist.is_main() else None
    lengths = data.lengths() if hasattr(data, "lengths") else None
    # a loss that is a mean over its batch's tokens is made a mean over the whole step's tokens (every micro-step on
    # every process), not a mean of per-batch means, which would weigh a token by its batch's length
    token_mean = bool(getattr(loss_fn, "token_mean", False))

    def order_of(ep: int) -> list[int]:
        return epoch_order(len(data), cfg.seed, ep, lengths, global_batch)

    order = order_of(epoch)
    t0, tokens_total, window_tokens, window_t = time.time(), 0, 0, time.time()
    loss_value = float("nan")
    bar = Progress(cfg.steps, "train", enabled=progress and dist.is_main(), start=step)
    try:
        while step < cfg.steps:
            model.train()
            loss_sum = torch.zeros((), device=acc.device)
            metric_sums: dict[str, float] = {}
            step_tokens = 0
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
                    acc.backward(loss * n_tok if token_mean else loss / cfg.grad_accum)
                step_tokens += n_tok
                for k, v in (extra[0] if extra else {}).items():
                    metric_sums[k] = metric_sums.get(k, 0.0) + float(v) / cfg.grad_accum
                loss_sum += loss.detach()
                window_tokens += n_tok * world
            if token_mean:  # summed over micro-steps and averaged over processes: divide by the step's tokens / world
                total = acc.reduce(torch.tensor(float(step_tokens), device=acc.device), "sum").item()
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(world / max(total, 1.0))
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
                bar.update(step, info=f"loss {loss_value:.4f}  {tok_s:,.0f} tok/s")
            if eval_fn is not None and eval_every and step % eval_every == 0:
                metrics = eval_fn(acc.unwrap_model(model), step)
                if logger:
                    logger.log({"step": step, **{f"eval/{k}": v for k, v in metrics.items()}})
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                acc.wait_for_everyone()
                if dist.is_main():
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
                    save_checkpoint(ckpt_dir, step, acc.unwrap_model(model), state, extra_files=extra_files)
                    prune_checkpoints(ckpt_dir, cfg.keep_ckpts)
                acc.wait_for_everyone()
    finally:
        bar.close(stopped=step < cfg.steps)
        if logger:
            logger.close()
    acc.wait_for_everyone()  # a barrier before teardown (gloo can abort otherwise)
    return TrainResult(step, loss_value, time.time() - t0, tokens_total)


def _logged_step(line: str) -> float:
    """The step of one metrics.jsonl line; a damaged (half-written) line counts as after any step."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


def _py_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _carry_tensorboard_events(writer: Any, old_files: list[Path], resumed_step: int) -> None:
    """Copy the scalars logged up to ``resumed_step`` from ``old_files`` into ``writer``'s new event file,
    then delete the old files. TensorBoard reads a directory's event files in name order, and a name
    (second, host, pid, counter) written later can sort first, so a purge step is not enough to log each
    step once; one file per directory is. The old files go only after the new one is flushed (a run
    killed in between leaves duplicates, which the next resume drops)."""
    if not old_files:
        return
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    kept: dict[tuple[int, tuple[str, ...]], Any] = {}
    for path in old_files:
        try:
            events = list(LegacyEventFileLoader(str(path)).Load())
        except Exception as err:  # a damaged file loses only its own events
            print(f"skipping the unreadable TensorBoard file {path}: {err}")
            continue
        for event in events:
            if event.HasField("summary") and event.step <= resumed_step:
                kept.setdefault((event.step, tuple(v.tag for v in event.summary.value)), event)
    for event in sorted(kept.values(), key=lambda e: (e.step, e.wall_time)):
        writer.file_writer.add_event(event, step=event.step, walltime=event.wall_time)
    writer.flush()
    for path in old_files:
        path.unlink(missing_ok=True)


class _MetricsLogger:
    """Append-only JSONL plus TensorBoard scalars, both in the run directory. A resumed run first drops
    what was logged after its checkpoint (the rows in ``metrics.jsonl``; the events in ``tensorboard/``,
    kept in one file), so each step is logged once."""

    def __init__(self, out: Path, tensorboard: bool, resumed_step: int = 0) -> None:
        path = out / "metrics.jsonl"
        if path.is_file():
            kept = [line for line in path.read_text().splitlines() if _logged_step(line) <= resumed_step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.file = open(path, "a")  # noqa: SIM115 - closed in close()
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            old = sorted((out / "tensorboard").glob("events.out.tfevents.*"))
            self.tb = SummaryWriter(str(out / "tensorboard"))
            _carry_tensorboard_events(self.tb, old, resumed_step)

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
