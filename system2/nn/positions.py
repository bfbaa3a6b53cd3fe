"""Rotary position embeddings (RoPE, base 1e4), applied to queries and keys with a position offset so
that KV-cached decoding sees the same rotations as a full forward pass."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables; ``rotate(x, offset)`` rotates x of shape (B, H, T, Dh)."""

    def __init__(self, head_dim: int, max_len: int = 4096, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.max_len = 0
        self._build(max_len)

    def _build(self, max_len: int) -> None:
        t = torch.arange(max_len, dtype=torch.float32, device=self.inv_freq.device)
        freqs = torch.outer(t, self.inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)
        self.max_len = max_len

    def tables(self, t: int, offset: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions offset .. offset + t - 1, shape (t, Dh)."""
        if offset + t > self.max_len:
            self._build(max(2 * self.max_len, offset + t))
        return self.cos[offset : offset + t].to(dtype), self.sin[offset : offset + t].to(dtype)

    def rotate(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        cos, sin = self.tables(x.shape[-2], offset, x.dtype)
        if torch.is_grad_enabled() and x.requires_grad:
            return _Rotate.apply(x, cos, sin)
        return apply_rotation(x, cos, sin)


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


class _Rotate(torch.autograd.Function):
    """RoPE with a hand-written backward: the gradient is the inverse rotation, so autograd keeps only the
    cos/sin tables instead of every intermediate of the forward (less memory traffic in training)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return apply_rotation(x, cos, sin)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return apply_rotation(grad, cos, sin, inverse=True), None, None
