"""Rotary position embeddings (RoPE, base 1e4), applied to queries and keys with a position offset so
that KV-cached decoding sees the same rotations as a full forward pass."""

from __future__ import annotations

import torch
from torch import nn

from system2.nn import fused


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables; ``rotate(x, offset)`` rotates x of shape (B, H, T, Dh) as
    ``x * cos + rotate_half(x) * sin``."""

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
        """x (..., T, Dh) rotated for positions offset .. offset + T - 1."""
        cos, sin = self.tables(x.shape[-2], offset, x.dtype)
        if fused.enabled():
            return fused.rotate(x, cos, sin)
        return x * cos + rotate_half(x) * sin


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)
