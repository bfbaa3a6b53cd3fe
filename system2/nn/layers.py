"""Llama-style building blocks: RMSNorm, SwiGLU feed-forward, bias-free multi-head attention on
``scaled_dot_product_attention`` with optional RoPE and a KV cache that grows as sequences do.

Shared by the encoder-decoder (Searchformer/Dualformer) and the decoder-only models. Each module is the
plain formula; with ``fused.enabled()`` (the default) it calls the equal fast path of ``nn/fused.py``.
Packing (running the token-wise layers on real tokens only) is part of the plain models: it is the
measured training win (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from system2.nn import fused
from system2.nn.positions import RotaryEmbedding

if TYPE_CHECKING:
    from system2.nn.cope import ContextualPosition


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension (the parameter and numbers of
    ``nn.RMSNorm``)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused.enabled():
            return fused.rms_norm(x, self.weight, self.eps)
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def swiglu_hidden(d_model: int, multiple_of: int = 256) -> int:
    """Hidden width of the official SwiGLU: 8d/3 rounded up to a multiple of 256 (512 for d=192)."""
    return multiple_of * ((int(8 * d_model / 3) + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    """The gated feed-forward ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, hidden, bias=False)
        self.w3 = nn.Linear(d_model, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused.enabled():
            return fused.swiglu(x, self.w1.weight, self.w3.weight, self.w2.weight)
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Packing:
    """The real positions of a right-padded (B, T) batch, so that token-wise layers (projections,
    feed-forward, norms, the output head) run on the N real tokens only and attention, which needs the
    (B, T) layout, unpacks around itself. Padding then costs nothing outside attention."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.shape = mask.shape
        self.index = mask.reshape(-1).nonzero().squeeze(1)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...), real positions in row-major order."""
        return x.reshape(-1, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (B, T, ...), zeros at the padding."""
        out = x.new_zeros(self.shape.numel(), *x.shape[1:]).index_copy(0, self.index, x)
        return out.view(*self.shape, *x.shape[1:])


class KVCache:
    """Keys and values of one attention layer, for up to ``max_len`` positions.

    Storage starts at ``min(max_len, INITIAL)`` positions and doubles when full, so memory follows the longest
    sequence decoded so far rather than the budget (64 Sokoban samples under an 11,000-token budget would
    otherwise hold every position from the first step)."""

    INITIAL = 256

    def __init__(self, batch: int, heads: int, max_len: int, head_dim: int, like: torch.Tensor) -> None:
        self.max_len = max_len
        self.k = like.new_zeros(batch, heads, min(max_len, self.INITIAL), head_dim)
        self.v = torch.zeros_like(self.k)
        self.length = 0

    def stores(self) -> tuple[str, ...]:
        """The per-position tensors (B, H, capacity, Dh) that grow together."""
        return ("k", "v")

    def reserve(self, end: int) -> None:
        """Room for positions up to ``end`` (ValueError past ``max_len``)."""
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; asked for {end}")
        capacity = self.k.shape[2]
        if end > capacity:
            capacity = min(self.max_len, max(end, 2 * capacity))
            for name in self.stores():
                old = getattr(self, name)
                grown = old.new_zeros(*old.shape[:2], capacity, old.shape[3])
                grown[:, :, : self.length] = old[:, :, : self.length]
                setattr(self, name, grown)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        self.reserve(end)
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def select(self, index: torch.Tensor) -> None:
        """Keep the batch rows in ``index`` (used when finished sequences leave the batch)."""
        for name in self.stores():
            setattr(self, name, getattr(self, name).index_select(0, index))


class Attention(nn.Module):
    """Multi-head attention without biases. Self-attention may use RoPE and a causal mask; for
    cross-attention pass ``context`` (keys and values come from it, no RoPE)."""

    def __init__(self, d_model: int, n_heads: int, rope: RotaryEmbedding | None = None) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)
        self.rope = rope

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def new_cache(self, batch: int, max_len: int, like: torch.Tensor) -> KVCache:
        """An empty cache for this layer's keys and values (subclasses may keep more)."""
        return KVCache(batch, self.n_heads, max_len, self.head_dim, like)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys and values (B, H, Tk, Dh) of ``context``."""
        if fused.enabled():
            k, v = fused.project_heads(context, [self.wk.weight, self.wv.weight], self.n_heads)
            return k, v
        return self._heads(self.wk(context)), self._heads(self.wv(context))

    def project_qkv(
        self, x: torch.Tensor, rope_offset: int | None = None, packing: Packing | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values (B, H, T, Dh); with ``rope_offset``, queries and keys are rotated for
        positions from that offset on. With ``packing``, x holds the real tokens only (N, d)."""
        rope = self.rope if rope_offset is not None else None
        offset = rope_offset or 0
        unpack = packing.unpack if packing is not None else None
        if fused.enabled():
            weights = [self.wq.weight, self.wk.weight, self.wv.weight]
            t = x.shape[1] if packing is None else packing.shape[1]
            tables = rope.tables(t, offset, x.dtype) if rope is not None else None
            q, k, v = fused.project_heads(x, weights, self.n_heads, tables, unpack)
            return q, k, v
        q, k, v = (self._heads(unpack(w(x)) if unpack else w(x)) for w in (self.wq, self.wk, self.wv))
        if rope is not None:
            q, k = rope.rotate(q, offset), rope.rotate(k, offset)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        packing: Packing | None = None,
        cope: ContextualPosition | None = None,
    ) -> torch.Tensor:
        """``mask``: boolean (B, 1, Tq|1, Tk), True where attention is allowed. ``kv``: precomputed
        cross-attention keys/values. With ``cache``, x holds the new positions only. With ``packing``,
        x holds the real tokens only (N, d) and so does the output. ``cope``: a CoPE table shared across
        layers, used by ``CoPEAttention`` only (every attention layer takes the same arguments)."""
        if kv is not None:
            q = self.wq(x)
            q = self._heads(packing.unpack(q) if packing is not None else q)
            k, v = kv
        else:
            q, k, v = self.project_qkv(x, rope_offset=cache.length if cache is not None else 0, packing=packing)
            if cache is not None:
                k, v = cache.append(k, v)
        b, _, t, _ = q.shape
        if causal and mask is None and (cache is None or t > 1):
            if cache is not None and k.shape[2] != t:
                # a prefix of new positions on top of a cache: queries see the cache and the causal part
                full = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - t)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=full)
            else:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
        return self.wo(packing.pack(out) if packing is not None else out)
