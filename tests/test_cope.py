"""CoPE against a naive reference that builds every e[p_ij] vector with loops (docs/cope.md), and
its defining properties: relative positions when every gate is 1, gradients through the fractional part,
no position for masked keys, cached decoding equal to the full pass."""

import math

import pytest
import torch

from system2.nn import cope_fused
from system2.nn.cope import CoPEAttention, interpolate_logits
from system2.nn.decoder import padded_causal_mask
from system2.nn.layers import KVCache
from system2.nn.positions import RotaryEmbedding

D, H = 16, 2


@torch.no_grad()
def naive_cope(
    attn: CoPEAttention, x: torch.Tensor, mask: torch.Tensor | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The paper's formulas, one (batch, head, query, key) at a time, in float64 (the result cast to ``dtype``):
    g_ij = sigmoid(q_i.k_j / sqrt(d)), p_ij = min(sum_{k=j..i} g_ik, p_max),
    e[p] = (p - floor p) e[ceil p] + (1 - p + floor p) e[floor p], logits q_i.k_j / sqrt(d) + q_i.e[p_ij]."""
    b, t, _ = x.shape
    dh = attn.head_dim
    x = x.double()

    def heads(w: torch.nn.Linear) -> torch.Tensor:
        return (x @ w.weight.double().T).view(b, t, H, dh).transpose(1, 2)  # B x H x T x dh

    q_content, k, v = heads(attn.wq), heads(attn.wk), heads(attn.wv)
    q = q_content
    if attn.rope is not None:
        q, k = attn.rope.rotate(q, 0), attn.rope.rotate(k, 0)
    gate_keys = {"keys": k, "values": v}.get(attn.gates)
    if attn.gates == "separate":
        gate_keys = heads(attn.wg)
        if attn.rope is not None:
            gate_keys = attn.rope.rotate(gate_keys, 0)
    table = attn.cope.table.double()
    p_max = attn.cope.max_pos
    scale = 1 / math.sqrt(dh)
    out = torch.zeros(b, H, t, dh, dtype=torch.float64)
    for bi in range(b):
        for h in range(H):
            e_table = table[h if table.shape[0] > 1 else 0]  # dh x (p_max + 1)
            for i in range(t):
                keys = [j for j in range(i + 1) if mask is None or mask[bi, j]]
                g_scale = scale if attn.scale_gates else 1.0
                gates = {j: torch.sigmoid(q[bi, h, i] @ gate_keys[bi, h, j] * g_scale) for j in keys}
                logits = []
                for j in keys:
                    p = min(sum(gates[m] for m in keys if m >= j), p_max)
                    lo, hi = math.floor(p), math.ceil(p)
                    e = (p - lo) * e_table[:, hi] + (1 - p + lo) * e_table[:, lo]
                    qk, qe = q[bi, h, i] @ k[bi, h, j], q_content[bi, h, i] @ e
                    logits.append((qk + qe) * scale if attn.scale_positions else qk * scale + qe)
                weights = torch.softmax(torch.stack(logits), 0)
                out[bi, h, i] = sum(w * v[bi, h, j] for w, j in zip(weights, keys, strict=True))
    merged = out.transpose(1, 2).reshape(b, t, H * dh)
    return (merged @ attn.wo.weight.double().T).to(dtype)


def layer(seed: int = 0, max_pos: int = 3, rope: bool = False, **options) -> CoPEAttention:
    torch.manual_seed(seed)
    attn = CoPEAttention(D, H, max_pos, RotaryEmbedding(D // H, 16) if rope else None, **options)
    torch.nn.init.normal_(attn.cope.table)  # the official zero init would hide the position term
    return attn


OPTIONS = [
    {},
    {"tables": "head"},
    {"scale_positions": True},
    {"scale_gates": False},
    {"gates": "separate"},
    {"gates": "values"},
    {"rope": True},
    {"rope": True, "gates": "separate", "tables": "head"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_equals_naive_reference(options):
    attn = layer(**options)
    x = torch.randn(2, 7, D)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, causal=True), naive_cope(attn, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_float64_is_exact_against_the_naive_reference(options):
    """In float64 nothing is rounded to float32 on the way: the layer matches the float64 reference to 1e-9."""
    attn = layer(**options).double()
    x = torch.randn(2, 7, D, dtype=torch.float64)
    with torch.no_grad():
        got = attn(x, causal=True)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, naive_cope(attn, x, dtype=torch.float64), atol=1e-9, rtol=1e-9)


def test_positions_are_clamped_at_p_max():
    attn = layer(max_pos=1)  # positions pass 1 after two keys: most of them are clamped
    x = torch.randn(1, 9, D)
    attn.record = True
    with torch.no_grad():
        torch.testing.assert_close(attn(x, causal=True), naive_cope(attn, x), atol=1e-5, rtol=1e-5)
    assert float(attn.recorded["positions"].max()) == 1.0


def test_all_gates_open_gives_relative_positions():
    """With q.k large and positive everywhere every gate is 1, so p_ij = i - j + 1."""
    attn = CoPEAttention(D, H, max_pos=20)
    with torch.no_grad():
        for w in (attn.wq, attn.wk):
            w.weight.copy_(10 * torch.eye(D))
    x = torch.rand(1, 8, D) + 0.5  # positive entries: q.k = 100 x.x > 0
    attn.record = True
    with torch.no_grad():
        attn(x, causal=True)
    gates, positions = attn.recorded["gates"][0], attn.recorded["positions"][0]  # H x T x T
    i, j = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    past = j <= i
    for h in range(H):
        assert torch.all(gates[h][past] == 1)
        torch.testing.assert_close(positions[h][past], (i - j + 1)[past].float())
        assert torch.all(positions[h][~past] == 0) and torch.all(gates[h][~past] == 0)


def test_interpolation_and_its_gradient():
    z = torch.tensor([[0.0, 2.0, 3.0, 7.0]])  # q.e[n] for n = 0..3
    p = torch.tensor([[[0.25, 1.5, 2.0, 3.0]]], requires_grad=True)
    out = interpolate_logits(z[:, None, :].expand(1, 1, 4), p)
    torch.testing.assert_close(out, torch.tensor([[[0.5, 2.5, 3.0, 7.0]]]))
    out.sum().backward()
    # d/dp = e[ceil] - e[floor] inside an interval; 0 at the clamp p_max = 3
    torch.testing.assert_close(p.grad, torch.tensor([[[2.0, 1.0, 4.0, 0.0]]]))


def test_gradients_reach_the_gates_through_the_fractional_part():
    """Separate gate keys influence the output only through positions, i.e. through p - floor(p)."""
    attn = layer(gates="separate", max_pos=8)
    x = torch.randn(2, 6, D)
    attn(x, causal=True).square().sum().backward()
    assert attn.wg.weight.grad is not None and attn.wg.weight.grad.abs().sum() > 0
    assert attn.cope.table.grad.abs().sum() > 0
    gate_logits = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    z = torch.randn(1, 1, 4, 6, dtype=torch.float64)

    def positions_term(g: torch.Tensor) -> torch.Tensor:
        gates = torch.sigmoid(g).tril()  # causal, keys reversed is not needed for the check
        return interpolate_logits(z, gates.flip(-1).cumsum(-1).flip(-1))

    assert torch.autograd.gradcheck(positions_term, (gate_logits,))


def test_masked_keys_get_no_position():
    """A hidden key changes nothing: same outputs as the sequence without it (no RoPE: no absolute index)."""
    attn = layer(max_pos=6)
    x = torch.randn(1, 7, D)
    mask = torch.ones(1, 7, dtype=torch.bool)
    mask[0, 2] = False
    allowed = (torch.ones(7, 7, dtype=torch.bool).tril() & mask[:, None, :]) | torch.eye(7, dtype=torch.bool)
    attn.record = True
    with torch.no_grad():
        masked = attn(x, mask=allowed[:, None])
        gates = attn.recorded["gates"][0]
        without = attn(x[:, mask[0]], causal=True)
    assert torch.all(gates[:, 3:, 2] == 0)  # later queries give the hidden key no gate
    keep = [0, 1, 3, 4, 5, 6]
    torch.testing.assert_close(masked[:, keep], without, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked[0, keep], naive_cope(attn, x, mask)[0, keep], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("initial", [256, 2])
@pytest.mark.parametrize("options", [{}, {"gates": "separate", "rope": True}, {"gates": "values"}])
def test_cached_steps_equal_the_full_pass(options, initial, monkeypatch):
    """Old keys' positions change with every new query; the cache recomputes them from the new row. With a
    2-position start the cache (gate keys included) grows three times on the way."""
    monkeypatch.setattr(KVCache, "INITIAL", initial)
    attn = layer(max_pos=4, **options)
    x = torch.randn(2, 9, D)
    cache = attn.new_cache(2, 12, x)
    with torch.no_grad():
        full = attn(x, causal=True)
        parts = [attn(x[:, :4], causal=True, cache=cache)]
        parts += [attn(x[:, i : i + 1], causal=True, cache=cache) for i in range(4, 9)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="gates must be one of"):
        CoPEAttention(D, H, 4, gates="queries")
    with pytest.raises(ValueError, match="tables must be"):
        CoPEAttention(D, H, 4, tables="model")
    with pytest.raises(ValueError, match="max_pos must be >= 1"):
        CoPEAttention(D, H, 0)
    with pytest.raises(ValueError, match="causal=True or a mask"):
        layer()(torch.randn(1, 3, D))


@pytest.mark.parametrize("gates", ["keys", "separate"])
def test_query_blocks_give_the_same_outputs_and_gradients(monkeypatch, gates):
    """Long sequences run the T x T work on blocks of queries; any block size gives the same numbers."""
    import system2.nn.cope as cope_module

    torch.manual_seed(0)
    layer = CoPEAttention(32, 4, max_pos=6, gates=gates)
    with torch.no_grad():
        layer.cope.table.normal_()
    x = torch.randn(2, 11, 32, requires_grad=True)
    layer.record = True
    full = layer(x, causal=True)
    (g_full,) = torch.autograd.grad(full.square().sum(), x)
    rec_full = layer.recorded
    monkeypatch.setattr(cope_module, "BLOCK_BYTES", 4 * 2 * 4 * 11 * 3)  # 3 query rows per block
    blocks = layer(x, causal=True)
    (g_blocks,) = torch.autograd.grad(blocks.square().sum(), x)
    torch.testing.assert_close(blocks, full)
    torch.testing.assert_close(g_blocks, g_full)
    torch.testing.assert_close(layer.recorded["positions"], rec_full["positions"])


def test_cope_attention_on_packed_tokens_equals_the_padded_forward():
    """Every attention layer takes packed tokens: CoPE unpacks around itself, so its outputs at the real
    positions of a right-padded batch are those of the padded forward."""
    from system2.nn.layers import Packing

    torch.manual_seed(0)
    attn = CoPEAttention(16, 2, max_pos=8).double()
    torch.nn.init.normal_(attn.cope.table, std=0.3)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2], dtype=torch.bool)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    padded = attn(x, causal=True)[mask]
    packed = attn(x[mask], causal=True, packing=Packing(mask))
    torch.testing.assert_close(packed, padded)


def paths(attn: CoPEAttention, x: torch.Tensor, mask: torch.Tensor | None, monkeypatch) -> list:
    """(output, gradients w.r.t. x and every parameter) of the memory-efficient path, then of the plain one, for
    one fixed random output gradient; checks that the first took ``cope_fused.cope_attention``."""
    import system2.nn.cope as cope_module

    calls = []
    monkeypatch.setattr(cope_module, "cope_attention", lambda *a: calls.append(1) or cope_fused.cope_attention(*a))
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    results = []
    for efficient in (True, False):
        attn.memory_efficient = efficient
        out = attn(x, mask=mask, causal=True)
        results.append((out.detach(), torch.autograd.grad(out, [x, *attn.parameters()], grad)))
    assert calls == [1]
    return results


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("padded", [False, True], ids=["causal", "padding-mask"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_memory_efficient_path_equals_the_plain_path(options, padded, dtype, monkeypatch):
    """``cope_fused`` recomputes the T x T work in the backward pass and differentiates it by hand: its outputs
    and its gradients w.r.t. the input and every parameter (the table and the gate projection included) equal
    the plain path's, to 1e-9 in float64, over query blocks that see different numbers of keys."""
    monkeypatch.setattr(cope_fused, "BLOCK_ROWS", 3)  # 4 blocks of queries
    attn = layer(max_pos=4, **options).to(dtype)
    x = torch.randn(2, 10, D, dtype=dtype, requires_grad=True)
    mask = None
    if padded:  # left padding: row 1 starts with 3 padding tokens
        mask = padded_causal_mask(torch.arange(10) >= torch.tensor([[0], [3]]), 10)
    (out, grads), (ref_out, ref_grads) = paths(attn, x, mask, monkeypatch)
    tol = {"atol": 1e-9, "rtol": 1e-9} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(out, ref_out, **tol)
    assert len(grads) == 1 + len(list(attn.parameters()))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, **tol)
    assert all(g.abs().sum() > 0 for g in grads)  # every parameter takes part (table and gate projection too)


def test_memory_efficient_path_under_bf16_autocast(monkeypatch):
    """Under bf16 autocast the products run in bf16 and the gates, positions and logits in float32 on both
    paths: the outputs are equal and the gradients agree to bf16 rounding."""
    attn = layer(max_pos=6, rope=True, gates="separate")
    x = torch.randn(2, 12, D, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (out, grads), (ref_out, ref_grads) = paths(attn, x, None, monkeypatch)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref_out, atol=1e-2, rtol=1e-2)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, atol=2e-2 * float(want.abs().max()), rtol=0)


def saved_bytes(attn: CoPEAttention, t: int) -> int:
    """Bytes of the distinct storages autograd saves for the backward pass of one forward at length t, the
    layer's parameters excluded (the method of benchmarks/cope_attention.py)."""
    weights = {p.untyped_storage().data_ptr() for p in attn.parameters()}
    storages: dict[int, int] = {}

    def pack(x: torch.Tensor) -> torch.Tensor:
        if x.untyped_storage().data_ptr() not in weights:
            storages[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        return x

    x = torch.randn(2, t, D, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        out = attn(x, causal=True)
    del out
    return sum(storages.values())


@pytest.mark.parametrize("options", [{}, {"rope": True, "gates": "separate", "tables": "head"}])
def test_memory_efficient_path_saves_activations_linear_in_t(options):
    """What the memory-efficient path saves for the backward pass (its inputs only) grows linearly with T: going
    from 2T to 4T adds twice what going from T to 2T adds (a T^2 term would add four times as much, as the plain
    path's T x T tensors do). Differences cancel what does not depend on T (RoPE tables, stacked weights)."""
    attn = layer(max_pos=8, **options)

    def growth(efficient: bool) -> float:
        attn.memory_efficient = efficient
        small, medium, large = (saved_bytes(attn, t) for t in (32, 64, 128))
        return (large - medium) / (medium - small)

    assert growth(True) == pytest.approx(2.0, abs=0.01)
    assert growth(False) > 3.5
