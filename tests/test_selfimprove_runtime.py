"""Every loop's runtime settings: the prompt format (raw, the tokenizer's chat template, or a template with
{question}) reaches sampling, training and the DPO reference alike; dtype=bfloat16 samples in bf16 while the
reference keeps the policy's float32 + autocast; bad settings fail before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_arithmetic_world

from system2.config import ConfigError
from system2.lm.io import load_lm, save_lm
from system2.lm.logprobs import reference_logprobs
from system2.runs import read_parquet
from system2.selfimprove.irpo import IRPOConfig, run_irpo
from system2.selfimprove.ppo import PPOConfig
from system2.selfimprove.sft import SFTConfig
from system2.train import TrainConfig

COMMON = {"max_len": 64, "max_new_tokens": 24}
TEMPLATE = "{% for m in messages %}[USER] {{ m['content'] }} {% endfor %}[ASSISTANT]"


def _train(steps: int, lr: float = 3e-3) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=8, lr=lr, warmup=1, ckpt_every=steps, log_every=2, tensorboard=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("world")
    world = tiny_arithmetic_world(root, 16, 4, steps=60, batch=8, **COMMON)
    # the same model with a chat template (the tiny word tokenizer knows no [USER]/[ASSISTANT]: they read as <unk>,
    # which is enough to tell the rendered prompt from the raw one)
    model, tok = load_lm(world["model"])
    tok.chat_template = TEMPLATE
    return {**world, "chat": str(save_lm(model, tok, root / "chat"))}


def _irpo(world: dict, out: Path, **kw) -> IRPOConfig:
    return IRPOConfig(train_data=world["train"], eval_data=world["test"], out=str(out), iterations=1, samples=4,
                      temperatures=[1.5], pairs_per_question=1, train=_train(1, 1e-4), **{**COMMON, **kw})  # fmt: skip


def _reference(world_model: str, pairs: list[dict], chat: bool, dtype=None) -> list[float]:
    model, tok = load_lm(world_model, dtype=dtype, pad_with_eos=True)
    prompts = [p["prompt"] for p in pairs]
    return reference_logprobs(model, tok, prompts, [p["chosen"] for p in pairs], 64, chat=chat, progress=False)


def test_chat_prompts_reach_sampling_and_the_reference(world: dict, tmp_path: Path) -> None:
    cfg = _irpo(world, tmp_path / "chat", model=world["chat"], prompt_format="chat")
    run_irpo(cfg, progress=False)
    pairs = read_parquet(tmp_path / "chat" / "iter-1" / "pairs.parquet").to_pylist()
    ref = [r["ref_chosen"] for r in read_parquet(tmp_path / "chat" / "iter-1" / "reference.parquet").to_pylist()]
    assert pairs
    assert ref == pytest.approx(_reference(world["chat"], pairs, chat=True), abs=1e-5)
    assert ref != pytest.approx(_reference(world["chat"], pairs, chat=False), abs=1e-3)


def test_a_template_formats_every_prompt(world: dict, tmp_path: Path) -> None:
    cfg = _irpo(world, tmp_path / "tpl", model=world["model"], prompt_format="Solve: {question}")
    run_irpo(cfg, progress=False)
    samples = read_parquet(tmp_path / "tpl" / "iter-1" / "samples.parquet").to_pylist()
    pairs = read_parquet(tmp_path / "tpl" / "iter-1" / "pairs.parquet").to_pylist()
    assert all(s["question"].startswith("Solve: Q:") for s in samples)
    assert pairs and all(p["prompt"].startswith("Solve: ") for p in pairs)


def test_bf16_sampling_keeps_a_float32_reference(world: dict, tmp_path: Path) -> None:
    cfg = _irpo(world, tmp_path / "bf16", model=world["model"], dtype="bfloat16")
    run_irpo(cfg, progress=False)
    pairs = read_parquet(tmp_path / "bf16" / "iter-1" / "pairs.parquet").to_pylist()
    ref = [r["ref_chosen"] for r in read_parquet(tmp_path / "bf16" / "iter-1" / "reference.parquet").to_pylist()]
    assert pairs and ref == pytest.approx(_reference(world["model"], pairs, chat=False), abs=1e-5)
    assert ref != pytest.approx(_reference(world["model"], pairs, chat=False, dtype=torch.bfloat16), abs=1e-4)


def test_runtime_settings_fail_before_work(world: dict, tmp_path: Path) -> None:
    base = {"train_data": world["train"], "out": str(tmp_path / "x")}
    cases = [
        ({"prompt_format": "Q {q}"}, "prompt_format must be raw, chat or a template containing {question}"),
        ({"prompt_format": "chat"}, "has no chat template: use prompt_format=raw"),
        ({"dtype": "fp8"}, "dtype must be one of float32, bfloat16, float16"),
        ({"backend": "tgi"}, "backend must be one of hf, vllm"),
        ({"device": "tpu:x"}, "device must be auto, cpu, cuda or cuda:N"),
    ]
    if not torch.cuda.is_available():
        cases.append(({"device": "cuda"}, "no CUDA GPU: use device=auto or cpu"))
    try:
        import vllm  # noqa: F401
    except ImportError:
        cases.append(({"backend": "vllm"}, "backend=vllm needs vLLM"))
    for kw, message in cases:
        with pytest.raises(ConfigError, match=message.replace("{", "\\{").replace("}", "\\}")):
            IRPOConfig(model=world["model"], **base, **kw).validate()
    with pytest.raises(ConfigError, match="needs backend=hf"):
        PPOConfig(model=world["model"], **base, backend="vllm").validate()
    with pytest.raises(ConfigError, match="prompt_format=chat needs model=PATH with a chat template"):
        SFTConfig(**base, prompt_format="chat").validate()
    assert not (tmp_path / "x").exists()
