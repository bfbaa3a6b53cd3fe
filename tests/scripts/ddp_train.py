"""Train a tiny encoder-decoder on a planning dataset; run under torchrun by the tests.

usage: ddp_train.py DATA OUT BATCH_PER_PROCESS STEPS
"""

import sys
from pathlib import Path

import torch

from system2.dist import is_main
from system2.nn.encdec import EncDecConfig, EncoderDecoder
from system2.planning.data import PlanningTrainData, load_examples
from system2.planning.losses import sequence_loss
from system2.train import TrainConfig, train


def main() -> None:
    data_dir, out, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.manual_seed(0)
    examples = load_examples(data_dir, "train")
    model = EncoderDecoder(EncDecConfig.preset("tiny", len(examples.vocab)))
    cfg = TrainConfig(steps=steps, batch_size=batch, warmup=2, log_every=1, ckpt_every=steps, tensorboard=False)
    result = train(model, PlanningTrainData(examples, "dualformer"), sequence_loss, cfg, out, progress=False)
    if is_main():
        Path(out, "done").write_text(f"{result.steps}\n")


if __name__ == "__main__":
    main()
