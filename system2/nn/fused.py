"""Fast paths for the building blocks of ``layers.py`` and ``positions.py``, behind one switch.

The modules there are the reference maths in plain PyTorch. What lives here computes the same numbers with
fewer kernels and, in training, fewer passes over the activations, where autograd of the plain formulas is
slow on CPU:

- ``rms_norm``: PyTorch's fused forward kernel and a hand-written backward (PyTorch 2.13 has no fused
  CPU backward, so autograd differentiates the decomposition op by op);
- ``swiglu``: w1 and w3 as one matrix product, and a backward that writes both halves' gradients into
  one buffer (autograd would concatenate separately computed gradients);
- ``project_heads``: queries, keys and values from one matrix product, split into heads with RoPE
  applied, and a backward that writes every part's gradient into one buffer;
- ``rotate``: RoPE whose backward is the inverse rotation, so autograd keeps only the cos/sin tables.

Each is tested equal to the plain module in outputs and gradients (``tests/test_fused.py``); the training
throughput of both paths is in ``docs/benchmarks.md``. The switch: ``SYSTEM2_FUSED=0`` in the environment
turns the fused paths off for a process; ``use_fused(False)`` does so for a block of code. Packing (skipping
padding tokens) is not here: it is part of the plain models.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

_enabled = os.environ.get("SYSTEM2_FUSED", "1") != "0"


def enabled() -> bool:
    """Whether the modules take the fused paths (default yes; ``SYSTEM2_FUSED=0`` turns them off)."""
    return _enabled


@contextmanager
def use_fused(on: bool) -> Iterator[None]:
    """Take the fused paths (``on``) or the plain ones inside the block; the previous setting returns after."""
    global _enabled
    before, _enabled = _enabled, on
    try:
        yield
    finally:
        _enabled = before


def _differentiated(*tensors: torch.Tensor) -> bool:
    """True when autograd will differentiate through one of ``tensors``: only then are the hand-written
    backward passes used (without one, the forward formulas below run as they are)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


# --- RMSNorm -------------------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.rms_norm(x, (d,), weight, eps)`` with the fused kernel and a hand-written backward."""
    fused = hasattr(torch.ops.aten, "_fused_rms_norm") and x.dtype == weight.dtype
    if fused and _differentiated(x, weight):
        return _RMSNormFn.apply(x, weight, eps)
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


class _RMSNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        y, rstd = torch.ops.aten._fused_rms_norm(x, [x.shape[-1]], weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x, weight, rstd = ctx.saved_tensors
        xn = x * rstd
        gw = grad * weight
        # d/dx of x * rstd(x): rstd * (g - xn * mean(g * xn)), with g the gradient after the weight
        gx = rstd * (gw - xn * (gw * xn).mean(dim=-1, keepdim=True))
        return gx, (grad * xn).reshape(-1, x.shape[-1]).sum(0), None


# --- SwiGLU --------------------------------------------------------------------------------------------


def swiglu(x: torch.Tensor, w1: torch.Tensor, w3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """``w2(silu(w1 x) * w3 x)`` with w1 and w3 as one matrix product and a one-buffer backward."""
    gate_up = F.linear(x, torch.cat([w1, w3]))
    if _differentiated(gate_up):
        return F.linear(_SwiGLUFn.apply(gate_up), w2)
    gate, up = gate_up.chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, w2)


class _SwiGLUFn(torch.autograd.Function):
    """silu(gate) * up on the two halves of one tensor."""

    @staticmethod
    def forward(ctx: Any, gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        act = F.silu(gate)
        ctx.save_for_backward(gate_up, act)
        return act * up

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        gate_up, act = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        out = torch.empty_like(gate_up)
        grad_gate, grad_up = out.chunk(2, dim=-1)
        torch.mul(grad, act, out=grad_up)
        torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=grad_gate)
        return out


# --- RoPE ----------------------------------------------------------------------------------------------


def apply_rotation(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor | None = None, inverse: bool = False
) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, with rotate_half(x) = (-x2, x1): one product and two in-place
    multiply-adds on the halves (three kernels instead of five). ``inverse`` applies the transposed
    rotation, which is the gradient of the forward one; ``out`` may be a strided view to write into."""
    h = x.shape[-1] // 2
    sign = 1.0 if inverse else -1.0
    out = torch.mul(x, cos) if out is None else torch.mul(x, cos, out=out)
    # y1 = x1 c - x2 s, y2 = x2 c + x1 s  (inverse: x1 c + x2 s, x2 c - x1 s)
    out[..., :h].addcmul_(x[..., h:], sin[..., :h], value=sign)
    out[..., h:].addcmul_(x[..., :h], sin[..., h:], value=-sign)
    return out


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on x (..., T, Dh) with tables (T, Dh); the backward is the inverse rotation."""
    return _Rotate.apply(x, cos, sin) if _differentiated(x) else apply_rotation(x, cos, sin)


class _Rotate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return apply_rotation(x, cos, sin)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return apply_rotation(grad, cos, sin, inverse=True), None, None


# --- Projections into heads ----------------------------------------------------------------------------


def head_views(stacked: torch.Tensor, parts: int, n_heads: int) -> list[torch.Tensor]:
    """The ``parts`` equal slices of the last dimension of ``stacked`` (B, T, parts * d) as (B, H, T, Dh)
    views, e.g. queries, keys and values from one matrix product."""
    b, t, width = stacked.shape
    d = width // parts
    return [stacked[..., i * d : (i + 1) * d].view(b, t, n_heads, d // n_heads).transpose(1, 2) for i in range(parts)]


def project_heads(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    n_heads: int,
    rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    unpack: Any = None,
) -> list[torch.Tensor]:
    """``[split(x @ w.T) for w in weights]`` as (B, H, T, Dh), from one matrix product with the weights
    stacked; RoPE (cos, sin) rotates the first two parts (queries and keys) when given. ``unpack`` maps the
    product of packed tokens (N, ...) back to (B, T, ...) (``layers.Packing.unpack``)."""
    stacked = F.linear(x, torch.cat(list(weights)))
    if unpack is not None:
        stacked = unpack(stacked)
    if _differentiated(stacked):
        return list(_SplitHeadsFn.apply(stacked, len(weights), n_heads, *(rope or (None, None))))
    views = head_views(stacked, len(weights), n_heads)
    if rope is not None:
        views[0], views[1] = apply_rotation(views[0], *rope), apply_rotation(views[1], *rope)
    return views


class _SplitHeadsFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, stacked: torch.Tensor, parts: int, n_heads: int, cos: torch.Tensor | None, sin: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        ctx.parts, ctx.n_heads = parts, n_heads
        ctx.save_for_backward(cos, sin)
        views = head_views(stacked, parts, n_heads)
        if cos is not None:
            views[0], views[1] = apply_rotation(views[0], cos, sin), apply_rotation(views[1], cos, sin)
        return tuple(views)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        cos, sin = ctx.saved_tensors
        like = next(g for g in grads if g is not None)
        b, _, t, _ = like.shape
        out = like.new_empty(b, t, ctx.parts * ctx.n_heads * like.shape[-1])
        for i, (grad, part) in enumerate(zip(grads, head_views(out, ctx.parts, ctx.n_heads), strict=True)):
            if grad is None:
                part.zero_()
            elif cos is not None and i < 2:
                apply_rotation(grad, cos, sin, out=part, inverse=True)
            else:
                part.copy_(grad)
        return out, None, None, None, None
