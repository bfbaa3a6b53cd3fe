"""What the self-improvement reproductions (IRPO, RL for reasoning) share: the settings of a run on local files, the
generated worlds, and which training questions M_0 (the SFT start) and the arms learn from (docs/selfimprove.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from system2.config import ConfigError
from system2.selfimprove.sft import gold_prefix
from system2.tasks import arithmetic, quantities
from system2.tasks.task import get_task


@dataclass(frozen=True)
class LocalRun:
    """What a self-improvement reproduction needs to run on a local checkpoint and local data files (the paper
    scales); the defaults run the generated arithmetic world with a tiny model."""

    model: str = ""  # a local checkpoint to start from; empty: a tiny model
    task: str = "arithmetic"  # what train_data/test_data hold (gsm8k, math, arc, generic; docs/selfimprove.md)
    train_data: str = ""  # a local training file; empty: the generated arithmetic world
    test_data: str = ""  # a local test file (needed with train_data)
    max_len: int = 72  # longest prompt + solution in tokens
    max_new_tokens: int = 48  # longest sampled solution
    dtype: str = "float32"  # sampling and evaluation weights (bfloat16 on GPUs)
    prompt_format: str = "raw"  # raw | chat | a template with {question}


# the worlds a scale without data files generates (by ``task``), and the file of each one's longer split
WORLDS = {"arithmetic": arithmetic.write_dataset, "quantities": quantities.write_dataset}
LONGER = {"arithmetic": "hard.parquet", "quantities": "long.parquet"}
WORLD_SEED = 0  # one generated world for every reproduction, so that they share questions, base and SFT start


def generate_world(task: str, out: Path, train: int, test: int, longer: int = 0) -> tuple[str, str]:
    """The (train, test) files of ``task``'s generated world under ``out``, written unless there (``longer``: that
    many questions of the longer split too); the same sizes give the same files in every reproduction."""
    if not (out / "test.parquet").is_file():
        WORLDS[task](out, WORLD_SEED, train, test, longer)
    return str(out / "train.parquet"), str(out / "test.parquet")


class PoolScale(Protocol):
    """The settings ``split`` reads."""

    task: str
    train_data: str
    train: int  # training questions (with train_data: the first N, 0 = all)
    gold: int  # gold solutions the SFT start learns from
    sft_steps: int  # 0: no SFT start (M_0 is the model as it is)
    pool: int  # questions the arms learn from, after the SFT start's (0: all of them)


class QuestionSplit(NamedTuple):
    """The data files, and the training questions the arms learn from (``split``)."""

    train: str
    test: str
    skip: int = 0  # leading training questions passed over: the SFT start's
    limit: int = 0  # training questions after them (0: all)


def split(scale: PoolScale, train_file: str) -> tuple[int, int]:
    """(skip, limit) of the training questions the arms learn from: the ``pool`` questions after the leading ones that
    hold the SFT start's ``gold`` solutions (none without that SFT), so that every arm sees the same questions, none of
    them M_0's. ConfigError, before any training, when M_0's take them all or fewer than ``pool`` are left."""
    questions = get_task(scale.task).read(train_file)
    if scale.train_data and scale.train:
        questions = questions[: scale.train]
    skip = gold_prefix(questions, scale.gold) if scale.sft_steps else 0
    left = len(questions) - skip
    if left < max(1, scale.pool):
        raise ConfigError(
            f"{left} training questions follow the {skip} that hold M_0's {scale.gold} gold solutions, and the arms "
            f"need {max(1, scale.pool)} (pool): raise train, or lower gold or pool"
        )
    return skip, scale.pool or left
