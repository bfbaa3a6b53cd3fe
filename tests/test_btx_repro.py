"""The BTX reproduction's parts against independent references: the synthetic domains' answers (re-derived by a
separate interpreter), active parameters (counted on real models), per-document scores and routed shares (Hugging
Face's own loss; lm.moe.expert_usage), the Branch-Train-Merge mixture (token by token with posterior weights),
and the reproduction end to end at a reduced tiny scale (resume, refusal of other settings)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from system2.btx import mix
from system2.btx.scoring import active_params, btm_scores, document_scores
from system2.lm.io import load_lm, save_lm
from system2.lm.logprobs import token_logprobs
from system2.lm.moe import expert_usage
from system2.lm.reversal_data import plain_lm_data
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.repro import btx as repro_btx
from system2.repro.reverse_arm import LlamaSize
from system2.runs import RunError
from system2.tasks.domains import DOMAINS, DomainsConfig, documents, fact_table, vocabulary, write_domains

CFG = DomainsConfig(train_docs=200, valid_docs=30, items=6, n_keys=40, n_values=12, seed=3)


# ----- the domains --------------------------------------------------------------------------------------------------
def _check_arith(doc: str) -> None:
    head, body = doc.removesuffix(" .").split(" : ")
    p = int(head.split()[1])
    for eq in body.split(" , "):
        x, op, y, _, z = eq.split()
        assert int(z) == {"+": int(x) + int(y), "-": int(x) - int(y), "*": int(x) * int(y)}[op] % p, doc


def _check_code(doc: str) -> None:
    """Re-run the program: a stack of dicts, innermost scope first; every print shows its variable's binding."""
    scopes: list[dict[str, str]] = [{}]
    words = doc.removesuffix(" .").split()
    i = 0
    while i < len(words):
        w = words[i]
        if w == "{":
            scopes.append({})
        elif w == "}":
            scopes.pop()
            assert scopes, doc
        elif w == "let":
            v, src = words[i + 1], words[i + 3]
            value = src if src.isdigit() else next(s[src] for s in reversed(scopes) if src in s)
            scopes[-1][v] = value
            i += 4
        elif w == "print":
            v, shown = words[i + 1], words[i + 2]
            assert shown == next(s[v] for s in reversed(scopes) if v in s), doc
            i += 3
        i += 1
    assert len(scopes) == 1, doc


def test_domain_documents_are_right_deterministic_and_distinct():
    table = fact_table(CFG)
    prints = 0
    for split in ("train", "valid"):
        for doc in documents(CFG, "arith", split):
            _check_arith(doc)
        for doc in documents(CFG, "code", split):
            _check_code(doc)
            prints += doc.count("print")
        for doc in documents(CFG, "facts", split):
            for fact in doc.removesuffix(" .").split(" . "):
                _, key, _, value = fact.split()
                assert table[key] == value  # the same table in training and validation
    assert prints > 100  # the checker saw real lookups
    assert documents(CFG, "code", "train") == documents(CFG, "code", "train")
    assert documents(CFG, "code", "train") != documents(dataclasses.replace(CFG, seed=4), "code", "train")
    assert set(documents(CFG, "arith", "valid")) != set(documents(CFG, "arith", "train")[:30])
    words = set(vocabulary(CFG))
    assert all(w in words for d in DOMAINS for doc in documents(CFG, d, "train") for w in doc.split())


def test_write_domains_writes_jsonl_corpora_once(tmp_path):
    paths = write_domains(CFG, tmp_path)
    lines = paths["facts"]["valid"].read_text().splitlines()
    assert [json.loads(x)["text"] for x in lines] == documents(CFG, "facts", "valid")
    stamp = paths["code"]["train"].stat().st_mtime_ns
    assert write_domains(CFG, tmp_path) == paths and paths["code"]["train"].stat().st_mtime_ns == stamp
    write_domains(dataclasses.replace(CFG, valid_docs=5), tmp_path)  # other settings: rewritten
    assert len(paths["facts"]["valid"].read_text().splitlines()) == 5


# ----- scoring ------------------------------------------------------------------------------------------------------
def _tiny(tmp_path: Path, seed: int) -> Path:
    tok = build_word_tokenizer(vocabulary(CFG), model_max_length=64)
    model = tiny_llama(tok, d_model=32, n_layers=2, n_heads=4, max_len=64, seed=seed, d_ff=48)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    return save_lm(model, tok, tmp_path / f"e{seed}")


@pytest.fixture(scope="module")
def experts(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("experts")
    return [_tiny(root, s) for s in range(3)]


def test_active_params_count_what_a_token_passes_through(experts, tmp_path):
    dense, _ = load_lm(experts[0])
    embedding = dense.config.vocab_size * dense.config.hidden_size
    assert active_params(dense.config) == sum(p.numel() for p in dense.parameters()) - embedding
    every = load_lm(mix(experts, tmp_path / "all", top_k=3))[0]  # every expert active: all parameters count
    assert active_params(every.config) == sum(p.numel() for p in every.parameters()) - embedding
    top2 = load_lm(mix(experts, tmp_path / "two", top_k=2))[0].config
    ffn = 3 * top2.hidden_size * top2.intermediate_size
    assert active_params(every.config) - active_params(top2) == top2.num_hidden_layers * ffn


def test_document_scores_match_the_models_own_loss_and_expert_usage(experts, tmp_path):
    texts = documents(CFG, "code", "valid")[:5] + documents(CFG, "arith", "valid")[:4]
    model, tok = load_lm(mix(experts, tmp_path / "mixed", top_k=2, router_seed=4, aux_loss_coef=0.0))  # loss: NLL
    rows = document_scores(model, tok, texts, max_len=64, batch_size=4)
    data = plain_lm_data(tok, texts, 64)
    for i, row in enumerate(rows):
        one = data.batch([i], 0)
        with torch.no_grad():
            out = model(**one, output_router_logits=True, use_cache=False)
        n = int((one["labels"][:, 1:] != -100).sum())
        assert row["tokens"] == n
        assert math.isclose(row["nll"], float(out.loss) * n, rel_tol=1e-5)
        usage, _ = expert_usage(out.router_logits, 2, 3, one["attention_mask"])
        torch.testing.assert_close(torch.tensor(row["usage"]), usage.mean(0), rtol=0, atol=1e-6)


def test_btm_ensemble_is_the_token_by_token_posterior_mixture(experts):
    texts = documents(CFG, "facts", "valid")[:3]
    rows = btm_scores(experts, texts, max_len=64)
    for i, text in enumerate(texts):
        per_token = []
        for path in experts:
            model, tok = load_lm(path)
            with torch.no_grad():
                logp, mask = token_logprobs(model, plain_lm_data(tok, [text], 64).batch([0], 0))
            per_token.append(logp[0][mask[0]].double())
        lp = torch.stack(per_token)  # [experts, tokens]
        total, prefix = 0.0, torch.zeros(len(experts), dtype=torch.float64)
        for t in range(lp.shape[1]):  # each token: the experts weighted by their posterior given the prefix
            w = torch.softmax(prefix, 0)
            total += math.log(float((w * lp[:, t].exp()).sum()))
            prefix += lp[:, t]
        assert math.isclose(rows[i]["nll"], -total, rel_tol=1e-6)  # float32 log-probs
        posterior = torch.tensor(rows[i]["usage"], dtype=torch.float64)
        torch.testing.assert_close(posterior, torch.softmax(prefix, 0), rtol=1e-4, atol=1e-6)


# ----- the reproduction ---------------------------------------------------------------------------------------------
def test_the_reproduction_runs_every_arm_resumes_and_refuses_other_settings(tmp_path, monkeypatch):
    domains = DomainsConfig(train_docs=40, valid_docs=6, items=3, n_keys=10, n_values=5)
    small = repro_btx.BTXScale(domains, LlamaSize(16, 1, 2), seed_steps=4, expert_steps=3, finetune_steps=2,
                               batch_size=8)  # fmt: skip
    monkeypatch.setitem(repro_btx.SCALES, "tiny", small)
    out = tmp_path / "btx"
    metrics = repro_btx.run("tiny", out)
    assert set(metrics["arms"]) == {"seed", *repro_btx.ARMS}
    report = (out / "report.md").read_text()
    assert "BTX beats Branch-Train-Merge" in report and "usage.png" in report and (out / "loss.png").is_file()
    budgets = {a: runs[0]["flops"] / metrics["arms"]["btx"][0]["flops"] for a, runs in metrics["arms"].items()}
    assert all(1 <= budgets[a] < 1.5 for a in ("dense", "btm", "upcycling"))  # BTX's compute, up to a step
    assert budgets["btx no-LB"] == 1 < budgets["btx soft"]
    stamp = (out / "seed0" / "dense" / "valid.parquet").stat().st_mtime_ns
    again = repro_btx.run("tiny", out)
    assert again["arms"] == metrics["arms"]
    assert (out / "seed0" / "dense" / "valid.parquet").stat().st_mtime_ns == stamp
    monkeypatch.setitem(repro_btx.SCALES, "tiny", dataclasses.replace(small, lr=1e-3))
    with pytest.raises(RunError, match="other settings"):
        repro_btx.run("tiny", out)


def test_paper_scale_prints_the_stage_commands(capsys):
    out = repro_btx.run("paper", Path("unused"))
    assert any("btx train" in c and "--domain math" in c for c in out["launch"])
    assert "system2.cli btx finetune" in capsys.readouterr().out
