"""Running a trained planner: load it, and sample responses in slow, fast or auto mode.

Dualformer's modes need no new tokens (official ``rollout.py --prefix``, facebookresearch/dualformer;
docs/planning.md): the decoder starts with ``bos`` and the first token is forced: ``create`` (slow: a
search trace follows), ``plan`` (fast: the plan only), or nothing (auto: the model decides).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from system2.checkpoint import latest_checkpoint, load_model
from system2.console import Progress
from system2.nn.encdec import EncoderDecoder
from system2.nn.generation import DecodingConfig, generate
from system2.planning.data import PlanningExamples, encode_prompts, load_examples
from system2.planning.generate import read_vocab
from system2.planning.tokens import CREATE, PLAN, PlanningVocabulary
from system2.runs import require_kind

TRAIN_KIND = "planning-train"  # the kind recipes.train_planner records (recipes imports this module)

# how a response starts (the ``mode`` setting of planning eval): slow forces create, fast plan, auto nothing
DecodeMode = Literal["slow", "fast", "auto"]
MODE_PREFIX: dict[str, tuple[str, ...]] = {"slow": (CREATE,), "fast": (PLAN,), "auto": ()}

# The official rollouts' longest responses (facebookresearch/searchformer, docs/planning.md): 10,000 tokens on
# mazes and 11,000 on Sokoban with a search trace, 2,000 for a plan alone.
MAX_RESPONSE_TOKENS = {"maze": 10_000, "sokoban": 11_000}
MAX_PLAN_TOKENS = 2_000


def response_budget(env: str, mode: DecodeMode, longest: int) -> int:
    """Most new tokens per response: twice the longest A* trace + plan of the tasks decoded (at least 64), never
    more than the official rollouts allowed (fast mode: a plan's budget), so a split with a few very long
    Sokoban traces does not size every KV cache for them."""
    cap = MAX_PLAN_TOKENS if mode == "fast" else MAX_RESPONSE_TOKENS[env]
    return min(cap, max(64, 2 * longest + 2))


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model directory, a training run directory (its ``model/``, or while it trains its newest
    checkpoint) or a checkpoint step directory."""
    p = Path(path)
    if p.is_dir():
        require_kind(p, TRAIN_KIND, "the model")
    for cand in (p, p / "model"):
        if (cand / "config.json").is_file() and (cand / "model.safetensors").is_file():
            return cand
    newest = latest_checkpoint(p / "ckpt")
    if newest is not None:
        return newest
    raise FileNotFoundError(
        f"{p} holds no planner: pass a model directory (config.json + model.safetensors), a training run "
        "directory, or a checkpoint step directory"
    )


def load_planner(path: str | Path, device: str = "cpu") -> tuple[EncoderDecoder, PlanningVocabulary]:
    """The encoder-decoder and its vocabulary (``vocab.json``, saved inside every model directory)."""
    d = resolve_model_dir(path)
    model = load_model(d, map_location=device).to(device)
    if not (d / "vocab.json").is_file():
        raise FileNotFoundError(f"{d} has no vocab.json: a planner's model directory keeps its vocabulary")
    return model.eval(), read_vocab(d)  # type: ignore[return-value]


def check_compatible(vocab: PlanningVocabulary, examples: PlanningExamples) -> None:
    if vocab.tokens != examples.vocab.tokens:
        raise ValueError(
            "the model's vocabulary differs from the dataset's: evaluate on data of the same environment "
            "and grid size as the training data"
        )


def sample_responses(
    model: EncoderDecoder,
    examples: PlanningExamples,
    indices: Sequence[int],
    mode: DecodeMode,
    num_samples: int,
    sampling: DecodingConfig,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[list[list[str]]]:
    """``num_samples`` decoded responses (string tokens, from ``bos``) for every task in ``indices``.

    Prompts are decoded in chunks of at most ``batch_size`` sequences; one seeded generator drives all
    sampling, so results are reproducible. ``progress`` is advanced by the number of sequences decoded."""
    if mode not in MODE_PREFIX:
        raise ValueError(f"unknown mode {mode!r}: use slow, fast or auto")
    vocab = examples.vocab
    device = next(model.parameters()).device
    prefix = vocab.encode(MODE_PREFIX[mode])
    gen = torch.Generator(device=device).manual_seed(seed)
    per_chunk = max(1, batch_size // num_samples)
    out: list[list[list[str]]] = []
    for start in range(0, len(indices), per_chunk):
        chunk = list(indices[start : start + per_chunk])
        src, mask = encode_prompts(examples, chunk)
        ids = generate(
            model,
            src.to(device),
            mask.to(device),
            vocab.bos_id,
            vocab.eos_id,
            sampling,
            prefix=prefix,
            num_samples=num_samples,
            generator=gen,
        )
        for i in range(len(chunk)):
            out.append([vocab.decode(s) for s in ids[i * num_samples : (i + 1) * num_samples]])
        if progress is not None:
            progress.advance(len(chunk) * num_samples)
    return out


def respond(model: str | Path, data: str | Path, split: str, index: int, mode: DecodeMode) -> list[str]:
    """The planner's greedy response to task ``index`` of a dataset split (for pictures)."""
    planner, vocab = load_planner(model)
    examples = load_examples(data, split, limit=index + 1, spread=False)
    check_compatible(vocab, examples)
    row = examples.rows[index]
    sampling = DecodingConfig(response_budget(examples.env, mode, row["trace_len"] + row["plan_len"]))
    return sample_responses(planner, examples, [index], mode, 1, sampling)[0][0]
