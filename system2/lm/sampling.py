"""Sampling N completions per prompt from a causal LM, batched, seeded and cut at stop strings.

Backends behind one interface (``SampleConfig.backend``):

- ``"hf"``: Hugging Face ``generate`` on batches of ``batch_size`` rows (each prompt repeated ``n`` times,
  rows sorted by prompt length, left padding). Sampling is done by a logits processor that draws every
  token by inverse-CDF from a counter-based random number keyed by (seed, prompt index, sample index,
  step), so a sample depends only on the seed and its own prompt: the same seed gives the same samples
  for any ``batch_size`` and any batch composition (up to floating-point rounding of the logits, which
  can flip a draw that lands within ~1e-7 of a token boundary). ``temperature=0`` is greedy decoding.
- ``"vllm"``: vLLM on GPU machines (``pip install "system2[vllm]"``: vLLM 0.33.0, which brings torch 2.14.0
  and transformers 5.20.2); the model is given by its directory. vLLM is imported only here.
  Its random streams are vLLM's own, so its samples differ from the HF backend's for the same seed.

A completion is the generated text up to the first eos (removed) or up to and including the first stop
string, whichever comes first; the stop string is kept, so "Final answer:" as a stop would cut the answer
off, and answer-terminated formats should stop on eos. A row also ends at ``max_new_tokens`` or when the
sequence fills the model's context.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from system2.console import Progress
from system2.lm.encoding import prompt_token_ids
from system2.lm.io import context_length

BACKENDS = ("hf", "vllm")


@dataclass
class SampleConfig:
    """Settings of ``sample`` (completions of Hugging Face causal LMs); the from-scratch models of
    ``system2.nn`` decode with ``system2.nn.generation.DecodingConfig``."""

    n: int = 1
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    batch_size: int = 64  # rows (prompt x sample) per generate call
    backend: str = "hf"

    def validate(self) -> None:
        if not 1 <= self.n < 2**20 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("sampling needs 1 <= n < 2**20, max_new_tokens >= 1 and batch_size >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"sampling needs temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown sampling backend {self.backend!r}: use one of {', '.join(BACKENDS)}")


class Completion(NamedTuple):
    """A sampled completion and whether it was cut at ``max_new_tokens`` (no eos and no stop string sampled)."""

    text: str
    truncated: bool


def sample(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    cfg: SampleConfig,
    chat: bool = False,
    prompt_offset: int = 0,
    progress: bool = True,
    label: str = "sample",
) -> list[list[str]]:
    """The texts of ``sample_completions`` (a list per prompt, in prompt order)."""
    outs = sample_completions(model, tokenizer, prompts, cfg, chat, prompt_offset, progress, label)
    return [[c.text for c in row] for row in outs]


def sample_completions(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    cfg: SampleConfig,
    chat: bool = False,
    prompt_offset: int = 0,
    progress: bool = True,
    label: str = "sample",
    system: str | None = None,
) -> list[list[Completion]]:
    """``cfg.n`` completions for each prompt (a list per prompt, in prompt order), each with whether it was
    truncated at ``cfg.max_new_tokens`` (so no caller invents an eos the model never sampled). With ``chat`` each
    prompt is rendered as a user turn by the tokenizer's chat template, after the ``system`` turn when one is given.
    For the vLLM backend ``model`` is the model directory (or a model whose ``name_or_path`` is one). ``progress``
    shows the completions done under ``label`` (see ``system2.console.Progress``).

    ``prompt_offset`` is the index of ``prompts[0]`` in a longer list that was cut into slices (one per
    process): a prompt's random stream is keyed by its index in that list, so the slices' samples are those
    of the whole list sampled at once."""
    cfg.validate()
    if prompt_offset < 0:
        raise ValueError(f"prompt_offset must be >= 0, got {prompt_offset}")
    if not prompts:
        return []
    if cfg.backend == "vllm":
        with Progress(len(prompts) * cfg.n, label, enabled=progress) as bar:
            outs = _sample_vllm(model, tokenizer, prompts, cfg, chat, system)
            bar.update(len(prompts) * cfg.n)
        return outs
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: load it with load_lm(..., pad_with_eos=True)")
    ids = prompt_token_ids(tokenizer, prompts, chat, system)
    limit = context_length(model)
    too_long = [i for i, p in enumerate(ids) if len(p) + cfg.max_new_tokens > limit]
    if too_long:
        i, n = too_long[0], len(ids[too_long[0]])
        fix = f"lower max_new_tokens to {limit - n}" if n < limit else "shorten the prompt"
        raise ValueError(
            f"prompt {i} has {n} tokens: with max_new_tokens={cfg.max_new_tokens} it needs {n + cfg.max_new_tokens} "
            f"positions, more than the model's context ({limit}); {fix} ({len(too_long)} of {len(ids)} prompts are "
            "too long)"
        )
    rows = sorted(((i, j) for i in range(len(prompts)) for j in range(cfg.n)), key=lambda r: len(ids[r[0]]))
    out: list[list[Completion]] = [[Completion("", False)] * cfg.n for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        with Progress(len(rows), label, enabled=progress) as bar:
            for s in range(0, len(rows), cfg.batch_size):
                chunk = rows[s : s + cfg.batch_size]
                keys = [((prompt_offset + i) << 20) + j for i, j in chunk]
                done = _generate_batch(model, tokenizer, [ids[i] for i, _ in chunk], keys, cfg, limit)
                for (i, j), completion in zip(chunk, done, strict=True):
                    out[i][j] = completion
                bar.advance(len(chunk))
    finally:
        model.train(was_training)
    return out


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    return eos


@torch.no_grad()
def _generate_batch(
    model: Any, tokenizer: Any, prompt_ids: list[list[int]], row_ids: list[int], cfg: SampleConfig, limit: int
) -> list[Completion]:
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    device = next(model.parameters()).device
    width = max(len(p) for p in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for r, p in enumerate(prompt_ids):
        input_ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p) :] = 1
    caps = torch.tensor([min(cfg.max_new_tokens, limit - len(p)) for p in prompt_ids])
    eos = _eos_ids(model, tokenizer)
    gen_cfg = GenerationConfig(
        max_new_tokens=int(caps.max()),
        do_sample=False,
        num_beams=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos,
        use_cache=True,
        # explicit neutral values: generate fills unset ones from the checkpoint's generation_config.json
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
    )
    processors = LogitsProcessorList()
    if cfg.temperature > 0:
        keys = row_keys(cfg.seed, torch.tensor(row_ids, dtype=torch.long))
        processors.append(KeyedSampler(keys.to(device), width, cfg.temperature, cfg.top_p, int(caps.max())))
    stopper = StopCriteria(tokenizer, cfg.stop, width, caps.to(device), eos)
    seqs = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        generation_config=gen_cfg,
        logits_processor=processors,
        stopping_criteria=StoppingCriteriaList([stopper]),
    )
    return [Completion(stopper.completion(row), stopper.truncated(row)) for row in seqs[:, width:].tolist()]


# --- counter-based random numbers: splitmix64 in wrapping int64 arithmetic --------------------------------
_GAMMA = 0x9E3779B97F4A7C15 - 2**64
_M1 = 0xBF58476D1CE4E5B9 - 2**64
_M2 = 0x94D049BB133111EB - 2**64


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 values (``>>`` on torch int64 is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """The splitmix64 hash of int64 values (bit-exact with the reference on uint64)."""
    z = x + _GAMMA
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def row_keys(seed: int, row_ids: torch.Tensor) -> torch.Tensor:
    """One random-stream key per sampled row, from the seed and the row id ``prompt_index * 2**20 + j``
    (so sample j of a prompt is the same whatever ``n`` is)."""
    base = splitmix64(torch.tensor([seed], dtype=torch.long))
    return splitmix64(base + row_ids)


def uniforms(keys: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """A float64 uniform in [0, 1) per key for decoding step ``step`` (a tensor of steps broadcasts)."""
    return _shr(splitmix64(keys + step), 11).double() * 2.0**-53


class KeyedSampler:
    """A logits processor that samples the next token of each row with temperature and top-p from the
    row's own random stream, and leaves only that token possible (greedy selection then picks it). The uniforms of
    all ``steps`` decoding steps are drawn at once (the same values as step by step: ``uniforms(keys, step)``)."""

    def __init__(self, keys: torch.Tensor, prompt_width: int, temperature: float, top_p: float, steps: int) -> None:
        self.width, self.temperature, self.top_p = prompt_width, temperature, top_p
        self.u = uniforms(keys.unsqueeze(1), torch.arange(steps, device=keys.device).unsqueeze(0))  # [rows, steps]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        u = self.u[:, input_ids.shape[1] - self.width].to(scores.device)
        tokens = sample_tokens(scores, u, self.temperature, self.top_p)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens.unsqueeze(1), 0.0)


def sample_tokens(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Inverse-CDF sampling: one token per row of ``logits`` ``[B, V]`` from uniforms ``u`` ``[B]``.
    Top-p keeps the smallest set of most likely tokens whose mass reaches ``top_p`` (at least one)."""
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    order = None
    if top_p < 1.0:
        probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        keep = probs.cumsum(-1) - probs < top_p
        probs = probs * keep
    cdf = probs.cumsum(-1)
    target = (u * cdf[:, -1]).unsqueeze(1)
    idx = torch.searchsorted(cdf, target, right=True).clamp(max=probs.shape[1] - 1)
    idx = _skip_zero_mass(probs, idx)
    return (order.gather(1, idx) if order is not None else idx).squeeze(1)


def _skip_zero_mass(probs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Move an index that landed on a zero-probability token (only possible through rounding at the end
    of the CDF) back to the last token with mass."""
    p = probs.gather(1, idx)
    if bool((p > 0).all()):
        return idx
    positions = torch.arange(probs.shape[1], device=probs.device).expand_as(probs)
    last = torch.where(probs > 0, positions, -1).amax(1, keepdim=True)
    return torch.where(p > 0, idx, last)


class StopCriteria:
    """Per-row stopping: a stop string appears in the decoded completion, or the row reached its cap."""

    def __init__(self, tokenizer: Any, stop: list[str], prompt_width: int, caps: torch.Tensor, eos: list[int]):
        self.tok, self.stop, self.width, self.caps, self.eos = tokenizer, list(stop), prompt_width, caps, set(eos)
        self.last_chars = {s[-1] for s in self.stop}
        self.always = any(c.isspace() for c in self.last_chars)
        self.pieces: dict[int, str] = {}

    def _may_end_stop(self, token: int) -> bool:
        if self.always:
            return True
        if token not in self.pieces:
            self.pieces[token] = self.tok.decode([token])
        piece = self.pieces[token]
        return "\ufffd" in piece or any(c in piece for c in self.last_chars)

    def text(self, ids: list[int]) -> str:
        """Decoded completion before the first eos, special tokens removed."""
        for k, t in enumerate(ids):
            if t in self.eos:
                ids = ids[:k]
                break
        return self.tok.decode(ids, skip_special_tokens=True)

    def completion(self, ids: list[int]) -> str:
        """The final completion text: cut after the first stop string (kept)."""
        return cut_at_stop(self.text(ids), self.stop)

    def truncated(self, ids: list[int]) -> bool:
        """Whether the row ended at its cap: no eos sampled and no stop string in its text."""
        if any(t in self.eos for t in ids):
            return False
        text = self.text(ids)
        return not any(s in text for s in self.stop)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        gen = input_ids[:, self.width :]
        done = gen.shape[1] >= self.caps
        if self.stop and gen.shape[1]:
            last = gen[:, -1].tolist()
            for r, token in enumerate(last):
                if not done[r] and token not in self.eos and self._may_end_stop(token):
                    text = self.text(gen[r].tolist())
                    if any(s in text for s in self.stop):
                        done[r] = True
        return done


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to and including the earliest stop string (unchanged when none occurs)."""
    ends = [text.find(s) + len(s) for s in stop if s in text]
    return text[: min(ends)] if ends else text


# --- vLLM --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _vllm_engine(path: str, seed: int) -> Any:
    try:
        from vllm import LLM
    except ImportError as e:
        raise ImportError(
            "the vllm sampling backend needs vLLM on a GPU machine: pip install 'system2[vllm]' (vLLM 0.33.0), "
            "or use SampleConfig(backend='hf')"
        ) from e
    return LLM(model=path, seed=seed)


def _sample_vllm(
    model: Any, tokenizer: Any, prompts: list[str], cfg: SampleConfig, chat: bool, system: str | None
) -> list[list[Completion]]:
    path = model if isinstance(model, str | os.PathLike) else getattr(model, "name_or_path", "")
    if not path or not os.path.isdir(path):
        raise ValueError("the vllm backend needs the model's local directory (pass the path as `model`)")
    engine = _vllm_engine(str(path), cfg.seed)
    from vllm import SamplingParams

    params = SamplingParams(
        n=cfg.n,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_tokens=cfg.max_new_tokens,
        stop=list(cfg.stop) or None,
        include_stop_str_in_output=True,
        seed=cfg.seed,
    )
    # token ids, not text: vLLM would add special tokens again to a chat-rendered prompt
    ids = prompt_token_ids(tokenizer, prompts, chat, system)
    results = engine.generate([{"prompt_token_ids": p} for p in ids], params, use_tqdm=False)
    return [[Completion(cut_at_stop(o.text, cfg.stop), o.finish_reason == "length") for o in r.outputs]
            for r in results]  # fmt: skip
