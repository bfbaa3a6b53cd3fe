"""Llama-style building blocks: RMSNorm, SwiGLU feed-forward, bias-free multi-head attention on
``scaled_dot_product_attention`` with optional RoPE and a preallocated KV cache.

Shared by the encoder-decoder (Searchformer/Dualformer) and the decoder-only models.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from system2.nn.positions import RotaryEmbedding, apply_rotation


class RMSNorm(nn.Module):
    """``nn.RMSNorm`` with the same parameter (``weight``) and numbers, trained faster on CPU: the forward
    is PyTorch's fused kernel and the backward is written by hand (PyTorch 2.13 has no fused CPU backward,
    so autograd would differentiate the decomposition op by op)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = hasattr(torch.ops.aten, "_fused_rms_norm") and x.dtype == self.weight.dtype
        if fused and torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            return _RMSNormFn.apply(x, self.weight, self.eps)
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


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


def swiglu_hidden(d_model: int, multiple_of: int = 256) -> int:
    """Hidden width of the official SwiGLU: 8d/3 rounded up to a multiple of 256 (512 for d=192)."""
    return multiple_of * ((int(8 * d_model / 3) + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, hidden, bias=False)
        self.w3 = nn.Linear(d_model, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # w1 and w3 as one matrix product (one GEMM instead of two; the parameters stay separate)
        gate_up = F.linear(x, torch.cat([self.w1.weight, self.w3.weight]))
        if torch.is_grad_enabled() and gate_up.requires_grad:
            return self.w2(_SwiGLUFn.apply(gate_up))
        gate, up = gate_up.chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)


class _SwiGLUFn(torch.autograd.Function):
    """silu(gate) * up on the halves of one tensor, with a backward that writes both halves' gradients
    into one buffer. Autograd would compute them separately and then concatenate them (the backward of
    ``chunk``), one more pass over the largest activation of the block."""

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


def head_views(fused: torch.Tensor, parts: int, n_heads: int) -> list[torch.Tensor]:
    """The ``parts`` equal slices of the last dimension of ``fused`` (B, T, parts * d) as (B, H, T, Dh)
    views, e.g. queries, keys and values from one matrix product."""
    b, t, width = fused.shape
    d = width // parts
    return [fused[..., i * d : (i + 1) * d].view(b, t, n_heads, d // n_heads).transpose(1, 2) for i in range(parts)]


def split_heads(
    fused: torch.Tensor, parts: int, n_heads: int, rope: tuple[torch.Tensor, torch.Tensor] | None = None
) -> list[torch.Tensor]:
    """``head_views`` with RoPE (cos, sin) applied to the first two parts (queries and keys) when given.

    In training the backward writes every part's gradient straight into one buffer shaped like ``fused``
    (autograd would concatenate separately computed gradients, one more pass over the activations)."""
    if torch.is_grad_enabled() and fused.requires_grad:
        return list(_SplitHeadsFn.apply(fused, parts, n_heads, *(rope or (None, None))))
    views = head_views(fused, parts, n_heads)
    if rope is not None:
        views[0], views[1] = apply_rotation(views[0], *rope), apply_rotation(views[1], *rope)
    return views


class _SplitHeadsFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, fused: torch.Tensor, parts: int, n_heads: int, cos: torch.Tensor | None, sin: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        ctx.parts, ctx.n_heads = parts, n_heads
        ctx.save_for_backward(cos, sin)
        views = head_views(fused, parts, n_heads)
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
    """Keys and values of one attention layer, preallocated for ``max_len`` positions."""

    def __init__(self, batch: int, heads: int, max_len: int, head_dim: int, like: torch.Tensor) -> None:
        self.k = like.new_zeros(batch, heads, max_len, head_dim)
        self.v = like.new_zeros(batch, heads, max_len, head_dim)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = k.shape[2]
        end = self.length + t
        if end > self.k.shape[2]:
            raise ValueError(f"KV cache holds {self.k.shape[2]} positions; asked for {end}")
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def select(self, index: torch.Tensor) -> None:
        """Keep the batch rows in ``index`` (used when finished sequences leave the batch)."""
        self.k = self.k.index_select(0, index)
        self.v = self.v.index_select(0, index)


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
        k, v = split_heads(F.linear(context, torch.cat([self.wk.weight, self.wv.weight])), 2, self.n_heads)
        return k, v

    def project_qkv(
        self, x: torch.Tensor, rope_offset: int | None = None, packing: Packing | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values (B, H, T, Dh) from one matrix product with the three weights stacked;
        with ``rope_offset``, queries and keys are rotated for positions from that offset on. With
        ``packing``, x holds the real tokens only (N, d)."""
        qkv = F.linear(x, torch.cat([self.wq.weight, self.wk.weight, self.wv.weight]))
        if packing is not None:
            qkv = packing.unpack(qkv)
        rope = None
        if rope_offset is not None and self.rope is not None:
            rope = self.rope.tables(qkv.shape[1], rope_offset, x.dtype)
        q, k, v = split_heads(qkv, 3, self.n_heads, rope)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        packing: Packing | None = None,
    ) -> torch.Tensor:
        """``mask``: boolean (B, 1, Tq|1, Tk), True where attention is allowed. ``kv``: precomputed
        cross-attention keys/values. With ``cache``, x holds the new positions only. With ``packing``,
        x holds the real tokens only (N, d) and so does the output."""
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
