"""The models behind a judge: one interface, four backends (``JudgeConfig.backend``).

- ``policy`` / ``hf``: a local causal LM (the policy itself, or another model directory) sampled with
  ``system2.lm.sampling``: seeded, so the same seed gives the same judgments for any batch size.
- ``http``: any OpenAI-compatible server (``vllm serve`` on GPUs, ``transformers serve`` on a CPU) through
  ``/v1/completions`` (raw prompt) or ``/v1/chat/completions`` (one user turn), with the standard library's ``urllib``.
  One request per judgment, each with its own seed derived from (seed, prompt index, judgment index) the way the
  local sampler keys its random streams; bounded retries with doubling backoff and a per-request timeout.
- ``reward_model``: a classifier head (``system2.selfimprove.orm``) that scores (instruction, response) directly,
  0..5 = 5 x P(good); it writes no judgment text.

A text backend has ``generate(prompts, n, seed) -> list[list[str]]`` (n texts per prompt, the judge's own output
only, never the prompt); a score backend has ``score(instructions, responses) -> list[float]``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import torch

from system2.judges.config import JudgeConfig
from system2.judges.prompts import MAX_SCORE
from system2.lm.io import context_length, load_lm
from system2.lm.sampling import SampleConfig, row_keys, sample

SERVER_HINT = "start one (`vllm serve MODEL --port P` on a GPU, `transformers serve MODEL_DIR --port P` on a CPU)"


@runtime_checkable
class TextBackend(Protocol):
    """A model that writes judgments."""

    def generate(self, prompts: Sequence[str], n: int, seed: int, offset: int = 0) -> list[list[str]]: ...


@runtime_checkable
class ScoreBackend(Protocol):
    """A model that scores responses directly on the judge's 0..5 scale."""

    def score(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]: ...


class JudgeServerError(ConnectionError):
    """The judge server could not be reached or gave no usable answer."""


class LocalBackend:
    """Judgments sampled from a loaded causal LM with the library's seeded sampler."""

    def __init__(
        self, model: Any, tokenizer: Any, cfg: JudgeConfig, progress: bool = False, sampler: str = "hf"
    ) -> None:
        self.model, self.tokenizer, self.cfg, self.progress, self.sampler = model, tokenizer, cfg, progress, sampler

    def generate(self, prompts: Sequence[str], n: int, seed: int, offset: int = 0) -> list[list[str]]:
        """``n`` judgments per prompt, the completions only (the prompt is never part of the text); ``offset``: the
        index of ``prompts[0]`` in a longer list cut into slices (one per process), as in ``sample``."""
        cfg = SampleConfig(n=n, temperature=self.cfg.temperature, top_p=self.cfg.top_p, seed=seed,
                           max_new_tokens=self.cfg.max_new_tokens, batch_size=self.cfg.batch_size,
                           backend=self.sampler)  # fmt: skip
        return sample(self.model, self.tokenizer, list(prompts), cfg, chat=self.cfg.chat, prompt_offset=offset,
                      progress=self.progress, label="judge")  # fmt: skip


class RewardModelBackend:
    """Direct scores from a reward-model head: ``MAX_SCORE`` x P(good | instruction, response)."""

    def __init__(self, model: Any, tokenizer: Any, cfg: JudgeConfig) -> None:
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg

    def score(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        from system2.selfimprove.orm import score_solutions

        if not instructions:
            return []
        probs = score_solutions(self.model, self.tokenizer, list(instructions), list(responses),
                                context_length(self.model, self.tokenizer), batch_size=self.cfg.batch_size,
                                progress=False, chat=self.cfg.chat)  # fmt: skip
        return [MAX_SCORE * p for p in probs]


def request_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of one remote judgment: the local sampler's stream key for (seed, prompt, sample), cut to 31 bits
    (what every server accepts)."""
    key = row_keys(seed, torch.tensor([(prompt_index << 20) + sample_index], dtype=torch.long))
    return int(key[0]) & 0x7FFFFFFF


class HTTPBackend:
    """Judgments from an OpenAI-compatible server (``cfg.model`` is its base URL)."""

    def __init__(self, cfg: JudgeConfig) -> None:
        self.cfg = cfg
        self.url = cfg.model.rstrip("/").removesuffix("/v1")
        self.path = "/v1/completions" if cfg.api == "completions" else "/v1/chat/completions"

    def generate(self, prompts: Sequence[str], n: int, seed: int, offset: int = 0) -> list[list[str]]:
        """``n`` judgments per prompt, one request each (at most ``cfg.concurrency`` in flight); results in order;
        ``offset``: as in ``LocalBackend.generate`` (request seeds keyed by the prompt's index in the whole list)."""
        jobs = [(i, j) for i in range(len(prompts)) for j in range(n)]
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            texts = list(pool.map(lambda ij: self.complete(prompts[ij[0]], request_seed(seed, offset + ij[0], ij[1])),
                                  jobs))  # fmt: skip
        return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]

    def complete(self, prompt: str, seed: int) -> str:
        """One judgment of ``prompt`` sampled with ``seed``."""
        body: dict[str, Any] = {"max_tokens": self.cfg.max_new_tokens, "temperature": self.cfg.temperature,
                                "top_p": self.cfg.top_p, "seed": seed}  # fmt: skip
        if self.cfg.served_model:
            body["model"] = self.cfg.served_model
        if self.cfg.api == "completions":
            body["prompt"] = prompt
        else:
            body["messages"] = [{"role": "user", "content": prompt}]
        answer = self.post(body)
        try:
            choice = answer["choices"][0]
            text = choice["text"] if self.cfg.api == "completions" else choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeServerError(
                f"judge server {self.url}{self.path} answered without choices[0]: {str(answer)[:300]} (is it an "
                "OpenAI-compatible server? check judge.api)"
            ) from None
        return text or ""

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON; connection errors, timeouts, 5xx, 408 and 429 are retried ``cfg.retries`` times."""
        where = f"{self.url}{self.path}"
        data = json.dumps(body).encode()
        reason = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(min(self.cfg.backoff * 2 ** (attempt - 1), 30.0))
            request = urllib.request.Request(where, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.timeout) as r:
                    return json.loads(r.read().decode())
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:300]
                if e.code not in (408, 429) and e.code < 500:
                    raise JudgeServerError(f"judge server {where} refused the request (HTTP {e.code}): {detail} "
                                           "(check judge.served_model and judge.api)") from None  # fmt: skip
                reason = f"HTTP {e.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                reason = str(getattr(e, "reason", e)) or type(e).__name__
            except json.JSONDecodeError:
                reason = "the answer is not JSON"
        raise JudgeServerError(
            f"judge server {where} did not answer after {self.cfg.retries + 1} attempts ({reason}): {SERVER_HINT}, "
            f"or point judge.model at a running server (timeout {self.cfg.timeout} s per request)"
        )


def make_backend(
    cfg: JudgeConfig, policy: tuple[Any, Any] | None = None, progress: bool = False, sampler: str = "hf"
) -> TextBackend | ScoreBackend:
    """The backend ``cfg`` names; ``policy``: the loaded (model, tokenizer) the ``policy`` backend judges with;
    ``progress`` shows local judging; ``sampler``: the local backends' sampler (hf, or vllm on GPU machines)."""
    cfg.validate()
    if cfg.backend == "policy":
        if policy is None:
            raise ValueError("judge.backend=policy needs the policy: pass policy=(model, tokenizer)")
        return LocalBackend(*policy, cfg, progress, sampler)
    if cfg.backend == "hf":
        return LocalBackend(*load_lm(cfg.model, device=cfg.device, pad_with_eos=True), cfg, progress, sampler)
    if cfg.backend == "reward_model":
        from system2.selfimprove.orm import load_orm

        model, tokenizer = load_orm(cfg.model)
        return RewardModelBackend(model.to(cfg.device), tokenizer, cfg)
    return HTTPBackend(cfg)
