"""CoPE attention whose saved activations grow linearly with T (arXiv 2405.18719; docs/cope.md).

``CoPEAttention`` (``system2.nn.cope``) is the readable reference: autograd keeps its T x T gate logits, gates,
positions, gathered position logits and softmax for the backward pass, several per block of queries. Here
``cope_attention`` computes the same output block by block over query rows and saves only its inputs: queries,
keys, values, gate keys and the table, O(T d) per head, and a padding mask when the caller passes one (its own
boolean tensor, not one per head). The backward pass recomputes each block's T x T quantities from them and
back-propagates through them by hand, with the kernels autograd uses on the reference (softmax and sigmoid
backward, the reversed cumsum, scatter-add for the gathers), so the two paths agree to rounding.

A block of queries ``[start, stop)`` can only see the keys before ``stop``, so its T x T work covers those keys
only: causal attention does a little over half the work of the full square, which pays for the recomputation.
Keys are reversed inside (CoPE's suffix sum over keys j..i is then a prefix sum), as in the reference.
Precision follows the reference: matrix products in the inputs' dtype; gates, positions and logits in float32,
or float64 for float64 inputs. Autocast is off inside: the caller casts the inputs to the autocast dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

BLOCK_ROWS = 64  # query rows per block on CPU at most (of 32/64/128 the fastest at T = 512, 1024: docs/benchmarks.md)


@dataclass(frozen=True)
class CoPESettings:
    """``CoPEAttention``'s options for one call: where gates come from (``keys``, ``separate`` or ``values``),
    whether gate logits are scaled by 1/sqrt(d) (``scale_gates``) and position logits too
    (``scale_positions``), ``p_max``, the head size, and the most query rows a block may hold (``rows``)."""

    gates: str
    scale_gates: bool
    scale_positions: bool
    max_pos: int
    head_dim: int
    rows: int


def cope_attention(
    q: torch.Tensor,
    q_content: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gate_keys: torch.Tensor | None,
    table: torch.Tensor,
    mask: torch.Tensor | None,
    settings: CoPESettings,
) -> torch.Tensor:
    """Causal CoPE attention (B, H, T, d) of queries q (RoPE applied, if any), ``q_content`` (the queries the
    position term uses), keys, values and, for ``gates="separate"``, gate keys, all (B, H, T, d) in key order.
    ``table``: (1 | H, d, p_max + 1). ``mask``: boolean (B|1, 1, T, T), True where attention is allowed (later
    keys hidden), or None for the causal mask."""
    return _CoPEAttentionFn.apply(q, q_content, k, v, gate_keys, table, mask, settings)


class _Inputs(NamedTuple):
    """The inputs as the blocks take them, contiguous in (B, H, T, d): queries scaled by 1/sqrt(d) (the reference
    scales them before its products), content queries, keys, values and gate keys reversed (the values again for
    ``gates="values"``, None for ``keys``), the table as ``q_content @ table`` takes it ((d, p_max + 1) when
    the heads share it, else (H, d, p_max + 1)), and the integer position logits ``z = q_content @ table``
    (float32 or higher) with their slopes ``z[n + 1] - z[n]`` (0 at p_max)."""

    q_scaled: torch.Tensor
    q_content: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    gate_keys: torch.Tensor | None
    table: torch.Tensor
    z: torch.Tensor
    slope: torch.Tensor

    @classmethod
    def of(
        cls,
        q: torch.Tensor,
        q_content: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        gate_keys: torch.Tensor | None,
        table: torch.Tensor,
        s: CoPESettings,
    ) -> _Inputs:
        k, v, q_content = k.contiguous().flip(2), v.contiguous().flip(2), q_content.contiguous()
        if s.gates == "separate":
            assert gate_keys is not None, "gates='separate' needs gate keys"
            g = gate_keys.contiguous().flip(2)
        else:
            g = v if s.gates == "values" else None
        table = (table if table.shape[0] > 1 else table[0]).to(q_content.dtype)
        z = _promote(torch.matmul(q_content, table))
        slope = F.pad(z[..., 1:] - z[..., :-1], (0, 1))
        return cls(q.contiguous() * (1.0 / math.sqrt(s.head_dim)), q_content, k, v, g, table, z, slope)


class _Block(NamedTuple):
    """A block of query rows and the first (reversed) key any of them sees: rows ``[start, stop)`` see the keys
    before ``stop``, which are the reversed keys from ``t - stop`` on."""

    rows: slice
    keys: slice


def _blocks(t: int, rows: int, device: torch.device) -> list[_Block]:
    """Blocks of at most ``rows`` queries, and on CPU at most BLOCK_ROWS (elsewhere, where every kernel launch
    costs, as few blocks as the plain path runs; not measured)."""
    rows = min(rows, BLOCK_ROWS) if device.type == "cpu" else rows
    return [_Block(slice(i, min(i + rows, t)), slice(max(0, t - i - rows), t)) for i in range(0, t, rows)]


def _hidden(mask: torch.Tensor | None, t: int, device: torch.device) -> torch.Tensor:
    """Where attention is not allowed, against the reversed keys: (…, T, T) (bool; not saved)."""
    if mask is not None:
        return ~mask.flip(-1)
    keys = torch.arange(t, device=device)
    return keys < (t - 1 - keys)[:, None]  # reversed key j' is key t - 1 - j', later than query i if j' < t - 1 - i


def _promote(x: torch.Tensor) -> torch.Tensor:
    """float32, or the input's precision when higher (as ``system2.nn.cope.at_least_fp32``)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _bmm_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, add: bool = True) -> None:
    """``out += a @ b`` (or ``out = a @ b``), ``out`` a slice of a larger tensor. (``baddbmm_`` into such a
    slice would save a pass but runs one matrix product per batch entry on CPU.)"""
    product = torch.matmul(a, b)
    if add:
        out.add_(product)
    else:
        out.copy_(product)


def _block_logits(s: CoPESettings, x: _Inputs, block: _Block, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The reference's ``_attend`` up to the softmax for one block, without autograd: the logits (float32 or
    higher) and what the backward pass needs of their making: the gates, the floor and the fractional part of
    the positions, and the slope of the interpolation there."""
    q_scaled, hidden = x.q_scaled[:, :, block.rows], hidden[..., block.rows, block.keys]
    logits = torch.matmul(q_scaled, x.k[:, :, block.keys].transpose(-1, -2)).masked_fill_(hidden, float("-inf"))
    if x.gate_keys is None:
        gate_logits = logits
    else:
        gate_logits = torch.matmul(q_scaled, x.gate_keys[:, :, block.keys].transpose(-1, -2))
        gate_logits.masked_fill_(hidden, float("-inf"))
    gate_logits = _promote(gate_logits)
    if not s.scale_gates:
        gate_logits = gate_logits * math.sqrt(s.head_dim)
    gates = torch.sigmoid(gate_logits)
    positions = gates.cumsum(-1).clamp_(max=s.max_pos)
    low = positions.long()
    frac = positions.frac_()
    slope = x.slope[:, :, block.rows].gather(-1, low)
    pos_logits = (frac * slope).add_(x.z[:, :, block.rows].gather(-1, low))
    logits = _promote(logits)
    logits = logits.add_(pos_logits, alpha=1 / math.sqrt(s.head_dim)) if s.scale_positions else logits.add_(pos_logits)
    return logits, gates, low, frac, slope


class _CoPEAttentionFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        q_content: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        gate_keys: torch.Tensor | None,
        table: torch.Tensor,
        mask: torch.Tensor | None,
        s: CoPESettings,
    ) -> torch.Tensor:
        ctx.settings = s
        ctx.save_for_backward(q, q_content, k, v, gate_keys, table, mask)
        t = q.shape[2]
        with torch.autocast(q.device.type, enabled=False):
            x = _Inputs.of(q, q_content, k, v, gate_keys, table, s)
            hidden = _hidden(mask, t, q.device)
            out = torch.empty_like(x.v)
            for block in _blocks(t, s.rows, q.device):
                attn = torch.softmax(_block_logits(s, x, block, hidden)[0], dim=-1).to(v.dtype)
                _bmm_into(out[:, :, block.rows], attn, x.v[:, :, block.keys], add=False)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable  # the hand-written backward is not differentiated again
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        s: CoPESettings = ctx.settings
        q, q_content, k, v, gate_keys, table, mask = ctx.saved_tensors
        t, scale = q.shape[2], 1.0 / math.sqrt(s.head_dim)
        with torch.autocast(q.device.type, enabled=False):
            x = _Inputs.of(q, q_content, k, v, gate_keys, table, s)
            hidden = _hidden(mask, t, q.device)
            grad = grad.contiguous()
            dq, dk, dv = torch.empty_like(x.q_scaled), torch.zeros_like(x.k), torch.zeros_like(x.v)
            dg = {"keys": None, "separate": torch.zeros_like(x.k), "values": dv}[s.gates]
            dz, d_slope = torch.zeros_like(x.z), torch.zeros_like(x.z)
            for block in _blocks(t, s.rows, q.device):
                rows, keys = block
                q_scaled, dout = x.q_scaled[:, :, rows], grad[:, :, rows]
                logits, gates, low, frac, slope = _block_logits(s, x, block, hidden)
                attn = torch.softmax(logits, dim=-1)
                del logits
                _bmm_into(dv[:, :, keys], attn.to(v.dtype).transpose(-1, -2), dout)
                d_attn = _promote(torch.matmul(dout, x.v[:, :, keys].transpose(-1, -2)))
                d_logits = torch.ops.aten._softmax_backward_data(d_attn, attn, -1, attn.dtype)
                del attn, d_attn
                d_pos = d_logits * scale if s.scale_positions else d_logits  # logits += (scale *) pos_logits
                # pos_logits = frac * slope[low] + z[low]: frac takes the gradient to the positions (clamped ones
                # have slope 0); the gathers scatter it back onto z and the slopes
                d_positions = d_pos * slope
                dz[:, :, rows].scatter_add_(-1, low, d_pos)
                d_slope[:, :, rows].scatter_add_(-1, low, d_pos * frac)
                del d_pos, low, frac, slope
                # positions = cumsum(gates): the gradient is the reversed cumsum; gates = sigmoid(gate logits)
                d_gates = d_positions.flip(-1).cumsum(-1).flip(-1)
                del d_positions
                d_gate_logits = torch.ops.aten.sigmoid_backward(d_gates, gates)
                del d_gates, gates
                if not s.scale_gates:
                    d_gate_logits.mul_(math.sqrt(s.head_dim))
                if x.gate_keys is None:  # gates from the attention logits: both gradients meet there
                    d_logits.add_(d_gate_logits)
                d_logits = d_logits.to(q.dtype)
                _bmm_into(dk[:, :, keys], d_logits.transpose(-1, -2), q_scaled)
                _bmm_into(dq[:, :, rows], d_logits, x.k[:, :, keys], add=False)
                if x.gate_keys is not None:
                    d_gate_logits = d_gate_logits.to(q.dtype)
                    _bmm_into(dg[:, :, keys], d_gate_logits.transpose(-1, -2), q_scaled)
                    _bmm_into(dq[:, :, rows], d_gate_logits, x.gate_keys[:, :, keys])
            dq.mul_(scale)  # q_scaled = q / sqrt(d)
            dz[..., 1:] += d_slope[..., :-1]  # slope[n] = z[n + 1] - z[n] below p_max
            dz[..., :-1] -= d_slope[..., :-1]
            dz = dz.to(x.q_content.dtype)  # z = q_content @ table
            dq_content = torch.matmul(dz, x.table.transpose(-1, -2))
            d_table = torch.matmul(x.q_content.transpose(-1, -2), dz).sum(0)  # H x d x (p_max + 1)
            d_table = d_table if x.table.dim() == 3 else d_table.sum(0, keepdim=True)
            d_gate_keys = dg.flip(2) if s.gates == "separate" else None
        return dq, dq_content, dk.flip(2), dv.flip(2), d_gate_keys, d_table.to(table.dtype), None, None
