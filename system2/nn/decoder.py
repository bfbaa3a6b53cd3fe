"""A decoder-only causal language model, Llama-style, with a pluggable position encoding (the CoPE
studies, docs/cope.md).

Embedding (plus learned absolute positions for ``abs``), N blocks of [RMSNorm -> causal self-attention ->
RMSNorm -> SwiGLU], then RMSNorm and Linear(d, vocab). No biases, no dropout, no weight tying and
PyTorch's default initialisation, as in the encoder-decoder (``encdec.py``).

``DecoderConfig.position``: ``none``; ``abs`` (a learned table of ``max_len`` positions added to the
embeddings); ``rope``; ``cope``; ``cope+rope`` (both on the same layer, or RoPE only on layers without
CoPE when ``cope_every > 1``). The ``cope_*`` fields are the official code's options (docs/cope.md).

Batches are right-padded for training (the causal mask hides the padding). For batched generation,
prompts are left-padded and ``mask`` marks the real tokens: padded keys are hidden (and get no CoPE
position) and absolute positions count real tokens only, so a padded row computes what it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from system2.nn.cope import GATE_SOURCES, ContextualPosition, CoPEAttention
from system2.nn.layers import Attention, KVCache, RMSNorm, SwiGLU, swiglu_hidden
from system2.nn.positions import RotaryEmbedding

POSITIONS = ("none", "abs", "rope", "cope", "cope+rope")


@dataclass
class DecoderConfig:
    """``vocab_size`` and ``max_len`` may be 0 in a recipe, where the task fills them in."""

    vocab_size: int = 0  # tokens in the vocabulary (0: the task's)
    d_model: int = 128  # model width
    n_layers: int = 4  # decoder layers
    n_heads: int = 4  # attention heads
    ffn_hidden: int = 0  # feed-forward width (0: 8d/3 rounded up to 256, as in encdec.py)
    position: str = "cope"  # position encoding: none | abs | rope | cope | cope+rope
    max_len: int = 1024  # abs: learned positions (the longest sequence); rope: initial table length
    rope_base: float = 10000.0  # RoPE frequency base
    norm_eps: float = 1e-5  # RMSNorm epsilon
    cope_max_pos: int = 64  # p_max, where positions are clamped (the official --cope-npos is p_max + 1)
    cope_tables: str = "layer"  # layer: one table per layer shared by its heads (official); head: one per head
    cope_gates: str = "keys"  # where CoPE gates come from: keys; separate (--cope-sep-key); values (--cope-val-gates)
    cope_scale_gates: bool = True  # sigmoid(q.k / sqrt(d)) as the official code; False: sigmoid(q.k)
    cope_scale_positions: bool = False  # True: (q.k + q.e) / sqrt(d), the official default; False: paper
    cope_every: int = 1  # CoPE on layers k-1, 2k-1, ... (official --cope-layers k); needs cope+rope if > 1
    cope_shared: bool = False  # one table for every CoPE layer (official --cope-shared)

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"position={self.position!r} is not one of {', '.join(POSITIONS)}")
        if self.vocab_size < 0 or self.vocab_size in (1, 2):
            raise ValueError(f"vocab_size must be >= 3 (or 0 for 'the task decides'), got {self.vocab_size}")
        if self.d_model < 1 or self.n_layers < 1 or self.n_heads < 1:
            raise ValueError("d_model, n_layers and n_heads must be >= 1")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if "rope" in self.position and self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension; d_model/n_heads = {self.head_dim}")
        if self.max_len < 0:
            raise ValueError(f"max_len must be >= 1 (or 0 for 'the task decides'), got {self.max_len}")
        if self.cope_max_pos < 1:
            raise ValueError(f"cope_max_pos must be >= 1, got {self.cope_max_pos}")
        if self.cope_tables not in ("layer", "head"):
            raise ValueError(f"cope_tables must be 'layer' or 'head', got {self.cope_tables!r}")
        if self.cope_gates not in GATE_SOURCES:
            raise ValueError(f"cope_gates must be one of {', '.join(GATE_SOURCES)}, got {self.cope_gates!r}")
        if not 1 <= self.cope_every <= self.n_layers:
            raise ValueError(f"cope_every must be in [1, n_layers={self.n_layers}], got {self.cope_every}")
        if self.cope_every > 1 and self.position != "cope+rope":
            raise ValueError(
                f"cope_every={self.cope_every} leaves layers without CoPE; give them RoPE with position=cope+rope "
                "(the official code likewise requires cope+rel)"
            )

    @property
    def hidden(self) -> int:
        return self.ffn_hidden or swiglu_hidden(self.d_model)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def uses_cope(self, layer: int) -> bool:
        """CoPE on layers k-1, 2k-1, ... for ``cope_every = k``, as the official code."""
        return self.position.startswith("cope") and (layer + 1) % self.cope_every == 0


class DecoderBlock(nn.Module):
    def __init__(self, cfg: DecoderConfig, rope: RotaryEmbedding | None, cope: bool, own_table: bool) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn: Attention
        if cope:
            self.attn = CoPEAttention(
                cfg.d_model,
                cfg.n_heads,
                cfg.cope_max_pos,
                rope,
                tables=cfg.cope_tables,  # type: ignore[arg-type]
                gates=cfg.cope_gates,  # type: ignore[arg-type]
                scale_gates=cfg.cope_scale_gates,
                scale_positions=cfg.cope_scale_positions,
                own_table=own_table,
            )
        else:
            self.attn = Attention(cfg.d_model, cfg.n_heads, rope)
        self.norm2 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ffn = SwiGLU(cfg.d_model, cfg.hidden)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None,
        shared_table: ContextualPosition | None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask=mask, causal=True, cache=cache, cope=shared_table)
        return x + self.ffn(self.norm2(x))


@dataclass
class DecoderLMState:
    """What KV-cached decoding carries between calls: the caches and, once padding was seen, which of
    the cached positions are real tokens."""

    caches: list[KVCache]
    key_mask: torch.Tensor | None = None  # (B, length), True on real tokens; None: all real so far
    length: int = 0

    def extend(self, mask: torch.Tensor | None, batch: int, t: int, device: torch.device) -> torch.Tensor | None:
        """Record ``t`` new positions (``mask`` None: all real); returns the key mask so far, or None."""
        if mask is not None or self.key_mask is not None:
            if self.key_mask is None:
                self.key_mask = torch.ones(batch, self.length, dtype=torch.bool, device=device)
            new = mask if mask is not None else torch.ones(batch, t, dtype=torch.bool, device=device)
            self.key_mask = torch.cat([self.key_mask, new], 1)
        self.length += t
        return self.key_mask

    def select(self, index: torch.Tensor) -> None:
        """Keep the batch rows in ``index`` (finished sequences leave the batch)."""
        for c in self.caches:
            c.select(index)
        if self.key_mask is not None:
            self.key_mask = self.key_mask.index_select(0, index)


def padded_causal_mask(key_mask: torch.Tensor, t: int) -> torch.Tensor:
    """(B, 1, t, Tk) boolean mask for the last ``t`` of Tk positions: causal, padded keys hidden. A padded
    query still sees itself, so that its softmax is defined (its output is never used)."""
    tk = key_mask.shape[1]
    q_pos = torch.arange(tk - t, tk, device=key_mask.device)[:, None]
    k_pos = torch.arange(tk, device=key_mask.device)[None, :]
    allowed = ((k_pos <= q_pos) & key_mask[:, None, :]) | (k_pos == q_pos)
    return allowed[:, None]


class DecoderLM(nn.Module):
    """Causal LM over a small vocabulary. ``forward(ids, mask=None, state=None)`` returns logits."""

    model_type = "decoder"

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        if cfg.vocab_size < 3 or cfg.max_len < 1:
            raise ValueError(
                f"DecoderConfig.vocab_size={cfg.vocab_size} and max_len={cfg.max_len}: set vocab_size >= 3 and "
                "max_len >= 1 (0 is only for recipes, which fill them in from the task)"
            )
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.abs_pos = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.position == "abs" else None
        rope = RotaryEmbedding(cfg.head_dim, cfg.max_len, cfg.rope_base) if "rope" in cfg.position else None
        self.rope = rope
        cope_layers = [i for i in range(cfg.n_layers) if cfg.uses_cope(i)]
        self.table_owner = cope_layers[0] if cfg.cope_shared and cope_layers else None
        self.layers = nn.ModuleList(
            DecoderBlock(cfg, rope, i in cope_layers, own_table=self.table_owner in (None, i))
            for i in range(cfg.n_layers)
        )
        self.norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def cope_layers(self) -> list[tuple[int, CoPEAttention]]:
        """(layer index, attention) of the CoPE layers; set ``record = True`` on one to keep its gates and
        positions of the next forward pass."""
        return [(i, layer.attn) for i, layer in enumerate(self.layers) if isinstance(layer.attn, CoPEAttention)]

    def _absolute_positions(self, b: int, t: int, offset: int, key_mask: torch.Tensor | None) -> torch.Tensor:
        if key_mask is None:
            pos = torch.arange(offset, offset + t, device=self.embed.weight.device).expand(b, t)
        else:  # count real tokens only, so left padding does not shift positions
            pos = (key_mask.long().cumsum(1) - 1).clamp(min=0)[:, -t:]
        if int(pos.max()) >= self.config.max_len:
            raise ValueError(
                f"position {int(pos.max())} is past the {self.config.max_len} learned absolute positions: "
                "raise DecoderConfig.max_len to the longest sequence"
            )
        return pos

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor | None = None, state: DecoderLMState | None = None
    ) -> torch.Tensor:
        """Logits (B, T, V) for ``ids`` (B, T). ``mask`` (B, T): True on real tokens (left padding). With
        ``state``, ``ids`` are the new positions only, appended to the cache."""
        b, t = ids.shape
        offset = 0 if state is None else state.length
        key_mask = mask if state is None else state.extend(mask, b, t, ids.device)
        if key_mask is not None and key_mask.all():
            key_mask = None  # no padding: the fast causal path
        x = self.embed(ids)
        if self.abs_pos is not None:
            x = x + self.abs_pos(self._absolute_positions(b, t, offset, key_mask))
        attn_mask = None if key_mask is None else padded_causal_mask(key_mask, t)
        shared = None if self.table_owner is None else self.layers[self.table_owner].attn.cope
        for i, layer in enumerate(self.layers):
            x = layer(x, attn_mask, None if state is None else state.caches[i], shared)
        return self.lm_head(self.norm(x))

    def start_decoding(self, batch: int, max_len: int) -> DecoderLMState:
        """Empty caches for up to ``max_len`` positions per row."""
        like = self.embed.weight
        return DecoderLMState([layer.attn.new_cache(batch, max_len, like) for layer in self.layers])
