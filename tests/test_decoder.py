"""The decoder-only LM: every position encoding decodes with its KV cache exactly as the full pass, left
padding changes nothing, models save and load, bad configs fail with the field's name, and it trains with
the project's training loop."""

import pytest
import torch

from system2.checkpoint import load_model, save_model
from system2.nn.cope import CoPEAttention
from system2.nn.decoder import POSITIONS, DecoderConfig, DecoderLM
from system2.nn.generation import DecodingConfig, generate_lm
from system2.nn.layers import Attention

VOCAB = 24
VARIANTS = [{"position": p} for p in POSITIONS] + [
    {"position": "cope", "cope_gates": "separate", "cope_tables": "head"},
    {"position": "cope", "cope_shared": True, "cope_scale_positions": True},
    {"position": "cope+rope", "cope_every": 2, "cope_shared": True},
]


def variant_id(v: dict) -> str:
    return ",".join(f"{k}={val}" for k, val in v.items())


def model(seed: int = 0, **options) -> DecoderLM:
    torch.manual_seed(seed)
    cfg = DecoderConfig(vocab_size=VOCAB, d_model=32, n_layers=3, n_heads=4, max_len=40, cope_max_pos=6, **options)
    m = DecoderLM(cfg)
    for attn in m.cope_layers():
        if attn[1].cope is not None:
            torch.nn.init.normal_(attn[1].cope.table)  # give the (zero-initialised) tables something to do
    return m.eval()


@pytest.mark.parametrize("options", VARIANTS, ids=variant_id)
def test_cached_decoding_equals_full_forward(options):
    m = model(**options)
    ids = torch.randint(2, VOCAB, (3, 11))
    with torch.no_grad():
        full = m(ids)
        state = m.start_decoding(3, 16)
        parts = [m(ids[:, :4], state=state)] + [m(ids[:, i : i + 1], state=state) for i in range(4, 11)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("options", VARIANTS[:5], ids=variant_id)
def test_generate_cached_uncached_and_alone_agree(options):
    """Left-padded batches decode as each prompt would alone, with and without the cache."""
    m = model(**options)
    prompts = [[3, 4, 5, 6], [7, 8], [9, 10, 11]]
    cfg = DecodingConfig(max_new_tokens=8)
    cached = generate_lm(m, prompts, eos_id=1, cfg=cfg)
    assert cached == generate_lm(m, prompts, eos_id=1, cfg=cfg, use_cache=False)
    assert cached == [generate_lm(m, [p], eos_id=1, cfg=cfg)[0] for p in prompts]
    assert all(out[: len(p)] == p for out, p in zip(cached, prompts, strict=True))
    sampled = DecodingConfig(max_new_tokens=8, temperature=1.0)
    a = generate_lm(m, prompts, 1, sampled, num_samples=2, generator=torch.Generator().manual_seed(4))
    b = generate_lm(m, prompts, 1, sampled, num_samples=2, generator=torch.Generator().manual_seed(4), use_cache=False)
    assert a == b and len(a) == 6


def test_layers_follow_the_config():
    m = model(position="cope+rope", cope_every=2, cope_shared=True)
    kinds = [type(layer.attn) for layer in m.layers]
    assert kinds == [Attention, CoPEAttention, Attention]
    assert all(layer.attn.rope is m.rope for layer in m.layers)
    shared = model(position="cope", cope_shared=True)
    owners = [layer.attn.cope is not None for layer in shared.layers]
    assert owners == [True, False, False]  # one table, owned by the first CoPE layer
    per_head = model(position="cope", cope_tables="head")
    assert per_head.layers[0].attn.cope.table.shape == (4, 8, 7)
    assert model(position="abs").abs_pos.weight.shape == (40, 32)


@pytest.mark.parametrize("options", [{"position": "cope", "cope_shared": True}, {"position": "abs"}], ids=variant_id)
def test_save_and_load_round_trip(tmp_path, options):
    m = model(**options)
    save_model(m, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert isinstance(loaded, DecoderLM) and loaded.config == m.config
    ids = torch.randint(2, VOCAB, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), m(ids))


def test_abs_positions_past_max_len_fail_clearly():
    m = model(position="abs")
    with pytest.raises(ValueError, match="raise DecoderConfig.max_len"):
        m(torch.randint(2, VOCAB, (1, 41)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"position": "alibi"}, "position='alibi' is not one of"),
        ({"d_model": 30}, "not divisible by n_heads"),
        ({"cope_tables": "model"}, "cope_tables must be"),
        ({"cope_gates": "queries"}, "cope_gates must be one of"),
        ({"cope_every": 2, "position": "cope"}, "position=cope\\+rope"),
        ({"cope_every": 9}, "cope_every must be in"),
        ({"cope_max_pos": 0}, "cope_max_pos must be >= 1"),
    ],
)
def test_bad_configs_name_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        DecoderConfig(vocab_size=VOCAB, **options)


def test_trains_with_the_training_loop(tmp_path):
    from system2.tasks import flipflop
    from system2.tasks.sequences import FreshExamples, TaskVocabulary, answer_loss
    from system2.train import TrainConfig, train

    cfg = flipflop.FlipFlopConfig(length=16)
    vocab = TaskVocabulary(flipflop.VOCAB)
    data = FreshExamples(vocab, lambda rng: flipflop.to_example(flipflop.sample(cfg, rng)), size=64, seed=0)
    torch.manual_seed(0)
    m = DecoderLM(DecoderConfig(vocab_size=len(vocab), d_model=16, n_layers=1, n_heads=2, max_len=17, cope_max_pos=4))
    tcfg = TrainConfig(steps=4, batch_size=8, warmup=1, ckpt_every=2, log_every=1, tensorboard=False)
    result = train(m, data, answer_loss, tcfg, tmp_path, progress=False)
    assert result.steps == 4 and torch.isfinite(torch.tensor(result.final_loss))
    assert m.layers[0].attn.cope.table.abs().sum() > 0  # the zero-initialised table learned something
    assert (tmp_path / "ckpt" / "latest").is_file()
