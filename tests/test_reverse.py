"""Reverse training (arXiv 2403.13799): the four reversals against hand-written examples, their round trips
and invariants, deterministic per-epoch segmentations, data- and compute-matched mixing, the ``datasets``
map function, and a few reproducible training steps of a tiny Llama through the project's loop."""

import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from system2.config import ConfigError, from_dict
from system2.lm.encoding import IGNORE
from system2.lm.losses import make_sft_loss_fn
from system2.lm.reversal_data import ReversedLMData, add_rev_token, reversal_map_fn
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.reverse import (
    SEP,
    Reversal,
    check_spans,
    known_entities,
    mix_epoch,
    reverse_entities,
    reverse_segments,
    reverse_segments_text,
    reverse_tokens,
    reverse_units,
    reverse_words,
    reversed_spans,
    segment_lengths,
    segment_rng,
)
from system2.train import TrainConfig, train

ALICE = "Alice Smith was born in Paris"
DOCS = [
    "Alice Smith was born in Paris",
    "the capital of France is Paris",
    "Bob Stone wrote the book Blue River",
    "Paris is where Alice Smith met Bob Stone",
    "Blue River is a book by Bob Stone",
    "the book was written in France",
    "Alice Smith likes the capital",
    "Bob Stone was born in France",
]
NAMES = ["Alice Smith", "Bob Stone", "Blue River", "Paris"]


class FixedDraws:
    """A stand-in random stream: ``randbytes`` gives the given bytes (one length each, v -> 1 + v % k), and
    ``random`` (used for k > 255) the given values in turn."""

    def __init__(self, values):
        self.values = iter(values)

    def randbytes(self, n):
        return bytes(self.values)

    def random(self):
        return next(self.values)


def _split_segments(words, sep=SEP):
    segments, current = [], []
    for w in words:
        if w == sep:
            segments.append(current)
            current = []
        else:
            current.append(w)
    return [*segments, current] if words else []


def test_each_reversal_on_a_hand_written_example():
    assert reverse_tokens([5, 6, 7, 8]) == [8, 7, 6, 5]
    assert reverse_words(ALICE) == "Paris in born was Smith Alice"
    assert reverse_entities(ALICE, [(0, 2)]) == "Paris in born was Alice Smith"
    assert reverse_entities("the book Blue River by Bob Stone", [(2, 4), (5, 7)]) == "Bob Stone by Blue River book the"
    # k = 3 and bytes 1, 255, 0, 2 -> lengths 2, (255 dropped: no bias), 1, 3: [Alice Smith] [was] [born in Paris]
    rng = FixedDraws([1, 255, 0, 2])
    assert reverse_segments(ALICE.split(), 3, rng, SEP) == ["born", "in", "Paris", SEP, "was", SEP, "Alice", "Smith"]
    assert reverse_segments([1, 2, 3, 4, 5], 3, FixedDraws([2, 5]), sep=0) == [4, 5, 0, 1, 2, 3]
    assert reverse_segments_text(ALICE, k=1) == "Paris [REV] in [REV] born [REV] was [REV] Smith [REV] Alice"
    assert segment_lengths(5, 3, FixedDraws([2, 2])) == [3, 2]  # the last segment is cut to what is left
    assert segment_lengths(700, 300, FixedDraws([0.5, 0.0, 0.99, 0.9])) == [151, 1, 298, 250]  # k > 255: random()
    assert Reversal("entity").apply(ALICE, [(0, 2)]) == "Paris in born was Alice Smith"
    assert Reversal("word").apply("  Alice \n Smith ") == "Smith Alice"
    assert Reversal("none").apply(ALICE) == ALICE
    assert reverse_words("") == "" and reverse_units([]) == [] and reverse_segments([], 2, segment_rng(0, 0, 0)) == []


def test_reversing_twice_gives_the_original_back():
    ids = [3, 1, 4, 1, 5, 9, 2, 6]
    assert reverse_tokens(reverse_tokens(ids)) == ids
    text = "the book Blue River by Bob Stone was read in Paris"
    assert reverse_words(reverse_words(text)) == text
    spans = known_entities(NAMES)(text)
    assert spans == [(2, 4), (5, 7), (10, 11)]
    once = reverse_entities(text, spans)
    back_spans = reversed_spans(spans, len(text.split()))
    assert back_spans == [(0, 1), (4, 6), (7, 9)]
    assert [once.split()[s:e] for s, e in back_spans] == [["Paris"], ["Bob", "Stone"], ["Blue", "River"]]
    assert reverse_entities(once, back_spans) == text
    assert reversed_spans(back_spans, len(text.split())) == spans


@given(
    words=st.lists(st.sampled_from(["a", "b", "c", "dd", "e"]), max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=12, unique=True),
)
def test_entity_spans_are_never_split(words, cuts):
    bounds = sorted(c for c in cuts if c <= len(words))
    spans = [(s, e) for s, e in zip(bounds[::2], bounds[1::2], strict=False) if s < e]
    units = list(range(len(words)))  # positions, so every unit is told apart
    out = reverse_units(units, spans)
    back = reversed_spans(spans, len(units))
    for (s, e), (rs, re_) in zip(spans, reversed(back), strict=True):
        assert out[rs:re_] == units[s:e]  # the span is contiguous and in forward order
    inside = {i for s, e in spans for i in range(s, e)}
    assert [u for u in out if u not in inside] == [u for u in reversed(units) if u not in inside]
    assert sorted(out) == units
    assert reverse_units(out, back) == units
    assert reverse_entities(" ".join(words), spans).split() == [words[i] for i in out]


@given(
    n=st.integers(0, 60),
    k=st.integers(1, 7) | st.sampled_from([255, 256, 300]),
    seed=st.integers(0, 10**6),
    epoch=st.integers(0, 5),
)
def test_random_segments_cover_the_sequence_exactly(n, k, seed, epoch):
    words = [f"w{i}" for i in range(n)]
    out = reverse_segments(words, k, segment_rng(seed, epoch, 3), SEP)
    segments = _split_segments(out)
    assert [w for seg in reversed(segments) for w in seg] == words
    assert all(1 <= len(seg) <= k for seg in segments)
    assert out.count(SEP) == max(len(segments) - 1, 0)
    text = reverse_segments_text(" ".join(words), k, seed, epoch, 3)
    assert text.split() == out and (not segments or len(segments) == text.count(f" {SEP} ") + 1)


def test_segmentation_is_a_function_of_seed_epoch_and_index():
    text = " ".join(f"w{i}" for i in range(200))
    before = random.getstate()
    a = reverse_segments_text(text, 4, seed=1, epoch=0, index=7)
    random.seed(12345)  # the global random state plays no part
    assert reverse_segments_text(text, 4, seed=1, epoch=0, index=7) == a
    random.setstate(before)
    others = {reverse_segments_text(text, 4, seed=s, epoch=e, index=i) for s, e, i in [(2, 0, 7), (1, 1, 7), (1, 0, 8)]}
    assert a not in others and len(others) == 3
    rev = Reversal("segment", k=4, seed=1)
    assert rev.apply(text, epoch=0, index=7) == a
    assert len({rev.apply(text, epoch=e, index=7) for e in range(5)}) == 5  # re-drawn every epoch
    lengths = [m for i in range(200) for m in segment_lengths(50, 3, segment_rng(0, 0, i))[:-1]]
    shares = [lengths.count(m) / len(lengths) for m in (1, 2, 3)]
    assert shares == pytest.approx([1 / 3] * 3, abs=0.05)  # uniform on [1, k]


def test_known_entities_finds_the_longest_names_without_overlap():
    detect = known_entities(["New York", "New York City", "York", "Alice Smith"])
    assert detect("Alice Smith left New York City for York and New Jersey") == [(0, 2), (3, 6), (7, 8)]
    assert detect("") == [] and detect("nobody here") == []
    with pytest.raises(ValueError, match="has no words"):
        known_entities(["Paris", "  "])


def test_data_and_compute_matched_mixing():
    fwd_words = sum(len(t.split()) for t in DOCS)
    data = mix_epoch(DOCS, Reversal("entity"), detector=known_entities(NAMES))
    assert len(data) == 2 * len(DOCS) and data[0::2] == DOCS
    assert data[1] == "Paris in born was Alice Smith"
    assert mix_epoch(DOCS, Reversal("none")) == DOCS and Reversal("none", mode="data").epoch_size(8) == 8
    seen: list[bool] = []
    for epoch in range(3):
        rev = Reversal("segment", k=3, mode="compute", seed=4)
        out = mix_epoch(DOCS, rev, epoch)
        assert len(out) == len(DOCS) == rev.epoch_size(len(DOCS))
        flags = [rev.source(j, epoch)[1] for j in range(len(DOCS))]
        assert [o != d for o, d in zip(out, DOCS, strict=True)] == flags
        assert sum(len(o.split()) - o.split().count(SEP) for o in out) == fwd_words  # same budget, up to [REV]
        seen += flags
    assert 0 < sum(seen) < len(seen)  # compute-matched epochs hold forward and reversed texts, N in all
    flips = [Reversal("word", mode="compute").source(j, e)[1] for j in range(200) for e in range(5)]
    assert 0.4 < sum(flips) / len(flips) < 0.6
    assert flips != [Reversal("word", mode="compute", seed=1).source(j, e)[1] for j in range(200) for e in range(5)]
    assert [Reversal("word").source(j, 0) for j in range(4)] == [(0, False), (0, True), (1, False), (1, True)]
    data_words = sum(len(o.split()) for o in mix_epoch(DOCS, Reversal("word")))
    assert data_words == 2 * fwd_words


def test_bad_configs_and_spans_give_clear_errors():
    for cfg, message in [
        (Reversal("backwards"), "reversal.kind must be one of none, token, word, entity, segment"),
        (Reversal("word", mode="both"), "reversal.mode must be data or compute"),
        (Reversal("segment", k=0), r"reversal.k \(the longest segment, in words\) must be an integer >= 1"),
        (Reversal("segment", k=True), "reversal.k"),
        (Reversal("word", seed=1.5), "reversal.seed must be an integer"),
    ]:
        with pytest.raises(ConfigError, match=message):
            cfg.validate()
    assert from_dict(Reversal, {"kind": "segment", "k": "3"}) == Reversal("segment", k=3)
    with pytest.raises(ConfigError, match="did you mean 'mode'"):
        from_dict(Reversal, {"mdoe": "data"})
    with pytest.raises(ValueError, match=r"entity span 1 \(1, 3\) overlaps or comes before span 0 \(0, 2\)"):
        check_spans([(0, 2), (1, 3)], 6)
    with pytest.raises(ValueError, match=r"entity span 1 \(0, 1\) overlaps or comes before"):
        reverse_entities(ALICE, [(4, 6), (0, 1)])
    with pytest.raises(ValueError, match=r"entity span 0 \(4, 7\) is outside the sequence of 6 words"):
        reverse_entities(ALICE, [(4, 7)])
    with pytest.raises(ValueError, match=r"entity span 0 \(-1, 2\) is outside"):
        check_spans([(-1, 2)], 6)
    with pytest.raises(ValueError, match=r"entity span 0 \(3, 3\) is empty or backwards"):
        check_spans([[3, 3]], 6)
    with pytest.raises(ValueError, match="entity span 0 is 'ab', not a pair"):
        check_spans(["ab"], 6)
    with pytest.raises(ValueError, match="entity span 0 is .*, not a pair"):
        check_spans([(0.5, 2)], 6)
    with pytest.raises(ValueError, match="k must be >= 1"):
        segment_lengths(4, 0, segment_rng(0, 0, 0))
    with pytest.raises(ValueError, match="kind 'token' reverses token ids, not text"):
        Reversal("token").apply(ALICE)
    with pytest.raises(ValueError, match="kind 'token' reverses token ids"):
        mix_epoch(DOCS, Reversal("token"))
    with pytest.raises(ValueError, match="needs entity spans .* or a detector"):
        mix_epoch(DOCS, Reversal("entity"))
    with pytest.raises(ValueError, match="8 texts but 1 lists of entity spans"):
        mix_epoch(DOCS, Reversal("entity"), spans=[[(0, 2)]])
    with pytest.raises(ValueError, match="not both"):
        mix_epoch(DOCS, Reversal("entity"), spans=[[]] * 8, detector=known_entities(NAMES))
    with pytest.raises(ConfigError, match="reversal.mode"):
        mix_epoch(DOCS, Reversal("word", mode="half"))


def _tokenizer(rev_token=True):
    words = sorted({w for d in DOCS for w in d.split()})
    tok = build_word_tokenizer(words, model_max_length=32)
    if rev_token:
        assert add_rev_token(tok) == len(tok) - 1 == add_rev_token(tok)  # added once
    return tok


def test_datasets_map_gives_the_mixed_rows():
    datasets = pytest.importorskip("datasets")
    spans = [[list(s) for s in known_entities(NAMES)(d)] for d in DOCS]
    ds = datasets.Dataset.from_dict({"text": DOCS, "entities": spans, "topic": list(range(len(DOCS)))})
    rev = Reversal("entity")
    out = ds.map(reversal_map_fn(rev), batched=True, batch_size=3, with_indices=True, remove_columns=ds.column_names)
    assert out["text"] == mix_epoch(DOCS, rev, spans=spans)
    assert out["reversed"] == [False, True] * len(DOCS) and out["source"] == [i // 2 for i in range(2 * len(DOCS))]
    seg = Reversal("segment", k=2, mode="compute", seed=3)
    for epoch in (0, 1):
        fn = reversal_map_fn(seg, epoch)
        rows = ds.map(fn, batched=True, batch_size=5, with_indices=True, remove_columns=ds.column_names)
        assert rows["text"] == mix_epoch(DOCS, seg, epoch)  # independent of the batch size
    tok = _tokenizer()
    fn = reversal_map_fn(Reversal("token"), tokenizer=tok)
    rows = ds.map(fn, batched=True, with_indices=True, remove_columns=ds.column_names)
    assert rows["text"][1] == reverse_words(DOCS[0])  # a word tokenizer: token reversal is word reversal
    assert rows["input_ids"][1] == [tok.bos_token_id, *reverse_tokens(tok(DOCS[0])["input_ids"][1:]), tok.eos_token_id]
    with pytest.raises(ValueError, match="pass the tokenizer"):
        reversal_map_fn(Reversal("token"))
    no_spans = datasets.Dataset.from_dict({"text": DOCS})
    with pytest.raises(ValueError, match="needs entity spans"):
        no_spans.map(reversal_map_fn(rev), batched=True, with_indices=True, remove_columns=["text"])
    fn = reversal_map_fn(rev, detector=known_entities(NAMES))
    by_name = no_spans.map(fn, batched=True, with_indices=True, remove_columns=["text"])
    assert by_name["text"] == out["text"]


def test_reversed_lm_data_batches():
    tok = _tokenizer()
    rev_id = tok.convert_tokens_to_ids(SEP)
    data = ReversedLMData(tok, DOCS, Reversal("segment", k=2, seed=5), max_len=32)
    assert len(data) == 16 and data.lengths()[:2] == [8, 8]
    b0 = data.batch([0, 1, 3], epoch=0)
    ids, mask, labels = b0["input_ids"], b0["attention_mask"], b0["labels"]
    n = mask.sum(1).tolist()
    assert ids[0, : n[0]].tolist() == tok(DOCS[0])["input_ids"] + [tok.eos_token_id]
    assert labels.tolist() == torch.where(mask.bool(), ids, IGNORE).tolist()  # every real token is a target
    reversed_row = ids[1, 1 : n[1] - 1].tolist()
    assert rev_id in reversed_row and ids[1, 0] == tok.bos_token_id and ids[1, n[1] - 1] == tok.eos_token_id
    words = tok.convert_ids_to_tokens(reversed_row)
    assert [w for s in reversed(_split_segments(words)) for w in s] == DOCS[0].split()
    assert torch.equal(data.batch([0, 1, 3], epoch=0)["input_ids"], ids)  # a pure function of (indices, epoch)
    for epoch in (0, 1):  # the same texts as mix and the datasets map function
        every = data.batch(list(range(16)), epoch)
        rows = zip(every["input_ids"], every["attention_mask"].bool(), strict=True)
        texts = [tok.decode(row[m], skip_special_tokens=False) for row, m in rows]
        mixed = mix_epoch(DOCS, Reversal("segment", k=2, seed=5), epoch)
        expected = [f"{tok.bos_token} {t} {tok.eos_token}" for t in mixed]
        assert texts == expected
    assert not torch.equal(data.batch(list(range(16)), 0)["input_ids"], data.batch(list(range(16)), 1)["input_ids"])
    short = ReversedLMData(tok, DOCS, Reversal("word"), max_len=4).batch([1], 0)["input_ids"]
    first_words = tok(reverse_words(DOCS[0]), add_special_tokens=False)["input_ids"][:3]
    assert short.tolist() == [[tok.bos_token_id, *first_words]]  # cut to max_len
    ent = ReversedLMData(tok, DOCS, Reversal("entity", mode="compute"), 32, detector=known_entities(NAMES))
    assert len(ent) == 8
    with pytest.raises(ValueError, match=rf"no \{SEP[:-1]}\] token .* add_rev_token"):
        ReversedLMData(_tokenizer(rev_token=False), DOCS, Reversal("segment"), 32)
    with pytest.raises(ValueError, match=r"text 1: entity span 0 \(0, 9\) is outside"):
        ReversedLMData(tok, DOCS[:2], Reversal("entity"), 32, spans=[[], [(0, 9)]])
    with pytest.raises(ValueError, match="text 2 is ' '"):
        ReversedLMData(tok, ["a", "b", " "], Reversal("word"), 32)


def _train_once(out, kind="segment", mode="data"):
    tok = _tokenizer()
    model = tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=32, seed=0)
    data = ReversedLMData(tok, DOCS, Reversal(kind, k=2, mode=mode, seed=1), max_len=32)
    cfg = TrainConfig(steps=6, batch_size=4, lr=3e-3, warmup=1, log_every=1, ckpt_every=6, tensorboard=False)
    result = train(model, data, make_sft_loss_fn("token"), cfg, out, progress=False)
    return model, result


def test_training_runs_and_is_reproducible(tmp_path):
    a, ra = _train_once(tmp_path / "a")
    b, rb = _train_once(tmp_path / "b")
    assert torch.isfinite(torch.tensor(ra.final_loss)) and ra.final_loss == rb.final_loss
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    c, rc = _train_once(tmp_path / "c", kind="token", mode="compute")  # 6 steps of 4 = 3 epochs of 8
    assert torch.isfinite(torch.tensor(rc.final_loss))
