"""Reverse training on a causal LM (arXiv 2403.13799): the ``[REV]`` token, a batched ``datasets.map``
function, and the data the one training loop reads (``system2.train.TrainData``). The transforms and the
data-/compute-matched mixing are in ``system2/reverse.py``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from system2.lm.encoding import collate
from system2.reverse import (
    SEP,
    TOKEN_NEEDS_IDS,
    EntityDetector,
    Reversal,
    check_spans,
    entity_spans,
    epoch_texts,
    reverse_tokens,
)


def add_rev_token(tokenizer: Any) -> int:
    """Add ``[REV]`` to a Hugging Face tokenizer as a special token (kept whole, never split) and return its
    id. The model must then grow its embeddings: ``model.resize_token_embeddings(len(tokenizer))``."""
    tokenizer.add_tokens([SEP], special_tokens=True)
    return rev_token_id(tokenizer)


def rev_token_id(tokenizer: Any) -> int:
    """The id of ``[REV]`` in ``tokenizer``; a ValueError when the tokenizer does not keep it whole."""
    tid = tokenizer.convert_tokens_to_ids(SEP)
    if tid is None or tid == tokenizer.unk_token_id or tid not in tokenizer(f"a {SEP} b")["input_ids"]:
        raise ValueError(
            f"the tokenizer has no {SEP} token for segment reversal: call add_rev_token(tokenizer), then "
            "model.resize_token_embeddings(len(tokenizer))"
        )
    return tid


def _check_tokenizer(tokenizer: Any, reversal: Reversal, pad: bool) -> None:
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token: each document ends with one")
    if pad and tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: set tokenizer.pad_token = tokenizer.eos_token")
    if reversal.kind == "segment":
        rev_token_id(tokenizer)


def _encode(
    tokenizer: Any,
    reversal: Reversal,
    texts: Sequence[str],
    spans: Sequence[Any] | None,
    indices: Sequence[int],
    rows: Sequence[tuple[int, bool]],
    epoch: int,
) -> tuple[list[str], list[list[int]]]:
    """The text and token ids (``<bos>`` when the tokenizer has one, the content, ``<eos>``) of each row
    (position in ``texts``, reversed?); ``indices`` are the texts' indices in the corpus."""
    if reversal.kind == "token":
        fwd = tokenizer([texts[p] for p, _ in rows], add_special_tokens=False)["input_ids"]
        ids = [reverse_tokens(x) if rev else x for x, (_, rev) in zip(fwd, rows, strict=True)]
        out = [tokenizer.decode(x) if rev else texts[p] for x, (p, rev) in zip(ids, rows, strict=True)]
    else:
        out = epoch_texts(reversal, texts, spans, indices, rows, epoch)
        ids = tokenizer(out, add_special_tokens=False)["input_ids"]
    head = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    eos = tokenizer.eos_token_id
    return out, [[*head, *x, eos] for x in ids]


def reversal_map_fn(
    reversal: Reversal,
    epoch: int = 0,
    detector: EntityDetector | None = None,
    tokenizer: Any = None,
    text_key: str = "text",
    entities_key: str = "entities",
) -> Callable[[Any, list[int]], dict[str, list]]:
    """A batched ``datasets`` map function that turns rows of texts into the rows of one epoch (``mix_epoch``):

        ds.map(reversal_map_fn(rev, epoch), batched=True, with_indices=True, remove_columns=ds.column_names)

    Rows give ``text_key`` and, for entity reversal without a detector, ``entities_key`` (a list of [start,
    end] word spans). Output columns: ``text_key``, ``reversed`` (bool) and ``source`` (the input row's
    index); with a ``tokenizer`` also ``input_ids`` (as ``ReversedLMData`` encodes them), which kind token
    requires. The row count changes, hence ``remove_columns``; map once per epoch to re-draw segments."""
    reversal.validate()
    if tokenizer is None and reversal.kind == "token":
        raise ValueError(f"{TOKEN_NEEDS_IDS}; pass the tokenizer")
    if tokenizer is not None:
        _check_tokenizer(tokenizer, reversal, pad=False)

    def fn(batch: Any, indices: list[int]) -> dict[str, list]:
        texts = batch[text_key]
        spans = None
        if reversal.kind == "entity":
            given = batch[entities_key] if detector is None and entities_key in batch else None
            spans = entity_spans(reversal, texts, given, detector)
        rows = reversal.rows(indices, epoch)
        out: dict[str, list] = {"reversed": [rev for _, rev in rows], "source": [indices[p] for p, _ in rows]}
        if tokenizer is None:
            out[text_key] = epoch_texts(reversal, texts, spans, indices, rows, epoch)
        else:
            out[text_key], out["input_ids"] = _encode(tokenizer, reversal, texts, spans, indices, rows, epoch)
        return out

    return fn


class ReversedLMData:
    """Causal-LM pretraining on documents with reverse training, as ``system2.train.train`` reads data.

    Example j of an epoch is ``reversal.source(j, epoch)``: its text, reversed for that epoch (segments
    re-drawn each epoch), tokenized as ``<bos>`` (when the tokenizer has one) + text + ``<eos>`` and cut to
    ``max_len`` tokens; labels cover every real token (-100 on padding only). Texts are transformed and
    tokenized in ``batch``, so a 100 MB corpus is held once, as text; ``lengths()`` tokenizes it once more
    for length-grouped batching. Segment reversal needs ``add_rev_token(tokenizer)`` (then resize the
    model's embeddings)."""

    def __init__(
        self,
        tokenizer: Any,
        texts: Sequence[str],
        reversal: Reversal,
        max_len: int,
        spans: Sequence[Sequence[Sequence[int]]] | None = None,
        detector: EntityDetector | None = None,
    ) -> None:
        reversal.validate()
        if not texts:
            raise ValueError("reverse-training data is empty")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()), None)
        if bad is not None:
            raise ValueError(f"text {bad} is {texts[bad]!r}: every example needs some words")
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 (bos/eos and a token), got {max_len}")
        _check_tokenizer(tokenizer, reversal, pad=True)
        self.tokenizer, self.texts, self.reversal, self.max_len = tokenizer, list(texts), reversal, max_len
        self.spans = entity_spans(reversal, self.texts, spans, detector)
        if self.spans is not None:
            checked = []
            for i, (text, s) in enumerate(zip(self.texts, self.spans, strict=True)):
                try:
                    checked.append(check_spans(s, len(text.split())))
                except ValueError as e:
                    raise ValueError(f"text {i}: {e}") from None
            self.spans = checked
        self._lengths: list[int] | None = None

    def __len__(self) -> int:
        return self.reversal.epoch_size(len(self.texts))

    def lengths(self) -> list[int]:
        """Token count of each example of an epoch (the forward text's, with bos/eos, at most ``max_len``)."""
        if self._lengths is None:
            extra = 1 + (self.tokenizer.bos_token_id is not None)
            fwd: list[int] = []
            for start in range(0, len(self.texts), 1024):
                ids = self.tokenizer(self.texts[start : start + 1024], add_special_tokens=False)["input_ids"]
                fwd += [min(len(x) + extra, self.max_len) for x in ids]
            self._lengths = [fwd[self.reversal.source(j, 0)[0]] for j in range(len(self))]
        return self._lengths

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        sources = [self.reversal.source(j, epoch) for j in indices]
        texts = [self.texts[i] for i, _ in sources]
        spans = None if self.spans is None else [self.spans[i] for i, _ in sources]
        rows = [(p, rev) for p, (_, rev) in enumerate(sources)]
        _, ids = _encode(self.tokenizer, self.reversal, texts, spans, [i for i, _ in sources], rows, epoch)
        seqs = [x[: self.max_len] for x in ids]
        return collate([[] for _ in seqs], seqs, self.tokenizer.pad_token_id)


def plain_lm_data(tokenizer: Any, texts: Sequence[str], max_len: int) -> ReversedLMData:
    """Causal-LM data on whole documents with no reversal (labels on every token): pretraining and continued
    training on a corpus, and per-document scoring."""
    return ReversedLMData(tokenizer, texts, Reversal(), max_len)
