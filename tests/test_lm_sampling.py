"""Sampling: shapes, seeding independent of batching, greedy left-padded batches equal one-at-a-time
``generate``, stop strings, top-p, and the counter-based random numbers."""

import pytest
import torch

from system2.lm.sampling import (
    KeyedSampler,
    SampleConfig,
    cut_at_stop,
    row_keys,
    sample,
    sample_completions,
    sample_tokens,
    splitmix64,
    uniforms,
)
from system2.lm.tiny import build_word_tokenizer, tiny_llama

WORDS = ["Q:", *map(str, range(10)), "10", "20", "+", "-", "*", "=", "?", "|", ";", "Final", "answer:"]
PROMPTS = ["Q: 7 + 3 * 2 = ? |", "Q: 1 = ? |", "Q: 2 + 4 + 5 + 6 * 8 - 1 = ? |"]


@pytest.fixture(scope="module")
def lm():
    tok = build_word_tokenizer(WORDS, model_max_length=48)
    return tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=48, seed=0), tok


def test_shapes_and_seeding_do_not_depend_on_batching(lm):
    model, tok = lm
    cfg = SampleConfig(n=3, temperature=1.0, max_new_tokens=8, seed=7, batch_size=64)
    a = sample(model, tok, PROMPTS, cfg)
    assert [len(x) for x in a] == [3, 3, 3] and all(isinstance(s, str) for x in a for s in x)
    assert a == sample(model, tok, PROMPTS, SampleConfig(n=3, max_new_tokens=8, seed=7, batch_size=2))
    other = sample(model, tok, PROMPTS, SampleConfig(n=3, max_new_tokens=8, seed=8))
    assert other != a
    assert len({s for x in a for s in x}) > 5  # the n samples of a prompt differ from each other
    assert sample(model, tok, [], cfg) == []


def test_a_prompt_alone_gets_the_samples_it_gets_among_others(lm):
    model, tok = lm
    both = sample(model, tok, PROMPTS, SampleConfig(n=2, max_new_tokens=8, seed=3, batch_size=4))
    # the row key is (seed, prompt index, sample index): the same prompt at index 0 of another list
    first = sample(model, tok, PROMPTS[:1], SampleConfig(n=2, max_new_tokens=8, seed=3, batch_size=1))
    assert first[0] == both[0]
    # a later slice of the list, sampled with its offset (one process's share), gets the samples it gets
    # in the whole list
    rest = sample(model, tok, PROMPTS[1:], SampleConfig(n=2, max_new_tokens=8, seed=3, batch_size=3), prompt_offset=1)
    assert rest == both[1:]
    assert sample(model, tok, PROMPTS[1:], SampleConfig(n=2, max_new_tokens=8, seed=3)) != both[1:]


def test_greedy_left_padded_batch_equals_generate_one_at_a_time(lm):
    model, tok = lm
    cfg = SampleConfig(n=2, temperature=0.0, max_new_tokens=10, batch_size=64)
    got = sample(model, tok, PROMPTS, cfg)
    for prompt, outs in zip(PROMPTS, got, strict=True):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        ref = model.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id)
        new = ref[0, ids.shape[1] :].tolist()
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id)]
        assert outs == [tok.decode(new, skip_special_tokens=True)] * 2
        assert len(outs[0].split()) > 0


def test_stop_strings_cut_after_the_first_stop_and_keep_it(lm):
    model, tok = lm
    free = sample(model, tok, PROMPTS, SampleConfig(n=4, max_new_tokens=20, seed=1))
    words = [w for x in free for s in x for w in s.split()[1:]]
    stop = max(set(words), key=words.count)  # a word the model does produce
    cut = sample(model, tok, PROMPTS, SampleConfig(n=4, max_new_tokens=20, seed=1, stop=[stop, "never-made"]))
    hits = 0
    for full_row, cut_row in zip(free, cut, strict=True):
        for full, short in zip(full_row, cut_row, strict=True):
            assert short == cut_at_stop(full, [stop])
            hits += short != full
            if stop in full:
                assert short.endswith(stop) and short.count(stop) == 1
    assert hits > 0
    assert cut_at_stop("a ; b ; c", [";", "b"]) == "a ;" and cut_at_stop("abc", ["x"]) == "abc"


def test_bad_sampling_input(lm):
    model, tok = lm
    with pytest.raises(ValueError, match="more than the model's context .48.; shorten the prompt"):
        sample(model, tok, ["Q: " + "1 " * 60], SampleConfig())
    # a prompt that fits but leaves less room than max_new_tokens: refused before any compute, naming the fix
    with pytest.raises(ValueError, match=r"prompt 1 has 22 tokens: .* lower max_new_tokens to 26 \(1 of 2"):
        sample(model, tok, [PROMPTS[0], "Q: " + "1 " * 20], SampleConfig(max_new_tokens=30))
    with pytest.raises(ValueError, match="top_p"):
        sample(model, tok, PROMPTS, SampleConfig(top_p=0.0))
    with pytest.raises(ValueError, match="backend"):
        sample(model, tok, PROMPTS, SampleConfig(backend="tgi"))
    with pytest.raises(ValueError, match="chat template"):
        sample(model, tok, PROMPTS, SampleConfig(), chat=True)


def test_a_prompt_may_fill_the_context_exactly_but_not_more(lm):
    """Prompt + max_new_tokens up to the context generates (at most max_new_tokens); one more is refused, never
    silently cut short."""
    model, tok = lm
    long_prompt = "Q: " + "1 + " * 20 + "1 = ? |"  # 46 tokens with bos: 2 left of 48
    out = sample(model, tok, [long_prompt], SampleConfig(n=2, max_new_tokens=2, seed=0))
    assert all(len(tok(s, add_special_tokens=False)["input_ids"]) <= 2 for s in out[0])
    with pytest.raises(ValueError, match="lower max_new_tokens to 2"):
        sample(model, tok, [long_prompt], SampleConfig(n=2, max_new_tokens=3, seed=0))


def test_splitmix64_matches_the_reference():
    def ref(x: int) -> int:
        m = 2**64 - 1
        z = (x + 0x9E3779B97F4A7C15) & m
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        return z ^ (z >> 31)

    xs = [0, 1, 2, 12345, 2**40 + 7, 2**62, -1, -(2**63)]
    got = splitmix64(torch.tensor(xs, dtype=torch.long)).tolist()
    assert [g & (2**64 - 1) for g in got] == [ref(x & (2**64 - 1)) for x in xs]
    u = uniforms(torch.arange(20000, dtype=torch.long), 3)
    assert float(u.min()) >= 0 and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    # the sampler draws every step's uniforms at once: the very values of drawing them step by step
    keys = row_keys(7, torch.tensor([0, 1, (5 << 20) + 3], dtype=torch.long))
    table = KeyedSampler(keys, prompt_width=4, temperature=1.0, top_p=1.0, steps=6).u
    assert torch.equal(table, torch.stack([uniforms(keys, t) for t in range(6)], dim=1))


def test_inverse_cdf_sampling_follows_the_distribution_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(4000, 4)
    u = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000  # an even grid: counts are exact
    counts = torch.bincount(sample_tokens(logits, u, 1.0, 1.0), minlength=4)
    assert counts.tolist() == [2000, 1200, 600, 200]
    top = torch.bincount(sample_tokens(logits, u, 1.0, 0.75), minlength=4)
    assert top.tolist() == [2500, 1500, 0, 0]  # {0.5, 0.3} is the smallest set reaching 0.75, renormalised
    sharp = torch.bincount(sample_tokens(logits, u, 0.25, 1.0), minlength=4)
    assert sharp[0] > 3000


def test_chat_prompts_go_through_the_template(lm):
    model, _ = lm
    tok = build_word_tokenizer(WORDS, model_max_length=48)
    tok.chat_template = "{{ bos_token }}{% for m in messages %}Q: {{ m['content'] }} |{% endfor %}"
    cfg = SampleConfig(n=2, max_new_tokens=6, seed=4)
    chat = sample(model, tok, ["7 + 3 = ?", "1 = ?"], cfg, chat=True)
    assert chat == sample(model, tok, ["Q: 7 + 3 = ? |", "Q: 1 = ? |"], cfg)  # bos comes from the template only


def test_a_system_turn_comes_before_each_user_turn(lm):
    """``system`` renders as the template's first message, for every prompt; without a chat template it is refused."""
    from system2.lm.encoding import format_prompts

    model, _ = lm
    tok = build_word_tokenizer(WORDS, model_max_length=48)
    tok.chat_template = "{{ bos_token }}{% for m in messages %}Q: {{ m['content'] }} |{% endfor %}"
    cfg = SampleConfig(n=2, max_new_tokens=6, seed=4)
    with_system = sample_completions(model, tok, ["7 + 3 = ?", "1 = ?"], cfg, chat=True, system="Final answer:")
    rendered = sample_completions(model, tok, ["Q: Final answer: | Q: 7 + 3 = ? |", "Q: Final answer: | Q: 1 = ? |"],
                                  cfg)  # fmt: skip
    assert [[c.text for c in x] for x in with_system] == [[c.text for c in x] for x in rendered]
    with pytest.raises(ValueError, match="system turn needs chat=True"):
        format_prompts(tok, ["1 = ?"], chat=False, system="Final answer:")


def test_more_samples_extend_the_sample_set(lm):
    model, tok = lm
    four = sample(model, tok, PROMPTS, SampleConfig(n=4, max_new_tokens=6, seed=2))
    two = sample(model, tok, PROMPTS, SampleConfig(n=2, max_new_tokens=6, seed=2))
    assert [x[:2] for x in four] == two


class _FakeVLLM:
    """The slice of vLLM 0.33.0's interface the backend uses (``LLM(model, *, seed)``, the
    ``SamplingParams`` fields, ``LLM.generate(prompts, params, *, use_tqdm)``), keyword-strict as vLLM's
    msgspec structs are. Each completion echoes its prompt ids and runs on past the stop string."""

    calls: list = []

    class SamplingParams:
        FIELDS = {"n", "temperature", "top_p", "max_tokens", "stop", "include_stop_str_in_output", "seed"}

        def __init__(self, **kw):
            unknown = set(kw) - self.FIELDS
            if unknown:
                raise TypeError(f"unknown SamplingParams fields {unknown}")
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, model: str, *, seed: int = 0):
            self.model, self.seed = model, seed

        def generate(self, prompts, sampling_params, *, use_tqdm=True):
            from types import SimpleNamespace

            _FakeVLLM.calls.append((self.model, self.seed, prompts, sampling_params))
            return [
                SimpleNamespace(
                    outputs=[
                        SimpleNamespace(
                            text=f"{p['prompt_token_ids']}/{j} ; stop here", finish_reason="length" if j else "stop"
                        )  # vLLM's CompletionOutput fields
                        for j in range(sampling_params.n)
                    ]
                )  # fmt: skip
                for p in prompts
            ]


def test_vllm_backend_passes_token_ids_and_settings_and_cuts_at_stop(lm, tmp_path, monkeypatch):
    import sys
    import types

    import system2.lm.sampling as sampling
    from system2.lm.encoding import prompt_token_ids

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = _FakeVLLM.LLM, _FakeVLLM.SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", fake)
    sampling._vllm_engine.cache_clear()
    _, tok = lm
    cfg = SampleConfig(n=2, temperature=0.7, top_p=0.9, max_new_tokens=5, stop=["stop"], seed=3, backend="vllm")
    out = sample(str(tmp_path), tok, PROMPTS[:2], cfg)
    ids = prompt_token_ids(tok, PROMPTS[:2])
    assert out == [[f"{p}/{j} ; stop" for j in range(2)] for p in ids]  # cut after the stop string, kept
    model, seed, prompts, params = _FakeVLLM.calls[-1]
    assert (model, seed) == (str(tmp_path), 3) and prompts == [{"prompt_token_ids": p} for p in ids]
    assert (params.n, params.temperature, params.top_p, params.max_tokens) == (2, 0.7, 0.9, 5)
    assert params.stop == ["stop"] and params.include_stop_str_in_output and params.seed == 3
    with pytest.raises(ValueError, match="local directory"):
        sample(str(tmp_path / "missing"), tok, PROMPTS[:1], cfg)
    from system2.lm.sampling import sample_completions

    marked = sample_completions(str(tmp_path), tok, PROMPTS[:2], cfg)
    assert [[c.truncated for c in row] for row in marked] == [[False, True]] * 2  # vLLM's finish_reason "length"
    sampling._vllm_engine.cache_clear()
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed
    with pytest.raises(ImportError, match="pip install"):
        sample(str(tmp_path), tok, PROMPTS[:1], cfg)
    sampling._vllm_engine.cache_clear()


def test_completions_record_truncation_and_truncated_samples_get_no_eos(lm):
    """A completion cut at max_new_tokens is marked truncated (one that sampled eos or a stop string is not), and
    re-encoding it adds no eos the model never sampled."""
    from system2.lm.encoding import encode_prompt_response
    from system2.lm.sampling import sample_completions

    model, tok = lm
    cut = sample_completions(model, tok, PROMPTS, SampleConfig(n=4, max_new_tokens=1, seed=0, temperature=1.0))
    long = sample_completions(model, tok, PROMPTS, SampleConfig(n=4, max_new_tokens=20, seed=0, stop=[";"]))
    flat = [c for row in cut for c in row]
    assert any(c.truncated for c in flat) and all(c.truncated or c.text == "" for c in flat)  # one token: eos or cut
    finished = [c for row in long for c in row if not c.truncated]
    assert finished and all(c.text.endswith(";") or len(tok(c.text, add_special_tokens=False)["input_ids"]) < 20
                            for c in finished)  # fmt: skip
    same = sample(model, tok, PROMPTS, SampleConfig(n=4, max_new_tokens=20, seed=0, stop=[";"]))
    assert [[c.text for c in row] for row in long] == same
    texts = [row[0].text for row in cut]
    ends = [not row[0].truncated for row in cut]
    enc = encode_prompt_response(tok, PROMPTS, texts, 64, ends=ends)
    eos = tok.eos_token_id
    for i, end in enumerate(ends):
        real = enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist()
        assert (real[-1] == eos) == end
