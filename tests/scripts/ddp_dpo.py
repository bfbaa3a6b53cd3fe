"""DPO+NLL on a tiny Llama through the project's training loop; run under torchrun by the tests.

usage: ddp_dpo.py OUT BATCH_PER_PROCESS STEPS
"""

import sys
from pathlib import Path

from system2.dist import is_main
from system2.lm.data import PreferenceData
from system2.lm.logprobs import reference_logprobs
from system2.lm.losses import make_dpo_loss_fn
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.train import TrainConfig, train

WORDS = ["Q:", *map(str, range(10)), "+", "=", "?", "|", ";", "Final", "answer:"]


def texts(n: int = 16) -> tuple[list[str], list[str], list[str]]:
    """n arithmetic preference pairs: prompts, chosen and rejected responses."""
    prompts, chosen, rejected = [], [], []
    for i in range(n):
        a, b = i % 5, (i * 3) % 5
        prompts.append(f"Q: {a} + {b} = ? |")
        chosen.append(f"{a} + {b} = {a + b} ; Final answer: {a + b}")
        rejected.append(f"Final answer: {(a + b + 1) % 10}")
    return prompts, chosen, rejected


def setup(n: int = 16):
    """A seeded tiny Llama (also the frozen reference) and n arithmetic preference pairs."""
    tok = build_word_tokenizer(WORDS, model_max_length=32)
    model = tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=32, seed=0)
    prompts, chosen, rejected = texts(n)
    ref_c = reference_logprobs(model, tok, prompts, chosen, 32)
    ref_r = reference_logprobs(model, tok, prompts, rejected, 32)
    return model, PreferenceData(tok, prompts, chosen, rejected, 32, ref_c, ref_r)


def config(steps: int, batch: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=3e-3, warmup=1, log_every=1, ckpt_every=steps,
                       tensorboard=False)  # fmt: skip


def main() -> None:
    out, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    model, data = setup()
    loss_fn = make_dpo_loss_fn(beta=0.1, alpha=1.0, nll_norm="sequence")
    result = train(model, data, loss_fn, config(steps, batch), out, progress=False)
    if is_main():
        Path(out, "done").write_text(f"{result.steps}\n")


if __name__ == "__main__":
    main()
