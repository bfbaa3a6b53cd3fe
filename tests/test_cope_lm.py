"""CoPE's language-modelling recipe (docs/cope.md, "Language modelling"): corpora, training windows, evaluation
paired across context lengths, resume, the paper recipe end to end on a tiny model and corpus, and the
reproduction through the command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from system2.checkpoint import load_model
from system2.cli import app
from system2.config import ConfigError, load_config
from system2.lm.corpus import corpus_digest, join_rows, read_documents, stdlib_sources
from system2.lm.windows import ByteTokens, WindowData, chunk_nll, encode_documents, eval_chunks, unigram_nll
from system2.nn.decoder import DecoderConfig
from system2.repro import cope_lm
from system2.repro.cope_lm_arm import CopeLMConfig, document_results, evaluate_arm, prepare, train_arm
from system2.runs import write_parquet
from system2.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = DecoderConfig(vocab_size=0, d_model=16, n_layers=1, n_heads=2, ffn_hidden=32, max_len=0, cope_max_pos=4)


def tiny_train(steps: int = 4, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=4, lr=3e-3, warmup=1, ckpt_every=2, log_every=1, tensorboard=False,
                       **kw)  # fmt: skip


def code_corpus(root: Path, files: int = 10) -> Path:
    """Small source files with nested structure, one document each."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        body = "".join(f"def f{i}_{j}(x):\n    if x > {j}:\n        return (x + {i}) * {j}\n    return x\n\n"
                       for j in range(6))  # fmt: skip
        (root / f"mod{i:02d}.py").write_text(body)
    return root


# --- corpora -------------------------------------------------------------------------------------------------------


def test_read_documents_files_rows_and_articles(tmp_path):
    code_corpus(tmp_path / "src", 3)
    (tmp_path / "src" / "empty.py").write_text("  \n")
    docs = read_documents(str(tmp_path / "src"), whole_files=True)
    assert [Path(n).name for n, _ in docs] == ["mod00.py", "mod01.py", "mod02.py"]  # sorted, blank left out
    assert read_documents(str(tmp_path / "src" / "*.py"), whole_files=True) == docs  # a glob gives the same
    rows = [" = Alpha = \n", " a line \n", " = = Part = = \n", "more\n", " = Beta = \n", "b"]
    assert join_rows(rows, "^ = [^=]") == [" = Alpha = \n a line \n = = Part = = \nmore\n", " = Beta = \nb\n"]
    write_parquet(tmp_path / "wiki.parquet", [{"text": r} for r in rows])
    articles = read_documents(str(tmp_path / "wiki.parquet"), whole_files=False, doc_start="^ = [^=]")
    assert [t for _, t in articles] == join_rows(rows, "^ = [^=]")
    assert corpus_digest(articles) == corpus_digest([("other names", t) for _, t in articles])
    assert corpus_digest(articles) != corpus_digest(articles[:1])


def test_stdlib_corpus_is_sorted_and_leaves_out_tests():
    files = stdlib_sources()
    assert files == sorted(files) and len(files) > 100
    assert not any(p.name.startswith("test_") and "test" in p.parts for p in files)
    assert any(p.name == "argparse.py" for p in files)


# --- windows and paired evaluation -----------------------------------------------------------------------------------


def test_training_windows_cover_the_stream_and_shift_by_epoch():
    stream = np.arange(100)
    data = WindowData(stream, context=8, seed=3)
    assert len(data) == (100 - 1 - 8) // 8
    first = data.batch([0, 2], epoch=0)
    assert first["ids"].tolist() == [list(range(0, 9)), list(range(16, 25))] and bool(first["answer_mask"].all())
    shifted = data.batch([len(data) - 1], epoch=1)["ids"][0]
    s = data.shift(1)
    assert shifted.tolist() == list(range(s + 8 * (len(data) - 1), s + 8 * len(data) + 1))
    assert data.shift(1) == WindowData(stream, 8, seed=3).shift(1)  # a pure function of (seed, epoch)
    assert int(shifted[-1]) < 100


class Bigram(torch.nn.Module):
    """Logits from the current token only: every context length must give the same NLL."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids)


def test_every_length_scores_the_same_targets():
    tok = ByteTokens()
    docs = encode_documents(tok, ["abcdefgh" * 5, "xy" * 30, "short"])
    chunks, owner = eval_chunks(docs, 16)
    assert owner.tolist() == [0, 0, 1, 1, 1]  # 41 and 61 tokens: 2 and 3 chunks of 16 targets; "short" none
    assert chunks[0, 0] == tok.doc_id and chunks[1, 0] == chunks[0, -1]  # consecutive, never across documents
    assert eval_chunks(docs, 16, max_chunks=1)[1].tolist() == [0, 1]
    model = Bigram(tok.vocab_size)
    by_length = [chunk_nll(model, chunks, w, batch_tokens=20) for w in (4, 8, 16)]
    np.testing.assert_allclose(by_length[0], by_length[1], rtol=1e-6)
    np.testing.assert_allclose(by_length[0], by_length[2], rtol=1e-6)
    want = torch.nn.functional.cross_entropy(model(torch.tensor(chunks[:, :-1])).transpose(1, 2),
                                             torch.tensor(chunks[:, 1:]), reduction="none").sum(1)  # fmt: skip
    np.testing.assert_allclose(by_length[0], want.detach().numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="does not divide"):
        chunk_nll(model, chunks, 5)
    assert unigram_nll(np.array([1, 1, 2]), np.array([1]), 3) == pytest.approx(-np.log(3 / 6))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="eval_factors must start at 1"):
        CopeLMConfig(out="x", eval_factors=[1, 3, 4]).validate()
    with pytest.raises(ConfigError, match="model.max_len=100"):
        CopeLMConfig(out="x", model=DecoderConfig(position="abs", max_len=100)).validate()
    with pytest.raises(ConfigError, match="set out=DIR"):
        CopeLMConfig().validate()


# --- training, resume, the paper recipe ------------------------------------------------------------------------------


def test_resumed_arm_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, capsys):
    import shutil

    corpus = code_corpus(tmp_path / "src")
    cfg = CopeLMConfig(out=str(tmp_path / "arm"), corpus=str(corpus), holdout_every=3, context=16, model=TINY_MODEL,
                       train=tiny_train(4))  # fmt: skip
    train_arm(cfg, progress=False)
    whole = load_model(tmp_path / "arm" / "model")
    # a crash after the step-2 checkpoint: the final model and the step-4 checkpoint are gone
    shutil.rmtree(tmp_path / "arm" / "model")
    shutil.rmtree(tmp_path / "arm" / "ckpt" / "step-00000004")
    (tmp_path / "arm" / "ckpt" / "latest").unlink()
    capsys.readouterr()
    train_arm(cfg, progress=False)
    assert "(step 2)" in capsys.readouterr().out  # resumed, not retrained
    resumed = load_model(tmp_path / "arm" / "model")
    for (name, p), q in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    log = [json.loads(line)["step"] for line in (tmp_path / "arm" / "metrics.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4]  # each step logged once
    resumed = cfg
    result = evaluate_arm(resumed)
    rows = document_results(resumed.out)
    assert result["documents"] == len(rows) == 4 and set(result["nll"]) == {"1", "2", "4"}
    assert all(r["tokens"] == 2 * 64 for r in rows)  # eval_chunks 2 of 4T = 64 tokens


def test_paper_recipes_load_and_match_the_paper_scales():
    for name, scale in (("wikitext103_paper", "paper"), ("code_paper", "paper-code")):
        cfg = load_config(CopeLMConfig, ROOT / "configs" / "cope" / "lm" / f"{name}.yaml")
        assert replace(cfg, out="") == cope_lm.SCALES[scale].arm
        assert cfg.context == 512 and cfg.longest == 2048


def test_paper_recipe_runs_end_to_end_on_a_tiny_model(tmp_path):
    """The Wikitext-103 recipe's code path (Parquet rows joined into articles, a Hugging Face tokenizer, separate
    held-out files) through the command line, on a tiny model and a corpus written here."""
    from system2.lm.tiny import build_word_tokenizer

    words = [f"w{i}" for i in range(30)]
    rng = np.random.default_rng(0)

    def article(title: str) -> list[str]:
        lines = [f" = {title} = \n"]
        for _ in range(6):
            lines.append(" ".join(rng.choice(words, 12)) + " .\n")
        return lines

    (tmp_path / "wiki").mkdir()
    for split, n in (("train", 12), ("validation", 4)):
        rows = [r for i in range(n) for r in article(f"T{i}")]
        write_parquet(tmp_path / "wiki" / f"{split}-00000-of-00001.parquet", [{"text": r} for r in rows])
    build_word_tokenizer([*words, ".", "=", *(f"T{i}" for i in range(12))], 4096).save_pretrained(tmp_path / "tok")
    out = tmp_path / "arm"
    args = ["repro", "cope-lm-arm", "--config", str(ROOT / "configs/cope/lm/wikitext103_paper.yaml"), "--out",
            str(out), f"corpus={tmp_path}/wiki/train-*.parquet", f"eval_corpus={tmp_path}/wiki/validation-*.parquet",
            f"tokenizer={tmp_path}/tok", "context=8", "model.d_model=16", "model.n_layers=1", "model.n_heads=2",
            "model.cope_max_pos=4", "train.steps=3", "train.batch_size=2", "train.grad_accum=1", "train.warmup=1",
            "train.ckpt_every=3", "train.log_every=1", "train.tensorboard=false", "eval_batch_tokens=64"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "held-out perplexity: 1T" in result.output
    info = json.loads((out / "corpus.json").read_text())
    assert info["train_documents"] == 12 and info["held_out_documents"] == 4 and info["tokenizer"].endswith("tok")
    assert len(document_results(out)) == 4 and (out / "model" / "model.safetensors").is_file()


def test_repro_cope_lm_runs_end_to_end(tmp_path, monkeypatch):
    """A micro scale through the command line: three arms, the report with its claims and plot."""
    corpus = code_corpus(tmp_path / "src", 12)
    arm = CopeLMConfig(corpus=str(corpus), holdout_every=3, context=8, model=TINY_MODEL, train=tiny_train(3))
    monkeypatch.setitem(cope_lm.SCALES, "micro", cope_lm.CopeLMScale(arm, seeds=1))
    out = tmp_path / "repro"
    result = CliRunner().invoke(app, ["repro", "cope-lm", "--scale", "micro", "--out", str(out), "arm.eval_chunks=1"])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "at T, vs RoPE" in report and "T to 4T, vs RoPE" in report and (out / "perplexity.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["claims"]) == 3 and metrics["metrics"]["corpus"]["train_sha256"]
    assert json.loads((out / "runs" / "cope-seed0" / "run.json").read_text())  # the setting reached every arm
    assert all(r["tokens"] == 32 for r in document_results(out / "runs" / "abs-seed0"))  # one chunk of 4T


def test_prepare_holds_out_every_kth_document(tmp_path):
    corpus = code_corpus(tmp_path / "src", 9)
    data = prepare(CopeLMConfig(out="x", corpus=str(corpus), holdout_every=3, context=8))
    assert [Path(n).name for n in data.eval_names] == ["mod00.py", "mod03.py", "mod06.py"]
    assert data.info["train_documents"] == 6 and data.train.dtype == np.uint16
