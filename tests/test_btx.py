"""BTX (arXiv 2403.07816): branch, mix into a Mixtral checkpoint, routing and the load-balancing loss, and
MoE fine-tuning through the training loop, on tiny random Llamas (2 layers, d=32, fp32)."""

from __future__ import annotations

import json
import math
import weakref
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from system2.btx import branch, expert_usage, load_balancing_loss, mix, route
from system2.btx.routing import check_exportable, routing_of, set_routing, variant_scores
from system2.btx.tensors import SafetensorsDir
from system2.config import ConfigError
from system2.lm.data import SFTData
from system2.lm.io import load_lm, save_lm
from system2.lm.losses import make_moe_sft_loss_fn
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.train import TrainConfig, train

WORDS = [f"w{i}" for i in range(40)]
FFN = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"}


def _tokenizer():
    return build_word_tokenizer(WORDS, model_max_length=32)


@torch.no_grad()
def _save_expert(path: Path, seed: int, d_model: int = 32) -> Path:
    """A tiny Llama whose weights are all random at a scale where every part changes the logits."""
    tok = _tokenizer()
    model = tiny_llama(tok, d_model=d_model, n_layers=2, n_heads=4, max_len=32, seed=seed, d_ff=64)
    g = torch.Generator().manual_seed(1000 + seed)
    for p in model.parameters():
        noise = torch.randn(p.shape, generator=g)
        p.copy_(1 + 0.3 * noise if p.dim() == 1 else 0.25 * noise)
    return save_lm(model, tok, path)


@pytest.fixture(scope="module")
def experts(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("experts")
    return [_save_expert(root / f"e{i}", seed=i) for i in range(4)]


def _dense(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32).eval()


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    d = SafetensorsDir(path)
    return {n: d.get(n) for n in d.names}


def _ids(n: int = 3, t: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, 4 + len(WORDS), (n, t), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def _logits(model, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return model(input_ids=ids, attention_mask=mask, use_cache=False).logits


@torch.no_grad()
def _moe_inputs(model, ids: torch.Tensor, mask: torch.Tensor) -> dict[int, torch.Tensor]:
    """Each layer's MoE/MLP input (the output of post_attention_layernorm), ``[B, T, d]``."""
    seen: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        return lambda _module, _args, y: seen.__setitem__(layer, y)

    hooks = [b.post_attention_layernorm.register_forward_hook(keep(i)) for i, b in enumerate(model.model.layers)]
    try:
        model(input_ids=ids, attention_mask=mask, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return seen


# ----- routing and the load-balancing loss ---------------------------------------------------------------
def test_route_is_softmax_of_top_k_and_equals_mixtral_softmax_topk_renormalise():
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter

    weights, index = route(torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]), top_k=2)
    e = math.e
    assert index.tolist() == [[0, 1], [1, 2]]
    torch.testing.assert_close(weights[0], torch.tensor([e / (e + 1), 1 / (e + 1)]))
    torch.testing.assert_close(weights[1], torch.tensor([e**2 / (e**2 + 1), 1 / (e**2 + 1)]))

    n_experts = 5
    router = MixtralTopKRouter(MixtralConfig(hidden_size=n_experts, num_local_experts=n_experts, num_experts_per_tok=2))
    router.weight.data = torch.eye(n_experts)  # its logits are its inputs
    logits = torch.randn(64, n_experts, generator=torch.Generator().manual_seed(0)) * 3
    _, hf_weights, hf_index = router(logits)
    weights, index = route(logits, top_k=2)
    assert torch.equal(index, hf_index)
    torch.testing.assert_close(weights, hf_weights, rtol=1e-6, atol=1e-7)


def _hand_usage(layers, mask, k, n):
    """u (fraction of routed slots) and p (mean probability) per layer, by plain loops."""
    out = []
    for rows in layers:
        kept = [r for r, m in zip(rows, mask, strict=True) if m]
        counts, probs = [0.0] * n, [0.0] * n
        for r in kept:
            z = sum(math.exp(v) for v in r)
            for i in range(n):
                probs[i] += math.exp(r[i]) / z / len(kept)
            for i in sorted(range(n), key=lambda i: -r[i])[:k]:
                counts[i] += 1
        out.append(([c / (len(kept) * k) for c in counts], probs))
    return out


def test_load_balancing_loss_matches_a_hand_computation_and_relates_to_transformers():
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    layer0 = [[2.0, 1.0, 0.0], [0.5, 2.0, -1.0], [0.0, 0.2, 3.0], [1.0, 0.0, 0.5]]
    layer1 = [[0.0, 0.0, 1.0], [3.0, 1.0, 0.0], [0.1, 2.0, 0.3], [-1.0, 0.0, 2.0]]
    mask = [1, 1, 1, 0]
    k, n = 2, 3
    hand = _hand_usage([layer0, layer1], mask, k, n)
    per_layer = [n * sum(u * p for u, p in zip(us, ps, strict=True)) for us, ps in hand]
    logits = [torch.tensor(layer0), torch.tensor(layer1)]
    m = torch.tensor([mask])  # [B=1, T=4]

    u, p = expert_usage(logits, k, n, m)
    torch.testing.assert_close(u, torch.tensor([h[0] for h in hand]))
    torch.testing.assert_close(p, torch.tensor([h[1] for h in hand]))
    assert u.sum(-1).tolist() == pytest.approx([1.0, 1.0])
    ours = load_balancing_loss(logits, k, n, m)
    assert ours.item() == pytest.approx(sum(per_layer) / 2, rel=1e-6)

    # transformers pools counts and probabilities over layers (usage summing to k), then multiplies
    pooled_u = [k * (hand[0][0][i] + hand[1][0][i]) / 2 for i in range(n)]
    pooled_p = [(hand[0][1][i] + hand[1][1][i]) / 2 for i in range(n)]
    hf = load_balancing_loss_func(tuple(logits), n, k, m)
    assert hf.item() == pytest.approx(n * sum(a * b for a, b in zip(pooled_u, pooled_p, strict=True)), rel=1e-6)
    assert hf.item() != pytest.approx(k * ours.item(), rel=1e-3)  # several layers: no constant factor
    for one in logits:  # one MoE layer: transformers' value is k times the paper's
        hf_one = load_balancing_loss_func((one,), n, k, m)
        assert hf_one.item() == pytest.approx(k * load_balancing_loss([one], k, n, m).item(), rel=1e-6)
    balanced = [torch.zeros(6, n)]
    assert load_balancing_loss(balanced, k, n).item() == pytest.approx(n * n * (1 / n) * (1 / n))


# ----- mixing -----------------------------------------------------------------------------------------------
def test_one_expert_mix_equals_its_dense_model(experts, tmp_path):
    out = mix([experts[0]], tmp_path / "mixed", top_k=1)
    ids = _ids()
    torch.testing.assert_close(_logits(_dense(out), ids), _logits(_dense(experts[0]), ids), rtol=0, atol=1e-6)


def test_identical_experts_give_the_dense_output_with_any_router(experts, tmp_path):
    copies = branch(experts[1], [tmp_path / f"copy{i}" for i in range(3)])
    dense = _logits(_dense(experts[1]), _ids())
    for seed in (0, 1):
        out = mix(copies, tmp_path / f"mixed{seed}", router_seed=seed, top_k=2)
        torch.testing.assert_close(_logits(_dense(out), _ids()), dense, rtol=0, atol=1e-5)
    data = [[_ids(seed=s)] for s in range(3)]
    out = mix(copies, tmp_path / "mixed-hidden", router_init="mean_hidden", router_data=data)
    torch.testing.assert_close(_logits(_dense(out), _ids()), dense, rtol=0, atol=1e-5)


def test_mix_averages_non_ffn_tensors_exactly_and_writes_a_standard_mixtral_checkpoint(experts, tmp_path):
    from transformers import AutoModelForCausalLM

    group = experts[:3]
    out = mix(group, tmp_path / "mixed", top_k=2, aux_loss_coef=0.01)
    mixed, ins = _tensors(out), [_tensors(e) for e in group]
    ffn = [n for n in ins[0] if ".mlp." in n]
    assert len(ffn) == 6
    for name in ins[0]:
        if name in ffn:
            continue
        mean = torch.stack([t[name].double() for t in ins]).mean(0).float()
        assert torch.equal(mixed[name], mean), name
        assert not torch.equal(mixed[name], ins[0][name]), name  # really averaged, not copied from one
    for layer in range(2):
        for e, t in enumerate(ins):
            for part, w in FFN.items():
                key = f"model.layers.{layer}.block_sparse_moe.experts.{e}.{w}.weight"
                assert torch.equal(mixed[key], t[f"model.layers.{layer}.mlp.{part}.weight"]), key
        assert mixed[f"model.layers.{layer}.block_sparse_moe.gate.weight"].shape == (3, 32)
    assert not any(".mlp." in n for n in mixed)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "mixtral" and config["architectures"] == ["MixtralForCausalLM"]
    assert (config["num_local_experts"], config["num_experts_per_tok"]) == (3, 2)
    assert config["router_aux_loss_coef"] == 0.01 and config["output_router_logits"] is True
    assert config["sliding_window"] is None and config["intermediate_size"] == 64
    model, info = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, output_loading_info=True)
    assert type(model).__name__ == "MixtralForCausalLM"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    _, tok = load_lm(out)
    assert tok.convert_ids_to_tokens(tok("w3 w7")["input_ids"]) == ["<bos>", "w3", "w7"]


class _HandMoE(torch.nn.Module):
    """sum over the top-k experts of softmax(top-k router logits) * expert FFN(x), by plain tensor maths."""

    def __init__(self, mlps: list[torch.nn.Module], router: torch.Tensor, top_k: int) -> None:
        super().__init__()
        self.mlps, self.router, self.top_k = torch.nn.ModuleList(mlps), router, top_k
        self.rule = "topk"  # or "soft" (every expert, softmax weights), "top1_p" (argmax, scaled by its probability)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x @ self.router.T
        probs = torch.exp(logits - logits.max(-1, keepdim=True).values)
        probs = probs / probs.sum(-1, keepdim=True)
        if self.rule == "soft":
            weights, index = probs, torch.arange(len(self.mlps)).expand_as(probs)
        elif self.rule == "top1_p":
            index = logits.argmax(-1, keepdim=True)
            weights = probs.gather(-1, index)
        else:
            top, index = logits.topk(self.top_k, dim=-1)
            weights = torch.exp(top - top.max(-1, keepdim=True).values)
            weights = weights / weights.sum(-1, keepdim=True)
        outs = torch.stack([mlp(x) for mlp in self.mlps], dim=-2)  # [..., E, d]
        picked = outs.gather(-2, index[..., None].expand(*index.shape, x.shape[-1]))
        return (weights[..., None] * picked).sum(-2)


@torch.no_grad()
def _hand_reference(expert_dirs: list[Path], mixed_dir: Path, top_k: int, seed_dir: Path | None = None):
    """A Llama with the experts' averaged non-FFN weights whose MLPs are hand-written MoEs over the experts'
    own LlamaMLP modules (and the seed's, last) and the saved routers."""
    from transformers import LlamaForCausalLM

    dense = [_dense(e) for e in expert_dirs]
    ref = LlamaForCausalLM(dense[0].config).eval()
    states = [m.state_dict() for m in dense]
    ref.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]})
    ffn_models = dense + ([_dense(seed_dir)] if seed_dir is not None else [])
    saved = _tensors(mixed_dir)
    for layer, block in enumerate(ref.model.layers):
        router = saved[f"model.layers.{layer}.block_sparse_moe.gate.weight"]
        block.mlp = _HandMoE([m.model.layers[layer].mlp for m in ffn_models], router, top_k)
    return ref


def test_mixed_checkpoint_matches_a_hand_written_moe_forward(experts, tmp_path):
    out = mix(experts[:3], tmp_path / "mixed", top_k=2, router_seed=3)
    ref = _hand_reference(experts[:3], out, top_k=2)
    ids = _ids(4, 14, seed=5)
    mask = torch.ones_like(ids)
    mask[0, 10:] = 0  # right padding, as the SFT batches have
    got = _logits(_dense(out), ids, mask)
    want = _logits(ref, ids, mask)
    torch.testing.assert_close(got[mask.bool()], want[mask.bool()], rtol=0, atol=1e-5)
    for block in ref.model.layers:
        block.mlp.top_k = 1
    assert (got - _logits(ref, ids, mask)).abs().max() > 1e-2  # the comparison tells top-2 from top-1


def test_router_logits_and_aux_loss_of_the_mixed_model_match_a_hand_computation(experts, tmp_path):
    out = mix(experts[:3], tmp_path / "mixed", top_k=2, aux_loss_coef=0.01)
    model = _dense(out)
    routers = _tensors(out)
    ids = _ids(2, 9, seed=7)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    inputs = _moe_inputs(model, ids, mask)
    with torch.no_grad():
        res = model(input_ids=ids, attention_mask=mask, output_router_logits=True, use_cache=False)
    hand_logits = [
        inputs[layer].reshape(-1, 32) @ routers[f"model.layers.{layer}.block_sparse_moe.gate.weight"].T
        for layer in range(2)
    ]
    for layer in range(2):
        torch.testing.assert_close(res.router_logits[layer], hand_logits[layer], rtol=1e-5, atol=1e-6)
        probs = torch.softmax(hand_logits[layer], -1)
        top, idx = probs.topk(2, -1)
        weights, index = route(res.router_logits[layer], 2)
        assert torch.equal(index, idx)
        torch.testing.assert_close(weights, top / top.sum(-1, keepdim=True))
    rows = [t.tolist() for t in hand_logits]
    hand = _hand_usage(rows, mask.reshape(-1).tolist(), 2, 3)
    want = sum(3 * sum(u * p for u, p in zip(us, ps, strict=True)) for us, ps in hand) / 2
    batch = {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
    loss, _, metrics = make_moe_sft_loss_fn(norm="token")(model, batch)
    assert metrics["loss/aux"] == pytest.approx(want, rel=1e-5)
    assert loss.item() == pytest.approx(metrics["loss/nll"] + 0.01 * want, rel=1e-6)
    _, _, hf_metrics = make_moe_sft_loss_fn(norm="token", aux_form="transformers")(model, batch)
    assert hf_metrics["loss/aux"] == pytest.approx(res.aux_loss.item(), rel=1e-6)
    assert sum(metrics[f"router/usage_{i}"] for i in range(3)) == pytest.approx(1.0)


def test_seed_joins_as_the_last_expert_and_stays_out_of_the_averages(experts, tmp_path):
    seed_dir, domains = experts[3], experts[:2]
    out = mix(domains, tmp_path / "mixed", seed_dir=seed_dir, include_seed_expert=True, top_k=2)
    mixed, ins, seed = _tensors(out), [_tensors(e) for e in domains], _tensors(seed_dir)
    assert json.loads((out / "config.json").read_text())["num_local_experts"] == 3
    for layer in range(2):
        for part, w in FFN.items():
            key = f"model.layers.{layer}.block_sparse_moe.experts.2.{w}.weight"
            assert torch.equal(mixed[key], seed[f"model.layers.{layer}.mlp.{part}.weight"])
        assert f"model.layers.{layer}.block_sparse_moe.experts.3.w1.weight" not in mixed
        assert mixed[f"model.layers.{layer}.block_sparse_moe.gate.weight"].shape == (3, 32)
    name = "model.layers.1.self_attn.q_proj.weight"
    assert torch.equal(mixed[name], torch.stack([t[name].double() for t in ins]).mean(0).float())
    ids = _ids()
    got = _logits(_dense(out), ids)
    torch.testing.assert_close(got, _logits(_hand_reference(domains, out, 2, seed_dir), ids), rtol=0, atol=1e-5)
    averaging_the_seed_too = _hand_reference([*domains, seed_dir], out, 2)
    assert (got - _logits(averaging_the_seed_too, ids)).abs().max() > 1e-2


def test_mean_hidden_router_rows_are_normalised_domain_means_of_the_moe_input(experts, tmp_path):
    padded = {"input_ids": _ids(2, 8, seed=11), "attention_mask": torch.tensor([[1] * 8, [1] * 5 + [0] * 3])}
    data = [[_ids(2, 8, seed=1), padded], [_ids(3, 6, seed=2)]]
    seed_dir = experts[2]
    out = mix(
        experts[:2], tmp_path / "mixed", seed_dir=seed_dir, include_seed_expert=True, router_init="mean_hidden",
        router_data=data,
    )  # fmt: skip
    routers = _tensors(out)
    seed_data = data[0] + data[1]  # the seed's row: every domain's batches
    for e, (path, batches) in enumerate([(experts[0], data[0]), (experts[1], data[1]), (seed_dir, seed_data)]):
        model = _dense(path)
        sums, count = torch.zeros(2, 32, dtype=torch.float64), 0
        for batch in batches:
            ids, mask = (batch, torch.ones_like(batch)) if isinstance(batch, torch.Tensor) else batch.values()
            seen = _moe_inputs(model, ids, mask)
            for layer in range(2):
                sums[layer] += seen[layer][mask.bool()].double().sum(0)
            count += int(mask.sum())
        mean = (sums / count).float()
        for layer in range(2):
            row = routers[f"model.layers.{layer}.block_sparse_moe.gate.weight"][e]
            torch.testing.assert_close(row, mean[layer] / mean[layer].norm(), rtol=1e-5, atol=1e-6)
            assert row.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_mixing_streams_tensors_one_at_a_time(experts, tmp_path, monkeypatch):
    live = {"now": 0, "peak": 0, "read": 0}
    original = SafetensorsDir.get

    def release(n: int) -> None:
        live["now"] -= n

    def counting_get(self, name):
        t = original(self, name)
        n = t.numel() * t.element_size()
        live["now"] += n
        live["read"] += n
        live["peak"] = max(live["peak"], live["now"])
        weakref.finalize(t, release, n)
        return t

    monkeypatch.setattr(SafetensorsDir, "get", counting_get)
    sizes = [sum(d.nbytes(n) for n in d.names) for d in map(SafetensorsDir, experts)]
    largest = max(d.nbytes(n) for d in map(SafetensorsDir, experts[:1]) for n in d.names)
    mix(experts, tmp_path / "mixed", top_k=2, max_shard_bytes=20_000)
    assert live["read"] == sum(sizes)  # every tensor of the 4 experts was read once
    assert live["peak"] <= 2 * largest < sizes[0] / 4, (live, largest, sizes)
    assert live["now"] == 0
    assert len(list((tmp_path / "mixed").glob("model-*-of-*.safetensors"))) > 2


def test_sharded_output_is_the_same_checkpoint(experts, tmp_path):
    one = mix(experts[:2], tmp_path / "one", top_k=2)
    many = mix(experts[:2], tmp_path / "many", top_k=2, max_shard_bytes=10_000)
    index = json.loads((many / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 3 and not (many / "model.safetensors").exists()
    a, b = _dense(one).state_dict(), _dense(many).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with safe_open(str(one / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
    half = mix(experts[:2], tmp_path / "bf16", top_k=2, dtype=torch.bfloat16)
    assert json.loads((half / "config.json").read_text())["dtype"] == "bfloat16"
    assert all(t.dtype == torch.bfloat16 for t in _tensors(half).values())


# ----- refusals ---------------------------------------------------------------------------------------------
def _gpt2(path: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=44, n_positions=32, n_embd=16, n_layer=1, n_head=2)).save_pretrained(path)
    return path


def _with_bias(path: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, attention_bias=True)  # fmt: skip
    return save_lm(LlamaForCausalLM(cfg), tok, path)


def _reshaped(src: Path, path: Path) -> Path:
    """A copy of ``src`` whose layer-0 query projection has another shape (config unchanged)."""
    branch(src, [path])
    state = load_file(str(path / "model.safetensors"))
    state["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(16, 32)
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    return path


def test_bad_input_is_refused_before_any_work(experts, tmp_path):
    out = tmp_path / "out"
    narrow = _save_expert(tmp_path / "narrow", seed=9, d_model=16)
    cases = [
        (dict(expert_dirs=[]), "at least one expert"),
        (dict(expert_dirs=[experts[0], narrow]), r"expert_dirs\[1\] \(.*narrow\): config field hidden_size is 16"),
        (dict(expert_dirs=[experts[0], _reshaped(experts[1], tmp_path / "r")]),
         r"expert_dirs\[1\] .*tensor model.layers.0.self_attn.q_proj.weight has shape \[16, 32\]"),
        (dict(expert_dirs=[experts[0], _gpt2(tmp_path / "g")]), r"expert_dirs\[1\] .*model_type 'gpt2' is not Llama"),
        (dict(expert_dirs=experts[:2], seed_dir=tmp_path / "g", include_seed_expert=True), "seed_dir .*'gpt2'"),
        (dict(expert_dirs=[experts[0], _with_bias(tmp_path / "b")]), "attention_bias=true"),
        (dict(expert_dirs=experts[:2], top_k=3), r"top_k must be an integer in \[1, 2\]"),
        (dict(expert_dirs=experts[:2], include_seed_expert=True), "needs seed_dir"),
        (dict(expert_dirs=experts[:2], seed_dir=experts[2]), "include_seed_expert=True"),
        (dict(expert_dirs=experts[:2], router_init="hidden"), "router_init must be one of"),
        (dict(expert_dirs=experts[:2], router_init="mean_hidden"), "needs router_data"),
        (dict(expert_dirs=experts[:2], router_init="mean_hidden", router_data=[[_ids()]]), "one list of token"),
        (dict(expert_dirs=experts[:2], router_init="mean_hidden", router_data=[[_ids()], [_ids().float()]]),
         r"router_data\[1\]\[0\]: input_ids must be an integer"),
        (dict(expert_dirs=experts[:2], router_data=[[_ids()], [_ids()]]), "only with router_init='mean_hidden'"),
        (dict(expert_dirs=experts[:2], aux_loss_coef=float("nan")), "aux_loss_coef"),
        (dict(expert_dirs=[experts[0], tmp_path / "missing"]), r"expert_dirs\[1\]: model path .* does not exist"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            mix(out_dir=out, **kwargs)
        assert not out.exists()
    with pytest.raises(ConfigError, match="also an input directory"):
        mix(experts[:2], experts[1])
    (out / "old").mkdir(parents=True)
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        mix(experts[:2], out)


def test_branch_copies_the_seed_and_refuses_non_llama_seeds(experts, tmp_path):
    outs = branch(experts[0], [tmp_path / "a", tmp_path / "b"])
    for o in outs:
        assert sorted(p.name for p in o.iterdir()) == sorted(p.name for p in experts[0].iterdir())
        assert (o / "model.safetensors").read_bytes() == (experts[0] / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match=r"seed_dir \(.*g\): model_type 'gpt2' is not Llama-like"):
        branch(_gpt2(tmp_path / "g"), [tmp_path / "c"])
    with pytest.raises(ConfigError, match="appears twice"):
        branch(experts[0], [tmp_path / "d", tmp_path / "d"])
    with pytest.raises(ConfigError, match="already exists"):
        branch(experts[0], [tmp_path / "a"])
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


# ----- MoE fine-tuning --------------------------------------------------------------------------------------
def test_the_mixed_model_fine_tunes_through_the_training_loop_with_the_aux_loss_logged(experts, tmp_path):
    out = mix(experts[:2], tmp_path / "mixed", seed_dir=experts[2], include_seed_expert=True, top_k=2)
    model, tok = load_lm(out)
    router_before = model.model.layers[0].mlp.gate.weight.detach().clone()
    prompts = [" ".join(WORDS[i : i + 3]) for i in range(12)]
    responses = [" ".join(WORDS[i + 3 : i + 5]) for i in range(12)]
    data = SFTData(tok, prompts, responses, max_len=32)
    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup=1, log_every=1, ckpt_every=3, tensorboard=False)
    result = train(model, data, make_moe_sft_loss_fn(), cfg, tmp_path / "run", progress=False)
    assert result.steps == 3 and math.isfinite(result.final_loss)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert math.isfinite(row["loss"]) and math.isfinite(row["loss/aux"]) and row["loss/aux"] > 0
        assert row["loss"] == pytest.approx(row["loss/nll"] + 0.01 * row["loss/aux"], rel=1e-4)
        assert sum(row[f"router/usage_{i}"] for i in range(3)) == pytest.approx(1.0, rel=1e-5)
    assert not torch.equal(model.model.layers[0].mlp.gate.weight.detach(), router_before)  # the router learns
    with pytest.raises(ValueError, match="load-balancing loss form"):
        make_moe_sft_loss_fn(aux_form="switch")


# ----- routing variants -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("routing", "rule"), [("soft", "soft"), ("switch", "top1_p"), ("sample_top1", "top1_p")])
def test_routing_variants_match_a_hand_written_moe(experts, tmp_path, routing, rule):
    """soft: every expert by softmax weight; switch, and sample_top1 in evaluation: the argmax expert scaled by
    its probability."""
    out = mix(experts[:3], tmp_path / "mixed", top_k=2, router_seed=3)
    model = set_routing(_dense(out), routing)
    assert routing_of(model) == routing
    ref = _hand_reference(experts[:3], out, top_k=2)
    for block in ref.model.layers:
        block.mlp.rule = rule
    ids = _ids(4, 14, seed=6)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    got, want = _logits(model, ids, mask), _logits(ref, ids, mask)
    torch.testing.assert_close(got[mask.bool()], want[mask.bool()], rtol=0, atol=1e-5)
    assert (got - _logits(_dense(out), ids, mask)).abs().max() > 1e-2  # not the top-2 model


def test_soft_routing_exports_as_mixtral_with_every_expert_routed_and_switch_is_refused(experts, tmp_path):
    out = mix(experts[:3], tmp_path / "mixed", top_k=2, router_seed=1)
    soft = set_routing(_dense(out), "soft")
    check_exportable(soft)
    _, tok = load_lm(out)
    saved = save_lm(soft, tok, tmp_path / "soft")
    assert json.loads((saved / "config.json").read_text())["num_experts_per_tok"] == 3
    ids = _ids(3, 10, seed=2)
    torch.testing.assert_close(_logits(_dense(saved), ids), _logits(soft, ids), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="cannot express"):
        check_exportable(set_routing(_dense(out), "switch"))
    with pytest.raises(ValueError, match="unknown routing"):
        set_routing(_dense(out), "top3")


def test_sample_top1_draws_experts_by_router_probability_in_training():
    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5]]).expand(40000, 4)
    probs = torch.softmax(logits[0], -1)
    torch.manual_seed(0)
    weights, index = variant_scores(logits, "sample_top1", 1, training=True)
    share = torch.bincount(index[:, 0], minlength=4).float() / len(index)
    assert (share - probs).abs().max() < 0.01  # binomial sd at 40k draws is at most 0.0025
    torch.testing.assert_close(weights[:, 0], probs[index[:, 0]])
    _, greedy = variant_scores(logits, "sample_top1", 1, training=False)
    assert greedy.unique().tolist() == [0]


def test_switch_routing_trains_the_router_through_the_lm_loss_and_mixtral_top1_does_not(experts, tmp_path):
    """Switch scales the chosen expert by its probability, so the router gets a gradient from the LM loss alone;
    Mixtral's top-1 weight is renormalised to 1 and passes none (why switch is not exported as Mixtral top-1)."""
    out = mix(experts[:3], tmp_path / "mixed", top_k=1, router_seed=2, aux_loss_coef=0.0)  # the LM loss alone
    ids = _ids(2, 10, seed=3)
    grads = {}
    for routing in ("switch", "topk"):
        model = set_routing(_dense(out), routing)
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        grads[routing] = model.model.layers[0].mlp.gate.weight.grad
    assert grads["switch"].abs().max() > 1e-4
    assert grads["topk"] is None or grads["topk"].abs().max() < 1e-6 * grads["switch"].abs().max() + 1e-8  # v/v
