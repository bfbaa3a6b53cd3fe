"""The Searchformer/Dualformer encoder-decoder, Llama-style (official code: facebookresearch/searchformer;
docs/planning.md).

Encoder: embedding, N blocks of [RMSNorm -> self-attention with RoPE -> RMSNorm -> SwiGLU], then RMSNorm
and Linear(d, d). Decoder: embedding, N blocks of [RMSNorm -> causal self-attention with RoPE -> RMSNorm
-> cross-attention (no RoPE; keys/values are the encoder output) -> RMSNorm -> SwiGLU], then RMSNorm and
Linear(d, vocab). Separate embeddings, no weight tying, no biases, no dropout. Unlike the official code,
the encoder masks padded prompt positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from system2.nn.layers import Attention, KVCache, Packing, RMSNorm, SwiGLU, swiglu_hidden
from system2.nn.positions import RotaryEmbedding

# The official sizes (s, m, l, xl; facebookresearch/searchformer, docs/planning.md) and CPU presets.
PRESETS: dict[str, dict[str, int]] = {
    "s": {"d_model": 192, "enc_layers": 6, "dec_layers": 6, "n_heads": 3},
    "m": {"d_model": 384, "enc_layers": 8, "dec_layers": 8, "n_heads": 4},
    "l": {"d_model": 768, "enc_layers": 9, "dec_layers": 9, "n_heads": 4},
    "xl": {"d_model": 1152, "enc_layers": 16, "dec_layers": 16, "n_heads": 12},
    "cpu": {"d_model": 128, "enc_layers": 3, "dec_layers": 3, "n_heads": 4},
    "tiny": {"d_model": 64, "enc_layers": 2, "dec_layers": 2, "n_heads": 2},
}
OFFICIAL_ROPE_POSITIONS = 65536  # the official model stores frozen cos/sin tables this long


@dataclass
class EncDecConfig:
    vocab_size: int
    d_model: int = 128
    enc_layers: int = 3
    dec_layers: int = 3
    n_heads: int = 4
    ffn_hidden: int = 0  # 0: the official 8d/3 rounded up to 256
    max_len: int = 4096  # initial RoPE table length (grows on demand)
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be >= 3 (bos, eos and a token), got {self.vocab_size}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"RoPE needs an even head dimension; d_model/n_heads = {self.d_model // self.n_heads}")
        if self.enc_layers < 1 or self.dec_layers < 1:
            raise ValueError("enc_layers and dec_layers must be >= 1")

    @classmethod
    def preset(cls, name: str, vocab_size: int, **overrides: int) -> EncDecConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}: choose one of {', '.join(PRESETS)}")
        return cls(vocab_size=vocab_size, **{**PRESETS[name], **overrides})

    @property
    def hidden(self) -> int:
        return self.ffn_hidden or swiglu_hidden(self.d_model)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class EncoderLayer(nn.Module):
    def __init__(self, cfg: EncDecConfig, rope: RotaryEmbedding) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg.d_model, cfg.n_heads, rope)
        self.norm2 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ffn = SwiGLU(cfg.d_model, cfg.hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, packing: Packing | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask=mask, packing=packing)
        return x + self.ffn(self.norm2(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: EncDecConfig, rope: RotaryEmbedding) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, rope)
        self.norm2 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.cross_attn = Attention(cfg.d_model, cfg.n_heads, None)
        self.norm3 = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ffn = SwiGLU(cfg.d_model, cfg.hidden)

    def forward(
        self,
        x: torch.Tensor,
        cross_kv: tuple[torch.Tensor, torch.Tensor],
        mem_mask: torch.Tensor | None,
        cache: KVCache | None = None,
        packing: Packing | None = None,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), causal=True, cache=cache, packing=packing)
        x = x + self.cross_attn(self.norm2(x), mask=mem_mask, kv=cross_kv, packing=packing)
        return x + self.ffn(self.norm3(x))


@dataclass
class EncoderDecoderState:
    """What KV-cached decoding carries between steps."""

    caches: list[KVCache]
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]]
    mem_mask: torch.Tensor | None

    def select(self, index: torch.Tensor) -> None:
        for c in self.caches:
            c.select(index)
        self.cross_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cross_kv]
        if self.mem_mask is not None:
            self.mem_mask = self.mem_mask.index_select(0, index)


class EncoderDecoder(nn.Module):
    """Prompt encoder and trace/plan decoder. Token id 0 (``bos``) doubles as padding."""

    model_type = "encdec"

    def __init__(self, cfg: EncDecConfig) -> None:
        super().__init__()
        self.config = cfg
        rope = RotaryEmbedding(cfg.head_dim, cfg.max_len, cfg.rope_base)
        self.rope = rope
        self.enc_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.enc_layers = nn.ModuleList(EncoderLayer(cfg, rope) for _ in range(cfg.enc_layers))
        self.enc_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.enc_out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dec_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.dec_layers = nn.ModuleList(DecoderLayer(cfg, rope) for _ in range(cfg.dec_layers))
        self.dec_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        # PyTorch's default initialisation (Linear: Kaiming-uniform, Embedding: N(0, 1)). A GPT-style
        # N(0, 0.02) init leaves the attention of these narrow models near-uniform for hundreds of steps:
        # on a copy-after-marker task it needed ~3x more steps than the default (measured).
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def num_parameters(self, official: bool = False) -> int:
        """Trainable parameters; ``official=True`` adds the two frozen 65,536-position RoPE tables the
        official model stores as parameters (how the papers' "15M/46M/175M" labels count)."""
        n = sum(p.numel() for p in self.parameters() if p.requires_grad)
        if official:
            n += 2 * OFFICIAL_ROPE_POSITIONS * self.config.head_dim
        return n

    @staticmethod
    def _key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
        return None if mask is None else mask[:, None, None, :]

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None, packed: bool = False) -> torch.Tensor:
        """``src`` (B, S) token ids; ``src_mask`` (B, S) True on real tokens. ``packed``: run the token-wise
        layers on the real tokens only (same result at the real positions; zeros at the padding)."""
        mask = self._key_mask(src_mask)
        packing = Packing(src_mask) if packed and src_mask is not None else None
        x = self.enc_embed(packing.pack(src) if packing is not None else src)
        for layer in self.enc_layers:
            x = layer(x, mask, packing)
        x = self.enc_out(self.enc_norm(x))
        return packing.unpack(x) if packing is not None else x

    def cross_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [layer.cross_attn.project_kv(memory) for layer in self.dec_layers]

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor | None = None,
        src_mask: torch.Tensor | None = None,
        state: EncoderDecoderState | None = None,
    ) -> torch.Tensor:
        """Logits for ``tgt`` (B, T). Without ``state`` a full causal pass over ``memory``; with it only
        the new positions, reusing (and extending) the cache."""
        x = self.dec_embed(tgt)
        if state is None:
            assert memory is not None
            cross, mem_mask, caches = self.cross_kv(memory), self._key_mask(src_mask), None
        else:
            cross, mem_mask, caches = state.cross_kv, state.mem_mask, state.caches
        for i, layer in enumerate(self.dec_layers):
            x = layer(x, cross[i], mem_mask, None if caches is None else caches[i])
        return self.lm_head(self.dec_norm(x))

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor | None, tgt: torch.Tensor, tgt_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (B, T, V) of every decoder position. With ``tgt_mask`` (B, T), True on a prefix of each
        row (right padding), only the logits of those positions, packed as (N, V) in row-major order
        (``logits[tgt_mask]``): every token-wise layer then skips the padding, which in training on
        variable-length traces is a large share of the positions."""
        if tgt_mask is None:
            return self.decode(tgt, self.encode(src, src_mask), src_mask)
        if tgt_mask.shape != tgt.shape or bool((tgt_mask[:, 1:] & ~tgt_mask[:, :-1]).any()):
            raise ValueError("tgt_mask must have tgt's shape and be True on a prefix of each row (right padding)")
        memory = self.encode(src, src_mask, packed=True)
        packing = Packing(tgt_mask)
        x = self.dec_embed(packing.pack(tgt))
        cross, mem_mask = self.cross_kv(memory), self._key_mask(src_mask)
        for i, layer in enumerate(self.dec_layers):
            x = layer(x, cross[i], mem_mask, packing=packing)
        return self.lm_head(self.dec_norm(x))

    def start_decoding(self, memory: torch.Tensor, src_mask: torch.Tensor | None, max_len: int) -> EncoderDecoderState:
        """Empty caches for up to ``max_len`` decoder positions and the cross-attention keys/values."""
        b = memory.shape[0]
        cfg = self.config
        caches = [KVCache(b, cfg.n_heads, max_len, cfg.head_dim, memory) for _ in self.dec_layers]
        return EncoderDecoderState(caches, self.cross_kv(memory), self._key_mask(src_mask))
