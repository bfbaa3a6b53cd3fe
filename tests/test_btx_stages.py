"""The BTX stages (``system2.btx.stages``, ``system2 btx ...``) end to end on a tiny seed and three tiny corpora:
what each stage writes, that reruns skip finished work, that bad settings and empty domains are refused before
any compute, experts trained elsewhere, and routing variants that Mixtral cannot express."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from system2.btx.stages import (
    BTXConfig,
    Domain,
    MixSettings,
    final_dir,
    load_finetuned,
    mixed_dir,
    run_branch,
    run_evaluate,
    run_finetune,
    run_mix,
    run_train,
)
from system2.cli import app
from system2.config import ConfigError, to_dict
from system2.lm.io import load_lm, save_lm
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.runs import RunError, write_parquet
from system2.train import TrainConfig

WORDS = [f"{c}{i}" for c in "abc" for i in range(12)]


def _docs(letter: str, n: int, seed: int) -> list[str]:
    """Documents of one domain: words of its own letter in a fixed cycle, so each domain has its own statistics."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start = rng.randrange(12)
        out.append(" ".join(f"{letter}{(start + 3 * j) % 12}" for j in range(rng.randint(4, 10))))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("btx")
    tok = build_word_tokenizer(WORDS, model_max_length=16)
    save_lm(tiny_llama(tok, d_model=32, n_layers=2, n_heads=4, max_len=16, seed=0, d_ff=64), tok, root / "seed")
    files = {"seed": root / "seed"}
    (root / "a.txt").write_text("\n".join(_docs("a", 40, 1)) + "\n")  # the three corpus formats
    (root / "b.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in _docs("b", 40, 2)))
    write_parquet(root / "c.parquet", [{"text": t} for t in _docs("c", 40, 3)])
    for letter in "abc":
        (root / f"{letter}_valid.txt").write_text("\n".join(_docs(letter, 8, 10)) + "\n")
        files[letter] = root / {"a": "a.txt", "b": "b.jsonl", "c": "c.parquet"}[letter]
    return files


def _config(world: dict[str, Path], out: Path, **kwargs) -> BTXConfig:
    steps = TrainConfig(steps=8, batch_size=8, lr=1e-2, warmup=1, ckpt_every=4, log_every=2, tensorboard=False)
    domains = [Domain(name=f"dom_{c}", corpus=str(world[c]), valid=str(world[c].parent / f"{c}_valid.txt"))
               for c in "abc"]  # fmt: skip
    cfg = BTXConfig(seed=str(world["seed"]), domains=domains, out=str(out), max_len=16, expert_train=steps,
                    mix=MixSettings(router_seed=1), finetune=dataclasses.replace(steps, steps=6),
                    eval_batch_size=16)  # fmt: skip
    return dataclasses.replace(cfg, **kwargs)


def _finetuned(cfg: BTXConfig) -> Path:
    """Every stage up to the fine-tuned mix."""
    run_branch(cfg)
    run_train(cfg, progress=False)
    run_mix(cfg)
    return run_finetune(cfg, progress=False)


def _mtime(path: Path) -> float:
    return (path / "model.safetensors").stat().st_mtime_ns


def test_stages_write_experts_a_mixtral_mix_and_a_finetuned_model_and_reruns_skip(world, tmp_path):
    cfg = _config(world, tmp_path / "run")
    inits = run_branch(cfg)
    assert [p.parent.name for p in inits] == ["dom_a", "dom_b", "dom_c"]
    experts = run_train(cfg, progress=False)
    seed_model, _ = load_lm(world["seed"])
    weights = [load_lm(p)[0].model.layers[0].mlp.up_proj.weight for p in experts]
    assert all(not torch.equal(w, seed_model.model.layers[0].mlp.up_proj.weight) for w in weights)
    assert not torch.equal(weights[0], weights[1])  # trained apart, on different data
    mixed = run_mix(cfg)
    model, _ = load_lm(mixed)
    assert type(model).__name__ == "MixtralForCausalLM" and model.config.num_local_experts == 3
    for e, w in enumerate(weights):  # expert e's FFN is domain e's, unchanged
        w1_w3 = model.model.layers[0].mlp.experts.gate_up_proj[e]
        torch.testing.assert_close(w1_w3[64:], w, rtol=0, atol=0)
    final = run_finetune(cfg, progress=False)
    metrics = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
    assert any("router/usage_0" in m and "loss/aux" in m for m in metrics)

    result = run_evaluate(cfg)
    assert set(result["loss"]) == {"dom_a", "dom_b", "dom_c"}
    assert json.loads((tmp_path / "run" / "eval" / "finetune.json").read_text()) == result
    seed_result = run_evaluate(cfg, world["seed"])
    assert result["mean"] < seed_result["mean"] - 0.5  # the experts and the mix learned the domains

    stamps = [_mtime(p) for p in (*experts, mixed, final)]
    run_branch(cfg)
    run_train(cfg, progress=False)
    run_mix(cfg)
    run_finetune(cfg, progress=False)
    assert [_mtime(p) for p in (*experts, mixed, final)] == stamps  # nothing redone

    with pytest.raises(RunError, match="other settings"):
        run_mix(dataclasses.replace(cfg, mix=MixSettings(router_seed=2)))


def test_each_expert_trains_on_its_own_as_independent_jobs(world, tmp_path):
    cfg = _config(world, tmp_path / "run")
    run_branch(cfg)
    (only,) = run_train(cfg, domain="dom_b", progress=False)
    assert only == tmp_path / "run" / "experts" / "dom_b" / "model"
    assert not (tmp_path / "run" / "experts" / "dom_a" / "model").exists()
    with pytest.raises(ConfigError, match="system2 btx train --domain dom_a"):
        run_mix(cfg)
    with pytest.raises(ConfigError, match="no domain 'dom_z'.*dom_a, dom_b, dom_c"):
        run_train(cfg, domain="dom_z")


def test_bad_input_is_refused_before_any_compute(world, tmp_path):
    (tmp_path / "blank.txt").write_text("\n  \n")
    empty = _config(world, tmp_path / "run")
    empty.domains[1] = Domain(name="dom_b", corpus=str(tmp_path / "blank.txt"))
    with pytest.raises(ConfigError, match=r"domain dom_b: .*blank.txt holds no documents"):
        run_branch(empty)
    assert not (tmp_path / "run" / "experts").exists()
    cases = [
        ({"domains": []}, "list the domains"),
        ({"domains": [Domain(name="x", corpus=str(world["a"]))] * 2}, "appears twice"),
        ({"domains": [Domain(name="x", corpus=str(tmp_path / "nope.txt"))]}, r"domains\[0\].corpus"),
        ({"domains": [Domain(name="../x", corpus=str(world["a"]))]}, "plain directory name"),
        ({"routing": "top3"}, "routing must be one of"),
        ({"mix": MixSettings(router_init="hidden")}, "router_init"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message):
            dataclasses.replace(_config(world, tmp_path / "other"), **change).validate()
    gpt2 = tmp_path / "gpt2"
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = build_word_tokenizer(WORDS, model_max_length=16)
    save_lm(GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2)), tok, gpt2)
    with pytest.raises(ConfigError, match="seed_dir"):
        run_branch(_config(world, tmp_path / "g", seed=str(gpt2)))
    assert not (tmp_path / "g" / "experts").exists()


def test_an_expert_trained_elsewhere_joins_the_mix_without_branch_or_train(world, tmp_path):
    outside = tmp_path / "outside"
    model, tok = load_lm(world["seed"])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    save_lm(model, tok, outside)  # any Llama-style training's checkpoint directory
    cfg = _config(world, tmp_path / "run")
    cfg.domains[2] = dataclasses.replace(cfg.domains[2], expert=str(outside))
    assert len(run_branch(cfg)) == 2
    assert len(run_train(cfg, progress=False)) == 2
    mixed, _ = load_lm(run_mix(cfg))
    theirs = model.model.layers[1].mlp.down_proj.weight
    torch.testing.assert_close(mixed.model.layers[1].mlp.experts.down_proj[2], theirs, rtol=0, atol=0)


def test_switch_routing_finetunes_and_reloads_with_its_routing(world, tmp_path):
    cfg = _config(world, tmp_path / "run", routing="switch")
    final = _finetuned(cfg)
    config = json.loads((final / "config.json").read_text())
    assert config["system2_routing"] == "switch" and config["num_experts_per_tok"] == 1
    model, tok = load_finetuned(final)
    plain, _ = load_lm(final)  # from_pretrained alone: Mixtral top-1 with weight 1
    ids = tok(["a1 a4 a7 a10"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        gap = (model(input_ids=ids).logits - plain(input_ids=ids).logits).abs().max()
    assert gap > 1e-3
    assert mixed_dir(cfg).is_dir() and final == final_dir(cfg)


def test_the_cli_runs_every_stage_from_one_config(world, tmp_path):
    cfg = _config(world, tmp_path / "run")
    path = tmp_path / "btx.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    runner = CliRunner()
    result = runner.invoke(app, ["btx", "run", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "dom_a:" in result.output and "mean:" in result.output
    result = runner.invoke(app, ["btx", "train", "--config", str(path), "--domain", "dom_q"])
    assert result.exit_code == 2 and "no domain 'dom_q'" in result.output
    result = runner.invoke(app, ["btx", "mix", "--config", str(path), "mix.top_k=1"])
    assert result.exit_code == 2 and "other settings" in result.output


def test_sampled_routing_finetunes_to_the_same_model_whatever_ran_before(world, tmp_path):
    cfg = _config(world, tmp_path / "a", routing="sample_top1")
    first = _finetuned(cfg)
    trained = [dataclasses.replace(d, expert=str(tmp_path / "a" / "experts" / d.name / "model")) for d in cfg.domains]
    again = dataclasses.replace(cfg, out=str(tmp_path / "b"), domains=trained)
    torch.rand(1000)  # another history of the global generator
    run_mix(again)
    second = run_finetune(again, progress=False)
    a, b = load_lm(first)[0].state_dict(), load_lm(second)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_process_gloo_moe_finetune_equals_one_process(world, tmp_path, run_two_processes):
    """torchrun with 2 CPU processes x 4 documents gives the fine-tuned mix of 1 process x 8 (DDP averages, the loss
    is a mean over the step's tokens on both processes); the load-balancing loss is off here because it is a
    statistic of each process's own batch."""
    experts = [dataclasses.replace(d, expert=str(world["seed"])) for d in _config(world, tmp_path).domains]
    configs = {}
    for name, batch in (("two", 4), ("one", 8)):
        cfg = _config(world, tmp_path / name, domains=experts, mix=MixSettings(router_seed=5, aux_coef=0.0))
        cfg = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, batch_size=batch, steps=3))
        run_mix(cfg)
        configs[name] = cfg
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    run_two_processes("ddp_btx.py", [tmp_path / "two.yaml"], tmp_path / "two" / "finetune" / "done")
    one = run_finetune(configs["one"], progress=False)
    a, b = load_lm(one)[0].state_dict(), load_lm(final_dir(configs["two"]))[0].state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4)  # Adam moves a weight +-lr where its gradient ~ 0
    assert not torch.equal(
        a["model.layers.0.mlp.gate.weight"],
        load_lm(mixed_dir(configs["one"]))[0].state_dict()["model.layers.0.mlp.gate.weight"],
    )  # the routers trained


def test_the_paper_recipe_runs_end_to_end_on_a_tiny_seed_and_corpora(world, tmp_path):
    """configs/btx/paper.yaml with its paths and sizes made tiny, through the very commands its comments list."""
    recipe = Path(__file__).resolve().parents[1] / "configs" / "btx" / "paper.yaml"
    settings = yaml.safe_load(recipe.read_text())
    settings.update(seed=str(world["seed"]), out=str(tmp_path / "run"), max_len=16)
    for domain, letter in zip(settings["domains"], "abc", strict=True):
        domain.update(corpus=str(world[letter]), valid=str(world[letter].parent / f"{letter}_valid.txt"), steps=4)
    for key in ("expert_train", "finetune"):
        settings[key].update(steps=4, batch_size=4, grad_accum=1, warmup=1, ckpt_every=2, log_every=1)
    tiny = tmp_path / "paper_tiny.yaml"
    tiny.write_text(yaml.safe_dump(settings))
    runner = CliRunner()
    lines = [x.removeprefix("# Run: ") for x in recipe.read_text().splitlines() if x.startswith("# Run: ")]
    assert len(lines) == 7
    for line in lines:
        args = line.split(" system2.cli ", 1)[-1].removeprefix("system2 ").replace(str(recipe.relative_to(
            recipe.parents[2])), str(tiny)).split()  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (line, result.output)
    mixed = json.loads((tmp_path / "run" / "mixed" / "config.json").read_text())
    assert mixed["num_local_experts"] == 4 and mixed["num_experts_per_tok"] == 2  # 3 domains + the seed's FFN
    assert "mean:" in result.output
