"""The HTTP judge backend against a real OpenAI-compatible server: ``transformers serve`` serving a tiny model that the
test saves, started on a free loopback port and always stopped; and a clear, quick error when no server is there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from system2.judges.backends import HTTPBackend, JudgeServerError, LocalBackend
from system2.judges.config import JudgeConfig
from system2.judges.pointwise import Judge
from system2.lm.io import load_lm, save_lm
from system2.lm.tiny import build_word_tokenizer, tiny_llama

pytest.importorskip("uvicorn", reason="transformers serve needs the dev extra (fastapi, uvicorn, openai)")
pytest.importorskip("fastapi", reason="transformers serve needs the dev extra (fastapi, uvicorn, openai)")

WORDS = ["JUDGE:", "|", "->", "Score:", *"012345", "good", "bad", "ok", "LIST", "EVEN"]
STARTUP_S = 90  # deadline for the server to answer /health


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg(url: str, **kw: object) -> JudgeConfig:
    base = {"backend": "http", "model": url, "template": "compact", "max_new_tokens": 6, "judgments_per_response": 2,
            "timeout": 30.0, "retries": 1, "backoff": 0.1}  # fmt: skip
    return JudgeConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URL, model directory) of `transformers serve` on a loopback port, serving a tiny saved Llama."""
    tok = build_word_tokenizer(WORDS, model_max_length=64)
    model = tiny_llama(tok, d_model=32, n_layers=1, n_heads=2, max_len=64)
    model.generation_config.do_sample = True  # the server samples only when the checkpoint says so
    path = save_lm(model, tok, tmp_path_factory.mktemp("served") / "model")
    port = _free_port()
    cli = Path(sys.executable).parent / "transformers"
    log = (path.parent / "serve.log").open("w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([str(cli), "serve", str(path), "--host", "127.0.0.1", "--port", str(port), "--device",
                             "cpu", "--format", "quiet"], stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited ({proc.returncode}): {(path.parent / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not ready in {STARTUP_S} s: {(path.parent / 'serve.log').read_text()}")
            time.sleep(0.25)
        yield url, path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def test_http_judge_equals_the_local_judge_greedily(served: tuple[str, Path]) -> None:
    url, path = served
    prompts = ["LIST 4 EVEN", "LIST 2"], ["good Score: 5", "bad"]
    remote = Judge.from_config(_cfg(url + "/v1/", temperature=0.0, concurrency=2))
    assert isinstance(remote.backend, HTTPBackend) and remote.backend.url == url
    local_cfg = _cfg("", backend="hf", model=str(path), temperature=0.0)
    local = Judge(local_cfg, LocalBackend(*load_lm(path), local_cfg))
    got, want = remote.score(*prompts), local.score(*prompts)
    assert got == want and all(len(s.judgments) == 2 and s.judgments[0] for s in got), (got, want)


def test_http_judge_passes_seeds_through(served: tuple[str, Path]) -> None:
    url, _ = served
    judge = Judge.from_config(_cfg(url, temperature=1.0, top_p=1.0, seed=5, concurrency=1, judgments_per_response=3))
    first = judge.score(["LIST 4 EVEN"], ["good"])[0].judgments
    assert judge.score(["LIST 4 EVEN"], ["good"])[0].judgments == first
    assert len(set(first)) > 1  # three different request seeds: three different samples
    assert judge.score(["LIST 4 EVEN"], ["good"], seed=6)[0].judgments != first


def test_http_judge_reports_a_refused_request_at_once(served: tuple[str, Path]) -> None:
    url, _ = served
    judge = Judge.from_config(_cfg(url, served_model="no-such-model", retries=3, backoff=5.0))
    start = time.monotonic()
    with pytest.raises(JudgeServerError, match=r"refused the request \(HTTP 400\).*judge\.served_model"):
        judge.score(["LIST 4 EVEN"], ["good"])
    assert time.monotonic() - start < 5  # a 4xx is not retried


def test_http_judge_names_the_url_and_the_fix_when_no_server_listens() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    judge = Judge.from_config(_cfg(url, timeout=0.5, retries=2, backoff=0.05, concurrency=1))
    start = time.monotonic()
    with pytest.raises(JudgeServerError) as err:
        judge.score(["LIST 4 EVEN"], ["good"])
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert f"{url}/v1/completions" in text and "after 3 attempts" in text
    assert "vllm serve" in text and "transformers serve" in text and "judge.model" in text
