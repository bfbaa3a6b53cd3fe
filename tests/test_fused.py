"""The fused paths of nn/fused.py against the plain modules: equal outputs and gradients, module by module
and through whole models, and each hand-written backward against a float64 gradcheck."""

import pytest
import torch

from system2.nn import fused
from system2.nn.cope import CoPEAttention
from system2.nn.decoder import DecoderConfig, DecoderLM
from system2.nn.encdec import EncDecConfig, EncoderDecoder
from system2.nn.layers import Attention, Packing, RMSNorm, SwiGLU
from system2.nn.positions import RotaryEmbedding


def both_paths(fn, inputs, params, grad_seed=0):
    """(outputs, gradients w.r.t. inputs + params) of ``fn`` with the fused paths on, then off."""
    results = []
    for on in (True, False):
        with fused.use_fused(on):
            out = fn(*inputs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        g = torch.Generator().manual_seed(grad_seed)
        grads_out = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in outs]
        grads = torch.autograd.grad(outs, [*inputs, *params], grads_out, allow_unused=True)
        results.append(([o.detach() for o in outs], grads))
    return results


def assert_same(results, **tol):
    (out_f, grad_f), (out_p, grad_p) = results
    for a, b in zip(out_f, out_p, strict=True):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(grad_f, grad_p, strict=True):
        if a is None or b is None:  # a part that took no part: no gradient on one path, zeros on the other
            assert not (a if a is not None else b if b is not None else torch.zeros(1)).any()
        else:
            torch.testing.assert_close(a, b, **tol)


def test_the_switch_restores_the_previous_setting():
    before = fused.enabled()
    with fused.use_fused(False):
        assert not fused.enabled()
        with fused.use_fused(True):
            assert fused.enabled()
        assert not fused.enabled()
    assert fused.enabled() == before


def test_rmsnorm_paths_equal_each_other_and_torch_rmsnorm():
    ours, ref = RMSNorm(16, eps=1e-5), torch.nn.RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(16))
        ref.weight.copy_(ours.weight)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(3, 7, 16, requires_grad=True)
    results = both_paths(ours, (x,), [ours.weight])
    assert_same(results)
    (y,), _ = results[0]
    torch.testing.assert_close(y, ref(x).detach())
    d = RMSNorm(6, eps=1e-5).double()
    torch.autograd.gradcheck(d, (torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True),))


def test_swiglu_paths_are_equal():
    torch.manual_seed(0)
    ffn = SwiGLU(8, 12).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    assert_same(both_paths(ffn, (x,), list(ffn.parameters())))
    torch.autograd.gradcheck(ffn, (x,))
    with torch.no_grad():  # the inference path of the fused form
        torch.testing.assert_close(ffn(x), ffn.w2(torch.nn.functional.silu(ffn.w1(x)) * ffn.w3(x)))


def test_rope_paths_are_equal_and_the_fused_backward_is_the_inverse_rotation():
    rope = RotaryEmbedding(8, max_len=16).double()
    x = torch.randn(2, 3, 5, 8, dtype=torch.float64, requires_grad=True)
    assert_same(both_paths(lambda z: rope.rotate(z, 4), (x,), []))
    torch.autograd.gradcheck(lambda z: rope.rotate(z, 4), (x,))
    with torch.no_grad():  # the inference path of the fused form
        with fused.use_fused(False):
            plain = rope.rotate(x, 4)
        torch.testing.assert_close(rope.rotate(x, 4), plain)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("rotate", [False, True])
def test_attention_projections_are_equal(rotate, packed):
    """Queries/keys/values from one stacked product (RoPE on q and k, optionally from packed tokens)
    against three products and the plain rotation, including an unused output (its gradient is None)."""
    torch.manual_seed(0)
    attn = Attention(8, 2, RotaryEmbedding(4, max_len=16) if rotate else None).double()
    mask = torch.tensor([[1] * 5, [1] * 3 + [0] * 2], dtype=torch.bool)
    packing = Packing(mask) if packed else None
    x = torch.randn(int(mask.sum()) if packed else 10, 8, dtype=torch.float64)
    x = (x if packed else x.view(2, 5, 8)).requires_grad_()
    params = [attn.wq.weight, attn.wk.weight, attn.wv.weight]
    assert_same(both_paths(lambda z: attn.project_qkv(z, rope_offset=3, packing=packing), (x,), params))
    assert_same(both_paths(lambda z: attn.project_qkv(z, 3, packing)[::2], (x,), params))  # keys unused
    if not packed:
        assert_same(both_paths(attn.project_kv, (x,), params[1:]))
    torch.autograd.gradcheck(lambda z: tuple(attn.project_qkv(z, 3, packing)), (x,))


def test_encoder_decoder_training_step_is_equal_on_both_paths():
    torch.manual_seed(0)
    model = EncoderDecoder(EncDecConfig(vocab_size=20, d_model=32, n_heads=4, enc_layers=2, dec_layers=2)).double()
    src = torch.randint(1, 20, (3, 7))
    src_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 5 + [0] * 2], dtype=torch.bool)
    tgt = torch.randint(1, 20, (3, 9))
    tgt_mask = torch.tensor([[1] * 9, [1] * 2 + [0] * 7, [1] * 6 + [0] * 3], dtype=torch.bool)
    params = list(model.parameters())
    assert_same(both_paths(lambda: model(src, src_mask, tgt, tgt_mask), (), params))


@pytest.mark.parametrize("position", ["rope", "cope+rope"])
def test_decoder_lm_training_step_is_equal_on_both_paths(position):
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=20, d_model=32, n_layers=2, n_heads=4, position=position, max_len=32)
    model = DecoderLM(cfg).double()
    if position == "cope+rope":
        assert all(isinstance(layer.attn, CoPEAttention) for layer in model.layers)
        for p in model.parameters():  # CoPE tables start at zero: give them values, so they matter
            torch.nn.init.normal_(p, std=0.3)
    ids = torch.randint(0, 20, (2, 11))
    assert_same(both_paths(lambda: model(ids), (), list(model.parameters())))
