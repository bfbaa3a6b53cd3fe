"""Contextual Position Encoding (CoPE, arXiv 2405.18719): positions counted by the model's own gates.

For query i and key j <= i (the paper's equations; docs/cope.md): a gate ``g_ij = sigmoid(q_i . k_j)`` from the scaled,
masked attention logits; a position ``p_ij = sum_{k=j..i} g_ik`` (a suffix sum over the keys that includes
the query token itself), clamped at ``p_max``; and a logit ``q_i . e[p_ij]`` added to the attention logits
only (values, keys and the residual stream are untouched). Positions are fractional, so only the integer
embeddings ``e[0..p_max]`` are learned and ``e[p]`` interpolates linearly between ``e[floor p]`` and
``e[ceil p]``.

The efficient form of the paper's appendix and the official code is used: ``z = q @ E`` for every integer
position (O(T p_max d)), then the floor and ceil logits are gathered and mixed. The fractional part
``p - floor p`` is the only path by which gradients reach the gates (the indices carry none).

Options of the official code: one table per layer shared by all heads (default) or one per head; gates
from the attention keys, a separate gate-key projection, or the values; the position logits added after
the 1/sqrt(d) scaling (paper appendix, default) or before it (official default); gates from scaled
(official, default) or unscaled (paper equation) logits. Which layers use CoPE and whether layers share
one table is decided by the model (``system2.nn.decoder``).

The code here is the reference. In training, ``CoPEAttention`` takes ``system2.nn.cope_fused`` instead, which
computes the same outputs and gradients but saves O(T) activations per layer instead of several T x T tensors
(docs/cope.md).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from system2.nn import fused
from system2.nn.cope_fused import CoPESettings, cope_attention
from system2.nn.layers import Attention, KVCache, Packing
from system2.nn.positions import RotaryEmbedding

GateSource = Literal["keys", "separate", "values"]
GATE_SOURCES = ("keys", "separate", "values")
TableSharing = Literal["layer", "head"]
BLOCK_BYTES = 16 * 2**20  # the T x T temporaries of one block of queries (fp32) stay under this size


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or in its own precision when that is higher (float64 stays float64): bf16 and fp16 inputs
    get float32 internals, nothing is rounded down."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def interpolate_logits(z: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``q . e[p]`` from ``z[..., n] = q . e[n]`` (..., Tq, npos) and positions (..., Tq, Tk) in [0, npos-1].

    ``e[p] = w e[ceil p] + (1 - w) e[floor p]`` with ``w = p - floor p``, computed as
    ``z[n] + w (z[n + 1] - z[n])`` with ``n = floor p``. The slope past the last position is 0, so a
    position clamped at ``npos - 1`` gets ``z[npos - 1]`` and passes no gradient back. The indices carry
    no gradient; ``w`` does, so gradients reach the gates only through the fractional part. (At an exact
    integer below the clamp the gradient is the slope to the right; the official code's is 0 there.)"""
    slope = torch.nn.functional.pad(z[..., 1:] - z[..., :-1], (0, 1))  # z[n+1] - z[n]; 0 at the clamp
    low = positions.long()  # floor: positions are >= 0
    out = positions.frac() * slope.gather(-1, low)
    return out.add_(z.gather(-1, low))


class ContextualPosition(nn.Module):
    """The learned integer position embeddings ``e[0..max_pos]`` of one layer: one table shared by all
    heads (the official layout) or one per head. Zero-initialised as in the official code, so a fresh
    model starts without position information and learns it."""

    def __init__(self, head_dim: int, max_pos: int, n_heads: int = 1, tables: TableSharing = "layer") -> None:
        super().__init__()
        if max_pos < 1:
            raise ValueError(f"CoPE max_pos must be >= 1 (positions are clamped at it), got {max_pos}")
        if tables not in ("layer", "head"):
            raise ValueError(f"CoPE tables must be 'layer' (shared by heads) or 'head', got {tables!r}")
        self.max_pos = max_pos
        self.table = nn.Parameter(torch.zeros(n_heads if tables == "head" else 1, head_dim, max_pos + 1))

    def integer_logits(self, q: torch.Tensor) -> torch.Tensor:
        """``z = q @ E``: the logit of every integer position, (B, H, Tq, d) -> (B, H, Tq, max_pos + 1)."""
        table = self.table if self.table.shape[0] > 1 else self.table[0]
        return torch.matmul(q, table.to(q.dtype))

    def forward(self, q: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Position logits (B, H, Tq, Tk) for queries q (B, H, Tq, d) at fractional ``positions``."""
        return interpolate_logits(at_least_fp32(self.integer_logits(q)), positions)


def _autocast_dtype(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """The tensors in the autocast dtype when autocast is on (the products of the plain path run in it)."""
    device = next(x for x in tensors if x is not None).device.type
    if not torch.is_autocast_enabled(device):
        return list(tensors)
    dtype = torch.get_autocast_dtype(device)
    return [None if x is None else x.to(dtype) for x in tensors]


class CoPECache(KVCache):
    """A KV cache that also keeps the separate gate keys (``gates="separate"``)."""

    def __init__(
        self, batch: int, heads: int, max_len: int, head_dim: int, like: torch.Tensor, gate_keys: bool
    ) -> None:
        super().__init__(batch, heads, max_len, head_dim, like)
        self.g = torch.zeros_like(self.k) if gate_keys else None

    def stores(self) -> tuple[str, ...]:
        return ("k", "v", "g") if self.g is not None else ("k", "v")

    def append_gate_keys(self, g: torch.Tensor) -> torch.Tensor:
        """Store gate keys for the positions the next ``append`` adds; returns all gate keys so far."""
        assert self.g is not None, "this cache was made without gate keys"
        end = self.length + g.shape[2]
        self.reserve(end)
        self.g[:, :, self.length : end] = g
        return self.g[:, :, :end]


class CoPEAttention(Attention):
    """Causal self-attention with CoPE (and optionally RoPE on queries and keys).

    The attention logits are materialised (CoPE needs the T x T positions, which stock SDPA kernels
    cannot take), one block of queries at a time. In training (and with ``memory_efficient``, under the fused
    switch of ``system2.nn.fused``) the blocks run in ``cope_fused.cope_attention``, which recomputes them in
    the backward pass instead of saving them. With RoPE, gates reuse the rotated attention logits while the
    position term uses the query before rotation, so CoPE's logits stay free of absolute positions (our
    choice; x-transformers uses the rotated query). ``own_table=False`` makes a layer that borrows the table
    passed to ``forward`` (tables shared across layers)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_pos: int,
        rope: RotaryEmbedding | None = None,
        tables: TableSharing = "layer",
        gates: GateSource = "keys",
        scale_gates: bool = True,
        scale_positions: bool = False,
        own_table: bool = True,
    ) -> None:
        super().__init__(d_model, n_heads, rope)
        if gates not in GATE_SOURCES:
            raise ValueError(f"CoPE gates must be one of {', '.join(GATE_SOURCES)}, got {gates!r}")
        self.gates = gates
        self.scale_gates = scale_gates
        self.scale_positions = scale_positions
        self.wg = nn.Linear(d_model, d_model, bias=False) if gates == "separate" else None
        self.cope = ContextualPosition(self.head_dim, max_pos, n_heads, tables) if own_table else None
        # in training, take the equal path of ``cope_fused`` whose saved activations grow linearly with T (when
        # the fused paths are on: ``system2.nn.fused``); False keeps the plain blocks below, the reference
        self.memory_efficient = True
        self.record = False  # when True, keep the last gates and positions in ``recorded`` (for plots)
        self.recorded: dict[str, torch.Tensor] = {}
        self._blocks: list[dict[str, torch.Tensor]] = []

    def new_cache(self, batch: int, max_len: int, like: torch.Tensor) -> KVCache:
        return CoPECache(batch, self.n_heads, max_len, self.head_dim, like, gate_keys=self.wg is not None)

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
        """``mask``: boolean (B|1, 1, Tq, Tk), True where attention is allowed (it must hide later keys);
        without one, ``causal=True`` builds the causal mask. With ``cache``, x holds the new positions only:
        their gates are computed against every cached key, since positions are relative to the query.
        With ``packing``, x and the output hold the real tokens only (N, d). ``cope``: the table to use
        when this layer borrows a shared one."""
        if kv is not None:
            raise ValueError("CoPE is for self-attention; cross-attention has no positions to count")
        if packing is not None:
            return packing.pack(self.forward(packing.unpack(x), mask, causal, cache, cope=cope))
        table = cope if cope is not None else self.cope
        if table is None:
            raise ValueError("this CoPE layer borrows a shared table: pass cope=")
        b, t, d = x.shape
        q_content, k, v = self.project_qkv(x)  # B x H x T x d_h; q before RoPE
        g = self._heads(self.wg(x)) if self.wg is not None else None
        offset = cache.length if cache is not None else 0
        q = q_content
        if self.rope is not None:
            q, k = self.rope.rotate(q, offset), self.rope.rotate(k, offset)
            g = None if g is None else self.rope.rotate(g, offset)
        if cache is not None:
            if g is not None:
                assert isinstance(cache, CoPECache)
                g = cache.append_gate_keys(g)
            k, v = cache.append(k, v)
        if mask is None and not causal:
            raise ValueError("CoPE counts keys up to the query: pass causal=True or a mask that hides later keys")
        # Rows (queries) are independent, so the T x T work runs on blocks of queries whose temporaries stay
        # under BLOCK_BYTES: large blocks are served by fresh mmaps (page-faulted again every step) on glibc.
        rows = max(1, BLOCK_BYTES // (4 * b * self.n_heads * k.shape[2]))
        if self._memory_efficient(t, mask, cache, q, k, v, g, table.table):
            settings = CoPESettings(
                self.gates, self.scale_gates, self.scale_positions, table.max_pos, self.head_dim, rows
            )
            q, q_content, k, v, g = _autocast_dtype(q, q_content, k, v, g)
            out = cope_attention(q, q_content, k, v, g, table.table, mask, settings)
            return self.wo(out.transpose(1, 2).reshape(b, t, d))
        # Keys in reverse order: then CoPE's suffix sum over keys j..i is a plain prefix sum.
        k, v = k.flip(2), v.flip(2)
        g = None if g is None else g.flip(2)
        tk = k.shape[2]
        allowed = mask.flip(-1) if mask is not None else None
        if allowed is None:
            allowed = torch.ones(t, tk, dtype=torch.bool, device=x.device).tril(tk - t).flip(-1)
        scale = 1.0 / math.sqrt(self.head_dim)
        q_scaled = q * scale
        parts = []
        for s in range(0, t, rows):
            block = slice(s, s + rows)
            mask_rows = allowed if allowed.shape[-2] == 1 else allowed[..., block, :]
            parts.append(self._attend(q_scaled[:, :, block], q_content[:, :, block], k, v, g, mask_rows, table, scale))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        if self.record:
            self.recorded = {key: torch.cat([r[key] for r in self._blocks], dim=2) for key in ("gates", "positions")}
        self._blocks = []
        return self.wo(out.transpose(1, 2).reshape(b, t, d))

    def _memory_efficient(
        self, t: int, mask: torch.Tensor | None, cache: KVCache | None, *tensors: torch.Tensor | None
    ) -> bool:
        """Whether to take ``cope_fused.cope_attention`` (equal outputs and gradients, saved activations linear
        in T): with ``memory_efficient`` and the fused paths on, when something needs a gradient (without one
        the plain blocks save nothing either), without a cache, with a mask of one row per query and when
        nothing is recorded."""
        if not (self.memory_efficient and fused.enabled()) or cache is not None or self.record:
            return False
        needs_grad = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors)
        return needs_grad and (mask is None or mask.shape[-2] == t)

    def _attend(
        self,
        q_scaled: torch.Tensor,
        q_content: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        g: torch.Tensor | None,
        allowed: torch.Tensor,
        table: ContextualPosition,
        scale: float,
    ) -> torch.Tensor:
        """Attention output of a block of queries against every (reversed) key."""
        logits = torch.matmul(q_scaled, k.transpose(-1, -2))  # B x H x Tq x Tk (keys reversed)
        logits.masked_fill_(~allowed, float("-inf"))
        if self.gates == "keys":
            gate_logits = logits
        else:
            gate_keys = g if self.gates == "separate" else v
            gate_logits = torch.matmul(q_scaled, gate_keys.transpose(-1, -2)).masked_fill(~allowed, float("-inf"))
        gate_logits = at_least_fp32(gate_logits)  # the prefix sums need fp32 under bf16 autocast
        if not self.scale_gates:
            gate_logits = gate_logits * math.sqrt(self.head_dim)
        gates = torch.sigmoid(gate_logits)  # masked keys: sigmoid(-inf) = 0, so they get no position
        positions = gates.cumsum(-1)  # B x H x Tq x Tk: p_ij, since the keys are reversed
        with torch.no_grad():  # clamp at p_max in place (one T x T pass fewer); the interpolation's zero
            positions.clamp_(max=table.max_pos)  # slope at p_max stops the gradient of clamped positions
        pos_logits = table(q_content, positions)
        if self.record:
            self._blocks.append({"gates": gates.detach().flip(-1), "positions": positions.detach().flip(-1)})
        # official default: (q.k + q.e) / sqrt(d); paper appendix (and --cope-nodiv): q.k / sqrt(d) + q.e
        logits = at_least_fp32(logits)
        logits = logits.add_(pos_logits, alpha=scale) if self.scale_positions else logits.add_(pos_logits)
        attn = torch.softmax(logits, dim=-1).to(v.dtype)
        return torch.matmul(attn, v)
