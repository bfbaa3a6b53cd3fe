"""The encoder-decoder: parameter counts, padding, RoPE offsets, cached decoding, save/load."""

import pytest
import torch

from system2.checkpoint import load_model, save_model
from system2.nn.encdec import EncDecConfig, EncoderDecoder
from system2.nn.generation import DecodingConfig, generate
from system2.nn.layers import KVCache
from system2.nn.positions import RotaryEmbedding


@pytest.mark.parametrize(
    ("preset", "trainable", "official"),
    [("s", 6_304_128, 14_692_736), ("m", 33_329_664, 45_912_576)],
)
def test_parameter_counts_match_the_official_model(preset, trainable, official):
    """docs/planning.md: 10x10 vocabulary (118) -> s 6.3M trainable / 14.7M with the frozen RoPE tables."""
    model = EncoderDecoder(EncDecConfig.preset(preset, 118))
    assert model.num_parameters() == trainable
    assert model.num_parameters(official=True) == official


def tiny(vocab: int = 40) -> EncoderDecoder:
    torch.manual_seed(0)
    return EncoderDecoder(EncDecConfig.preset("tiny", vocab)).eval()


def test_encoder_ignores_padding():
    model = tiny()
    src = torch.randint(2, 40, (1, 9))
    padded = torch.cat([src, torch.zeros(1, 5, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 9, dtype=torch.bool), torch.zeros(1, 5, dtype=torch.bool)], 1)
    tgt = torch.randint(2, 40, (1, 6))
    with torch.no_grad():
        a = model(src, torch.ones_like(src, dtype=torch.bool), tgt)
        b = model(padded, mask, tgt)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_rope_is_relative():
    rope = RotaryEmbedding(8, max_len=4)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    s1 = (rope.rotate(q, 3) * rope.rotate(k, 1)).sum()
    s2 = (rope.rotate(q, 12) * rope.rotate(k, 10)).sum()  # also grows the table past max_len
    torch.testing.assert_close(s1, s2, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("initial", [256, 1])
def test_cached_decoding_equals_full_forward(initial, monkeypatch):
    """Also when the caches start at one position and grow (doubling) while decoding."""
    monkeypatch.setattr(KVCache, "INITIAL", initial)
    model = tiny()
    src = torch.randint(2, 40, (3, 7))
    mask = torch.ones_like(src, dtype=torch.bool)
    mask[1, 4:] = False
    tgt = torch.randint(2, 40, (3, 10))
    with torch.no_grad():
        full = model(src, mask, tgt)
        memory = model.encode(src, mask)
        state = model.start_decoding(memory, mask, 16)
        first = model.decode(tgt[:, :4], state=state)  # a prefix at once, then one token at a time
        steps = [model.decode(tgt[:, i : i + 1], state=state) for i in range(4, 10)]
    torch.testing.assert_close(torch.cat([first, *steps], 1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_grows_by_doubling_up_to_its_budget():
    cache = KVCache(2, 3, 40, 4, torch.zeros(1))
    assert cache.k.shape == (2, 3, 40, 4)  # a budget under the initial size is allocated at once
    cache = KVCache(2, 3, 600, 4, torch.zeros(1))
    keys = torch.randn(2, 3, 600, 4)
    seen = []
    for start, end in ((0, 100), (100, 300), (300, 301), (301, 600)):
        k, v = cache.append(keys[:, :, start:end], -keys[:, :, start:end])
        seen.append(cache.k.shape[2])
        torch.testing.assert_close(k, keys[:, :, :end])
        torch.testing.assert_close(v, -keys[:, :, :end])
    assert seen == [256, 512, 512, 600]
    with pytest.raises(ValueError, match="holds 600 positions; asked for 601"):
        cache.append(keys[:, :, :1], keys[:, :, :1])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generate_cached_equals_uncached(temperature):
    model = tiny()
    src = torch.randint(2, 40, (4, 6))
    mask = torch.ones_like(src, dtype=torch.bool)
    mask[0, 3:] = False
    cfg = DecodingConfig(max_new_tokens=30, temperature=temperature, top_k=10)
    outs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(3)
        outs.append(generate(model, src, mask, 0, 1, cfg, prefix=[7], num_samples=3, generator=g, use_cache=use_cache))
    assert outs[0] == outs[1]
    assert len(outs[0]) == 12 and all(o[:2] == [0, 7] for o in outs[0])
    assert all(len(o) <= 32 and (o[-1] == 1 or len(o) == 32) for o in outs[0])


def test_greedy_samples_are_identical_and_sampling_is_seeded():
    model = tiny()
    src = torch.randint(2, 40, (2, 5))
    greedy = generate(model, src, None, 0, 1, DecodingConfig(20), num_samples=3)
    assert greedy[0] == greedy[1] == greedy[2]
    cfg = DecodingConfig(20, temperature=1.0)
    a = generate(model, src, None, 0, 1, cfg, generator=torch.Generator().manual_seed(1))
    b = generate(model, src, None, 0, 1, cfg, generator=torch.Generator().manual_seed(1))
    assert a == b


def test_save_and_load_round_trip(tmp_path):
    model = tiny()
    save_model(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(tmp_path / "m")
    src, tgt = torch.randint(2, 40, (2, 5)), torch.randint(2, 40, (2, 4))
    with torch.no_grad():
        torch.testing.assert_close(model(src, None, tgt), loaded.eval()(src, None, tgt))
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        load_model(tmp_path)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        EncoderDecoder(EncDecConfig(vocab_size=10, d_model=30, n_heads=4))
    with pytest.raises(ValueError, match="unknown model preset"):
        EncDecConfig.preset("huge", 10)


def test_packed_training_forward_equals_the_padded_one():
    """With tgt_mask the model runs its token-wise layers on real tokens only: the logits and every
    parameter gradient equal those of the padded forward at the real positions."""
    torch.manual_seed(0)
    model = EncoderDecoder(EncDecConfig(vocab_size=20, d_model=32, n_heads=4, enc_layers=2, dec_layers=2)).double()
    src = torch.randint(1, 20, (3, 7))
    src_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 5 + [0] * 2], dtype=torch.bool)
    tgt = torch.randint(1, 20, (3, 9))
    tgt_mask = torch.tensor([[1] * 9, [1] * 2 + [0] * 7, [1] * 6 + [0] * 3], dtype=torch.bool)
    packed = model(src, src_mask, tgt, tgt_mask)
    padded = model(src, src_mask, tgt)[tgt_mask]
    torch.testing.assert_close(packed, padded)
    g = torch.randn_like(packed)
    params = list(model.parameters())
    for a, b in zip(torch.autograd.grad(packed, params, g), torch.autograd.grad(padded, params, g), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="prefix of each row"):
        model(src, src_mask, tgt, torch.tensor([[0] + [1] * 8] * 3, dtype=torch.bool))
