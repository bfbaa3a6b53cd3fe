"""The pieces every self-improvement loop shares: sample and score solutions with the current policy,
evaluate a policy per question (maj@1, maj@K, pass@K), fine-tune a policy through the project's one training loop, and
the settings they share (``LoopConfig``: data, task, prompt format, dtype, device, sampler). Stages whose results are
on disk are skipped (``stages.py``: a killed run resumes where it stopped).

A policy is any Hugging Face causal LM directory (``save_lm`` format); questions and their reward come from the
task (``task``; ``system2.tasks.task``), and correctness comes from the task's reward, never from the model.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from system2 import dist
from system2.config import ConfigError
from system2.lm.data import SFTData
from system2.lm.io import check_lm_dir, load_lm, save_lm
from system2.lm.losses import make_sft_loss_fn
from system2.lm.sampling import BACKENDS, SampleConfig, sample_completions
from system2.runs import atomic_write_json, describe, open_run, read_json, read_parquet, read_run
from system2.selfimprove.metrics import any_hit, best_hit, majority_hit
from system2.selfimprove.stages import sharded_rows, stage_done
from system2.tasks.task import TASKS, QuestionLike, ReasoningTask, get_task
from system2.train import TrainConfig, TrainData, train

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
QUESTIONS = "questions.parquet"  # an evaluation's per-question results, next to its result.json
Annotate = Callable[[str], dict[str, float]]  # a greedy response -> numbers recorded per question (e.g. its steps)


@dataclass
class PolicyConfig:
    """Settings every loop over a policy shares: where it is, how it samples, where it runs, where the run goes."""

    model: str = ""  # the starting policy: a local causal LM directory with its tokenizer
    out: str = ""  # run directory (a rerun resumes)
    max_new_tokens: int = 64  # most tokens sampled per response
    max_len: int = 128  # longest sequence: prompt + response tokens
    batch_size: int = 64  # sampling batch
    seed: int = 0  # seed of sampling and of new weights (sft's tiny model, PPO's value head)
    prompt_format: str = "raw"  # raw (the question as it is) | chat (a user turn in the tokenizer's chat template) |
    #                             a template with {question}, e.g. "Question: {question}\nAnswer:"
    dtype: str = "float32"  # weights for sampling and evaluation: float32 | bfloat16 (GPUs) | float16
    device: str = "auto"  # where sampling and evaluation run: auto (cuda when there is one) | cpu | cuda | cuda:N
    backend: str = "hf"  # sampler: hf (transformers generate) | vllm (GPU machines, the vllm extra)

    def check_runtime(self) -> None:
        """Lengths, batch, prompt format, dtype, device and backend, checked before any compute."""
        if self.max_new_tokens < 1 or self.max_len < 2:
            raise ConfigError("max_new_tokens must be >= 1 and max_len >= 2")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.prompt_format not in ("raw", "chat") and "{question}" not in self.prompt_format:
            raise ConfigError(
                f"prompt_format must be raw, chat or a template containing {{question}}, got {self.prompt_format!r}"
            )
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        try:
            device = torch.device(self.run_device())
        except RuntimeError:
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device={self.device} but this machine has no CUDA GPU: use device=auto or cpu")
        if self.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ConfigError("backend=vllm needs vLLM on a GPU machine: pip install 'system2[vllm]', or backend=hf")
        if self.prompt_format == "chat" and not self.model:
            raise ConfigError("prompt_format=chat needs model=PATH with a chat template (the tiny model has none)")
        if self.prompt_format == "chat" and self.model:
            from transformers import AutoTokenizer

            if not getattr(AutoTokenizer.from_pretrained(self.model, local_files_only=True), "chat_template", None):
                raise ConfigError(
                    f"prompt_format=chat but the tokenizer in {self.model} has no chat template: use prompt_format=raw "
                    "or a template with {question}"
                )

    @property
    def chat(self) -> bool:
        """Whether prompts are rendered by the tokenizer's chat template."""
        return self.prompt_format == "chat"

    @property
    def system_turn(self) -> str | None:
        """The system turn rendered before every prompt (chat only); none by default (TPO's ``system`` thought
        prompt has one)."""
        return None

    def run_device(self) -> str:
        """The device of sampling and evaluation (``auto``: cuda when there is one, else cpu)."""
        if self.device == "auto":
            return f"cuda:{dist.local_rank()}" if torch.cuda.is_available() else "cpu"
        return self.device

    def load(self, path: str | Path) -> tuple[Any, Any]:
        """A policy for sampling, scoring or evaluation, in ``dtype`` on ``device`` (training loads its own copy
        in float32 and runs under ``train.mixed_precision``)."""
        return load_lm(path, dtype=DTYPES[self.dtype], device=self.run_device(), pad_with_eos=True)

    def check_models(self, *names: str) -> None:
        """Each of the fields ``names`` that is set must be a causal LM directory (ConfigError naming the field)."""
        for name in names:
            try:
                if getattr(self, name):
                    check_lm_dir(getattr(self, name))
            except (FileNotFoundError, ValueError) as e:
                raise ConfigError(f"{name}: {e}") from None

    def file(self, name: str, default: str) -> str:
        """For loops that read a world directory (a ``data`` field): the path of input ``name`` (a field; "" for a
        file only the world has), or ``DATA/default`` when it is empty and ``data`` is set."""
        data = getattr(self, "data", "")
        return (getattr(self, name) if name else "") or (str(Path(data) / default) if data else "")

    def start(self, kind: str, restart: bool = False) -> Path:
        """Record this config in ``out`` (``run.json``) before any compute: a rerun with the same settings
        resumes, other settings are refused (``restart``: move the old run aside). Under a launcher the processes
        join one group here: sampling, scoring and evaluation are shared among them from the start."""
        dist.init()
        return open_run(self.out, kind, self, restart=restart)


@dataclass
class LoopConfig(PolicyConfig):
    """Settings every self-improvement recipe on a reasoning task shares (each recipe's config adds its own)."""

    task: str = "arithmetic"  # what the data files hold and how answers are scored (docs/selfimprove.md, "Tasks")
    train_data: str = ""  # training questions (Parquet/JSONL rows in the task's format)
    eval_data: str = ""  # held-out questions; empty: no evaluation
    skip: int = 0  # leading training questions passed over (e.g. those M_0 learned from); limit counts after them
    limit: int = 0  # training questions used (0: all)
    eval_limit: int = 0  # evaluation questions used (0: all)
    eval_samples: int = 0  # K for maj@K / pass@K at evaluation (0: greedy only)
    stop: str = ""  # a string that ends every sampled response (kept), e.g. "." after example-prompted solutions

    def validate(self) -> None:
        if not self.model or not self.train_data or not self.out:
            raise ConfigError("set model=PATH (the starting policy), train_data=FILE and out=DIR")
        self.check_paths()

    def check_paths(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for path in (self.model, self.train_data, self.eval_data):
            if path and not Path(path).exists():
                raise ConfigError(f"{path} does not exist")
        self.check_models("model")  # a causal LM directory, before any work starts
        for k in ("skip", "limit", "eval_limit", "eval_samples"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.eval_samples == 1:
            raise ConfigError("eval_samples must be 0 (greedy only) or at least 2: maj@1 is the greedy answer")
        self.check_runtime()
        for path in (self.train_data, self.eval_data):
            if path and Path(path).is_dir():
                record = read_run(path)
                kind = describe(record["kind"]) if record else "a directory"
                raise ConfigError(f"{path} is {kind}: pass one of its files (e.g. {Path(path) / 'train.parquet'})")
        if hasattr(self, "train"):
            self.train.validate()

    def sampling(self) -> dict[str, Any]:
        """The keyword arguments of ``sample_and_score`` and ``evaluate_questions`` this config fixes."""
        return {"task": self.get_task(), "max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size,
                "chat": self.chat, "backend": self.backend, "stop": self.stop}  # fmt: skip

    def get_task(self) -> ReasoningTask:
        """The task ``task`` names: its file format and its reward."""
        return get_task(self.task)

    def problems(self) -> tuple[list[Any], list[Any]]:
        """(training questions, evaluation questions) read by the task: the training questions after the first
        ``skip``, cut to ``limit``; the evaluation questions cut to ``eval_limit``. A file in another format fails
        here, naming the file and the fields it lacks."""
        task = self.get_task()
        try:
            train_set = task.read(self.train_data)
            test = task.read(self.eval_data) if self.eval_data else []
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(str(e)) from None
        if self.skip and self.skip >= len(train_set):
            raise ConfigError(f"skip={self.skip} passes over all {len(train_set)} training questions of "
                              f"{self.train_data}: lower skip")  # fmt: skip
        train_set, test = train_set[self.skip :][: self.limit or None], test[: self.eval_limit or None]
        if self.prompt_format in ("raw", "chat"):
            return train_set, test
        # a template: the prompt every loop samples, trains and evaluates on
        return [self._fill(q) for q in train_set], [self._fill(q) for q in test]

    def _fill(self, question: Any) -> Any:
        return replace(question, question=self.prompt_format.format(question=question.question))

    def evaluate(
        self,
        model_dir: str | Path,
        test: Sequence[QuestionLike],
        out: Path,
        prefix: str = "",
        annotate: Annotate | None = None,
        temperature: float = 0.8,
        top_p: float = 1.0,
    ) -> dict[str, Any]:
        """maj@1 (and maj@K/pass@K with ``eval_samples``) of the policy at ``model_dir``; {} without test data.
        Cached in ``out``: ``result.json`` (the rates) and ``questions.parquet`` (one row per question, the
        independent units of the reproductions' claims). A stage scored before the per-question file existed
        is scored again. ``prefix`` goes before every prompt; ``annotate``, ``temperature`` and ``top_p`` (of the K
        samples): as in ``evaluate_questions``."""
        if not test:
            return {}
        result, per_question = out / "result.json", out / QUESTIONS
        if stage_done(result) and per_question.is_file():
            return read_json(result)

        def score(part: Sequence[QuestionLike], offset: int) -> list[dict[str, Any]]:
            model, tok = self.load(model_dir)
            return evaluate_questions(model, tok, part, **self.sampling(), k=self.eval_samples, seed=self.seed,
                                      prompt_prefix=prefix, prompt_offset=offset, annotate=annotate,
                                      temperature=temperature, top_p=top_p)  # fmt: skip

        summary = summarize_questions(sharded_rows(per_question, test, score))  # each process scores its share
        if dist.is_main():
            atomic_write_json(result, summary)
        dist.barrier()
        return summary


@dataclass
class RoundsConfig(LoopConfig):
    """Rounds of sampling ``samples`` solutions per training question at ``temperature`` and fine-tuning
    the initial policy (``model``) on what they yield (expert iteration, return-conditioned RL)."""

    rounds: int = 1  # rounds of sampling and fine-tuning
    samples: int = 16  # solutions sampled per training question each round
    temperature: float = 1.0  # sampling temperature
    train: TrainConfig = field(  # each round's fine-tuning, from the initial policy
        default_factory=lambda: TrainConfig(steps=300, batch_size=16, lr=3e-4, warmup=20)
    )

    def validate(self) -> None:
        super().validate()
        if self.rounds < 1 or self.samples < 1:
            raise ConfigError("rounds and samples must be >= 1")


def sample_and_score(
    model: torch.nn.Module,
    tokenizer: Any,
    problems: Sequence[QuestionLike],
    *,
    task: ReasoningTask,
    n: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    top_p: float = 1.0,
    batch_size: int = 64,
    chat: bool = False,
    backend: str = "hf",
    prompt_prefix: str = "",
    prompt_offset: int = 0,
    progress: bool = True,
    label: str = "sample",
    stop: str = "",
) -> list[dict[str, Any]]:
    """``n`` sampled solutions per problem, each with its parsed answer, the task's reward and whether it was
    cut at ``max_new_tokens`` (one row per sample, in problem order; a truncated solution is scored wrong).
    ``chat``: prompts rendered by the tokenizer's chat template; ``backend``: hf or vllm; ``prompt_offset``: as in
    ``sample``, for one process's slice; ``progress`` shows the solutions sampled under ``label``; ``stop``: a
    string that ends a response (kept), as after example-prompted solutions."""
    cfg = SampleConfig(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                       batch_size=batch_size, backend=backend, stop=[stop] if stop else [])  # fmt: skip
    prompts = [prompt_prefix + p.question for p in problems]
    outs = sample_completions(model, tokenizer, prompts, cfg, chat=chat, prompt_offset=prompt_offset,
                              progress=progress, label=label)  # fmt: skip
    rows = []
    for p, completions in zip(problems, outs, strict=True):
        for i, (text, truncated) in enumerate(completions):
            got = task.extract(text)
            rows.append(
                {
                    "id": p.id,
                    "question": p.question,
                    "sample": i,
                    "text": text,
                    "parsed": got,
                    "answer": p.answer,
                    "correct": task.correct(p, text, truncated),  # a solution cut short is wrong
                    "truncated": truncated,
                }
            )
    return rows


def group_by_question(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["id"], []).append(r)
    return groups


def evaluate_questions(
    model: torch.nn.Module,
    tokenizer: Any,
    problems: Sequence[QuestionLike],
    *,
    task: ReasoningTask,
    max_new_tokens: int,
    k: int = 0,
    temperature: float = 0.8,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    chat: bool = False,
    backend: str = "hf",
    prompt_prefix: str = "",
    prompt_offset: int = 0,
    progress: bool = True,
    rerank: Callable[[list[str], list[str]], Sequence[float]] | None = None,
    annotate: Annotate | None = None,
    stop: str = "",
) -> list[dict[str, Any]]:
    """One row per question: its id, whether the greedy answer is right (``maj@1``) and the greedy response's
    words; with ``k`` > 0 also whether the majority vote (``maj@K``) and any (``pass@K``) of ``k`` samples at
    ``temperature`` and ``top_p`` are right, and with ``rerank`` (questions, responses -> scores, e.g. an outcome
    reward model) whether the highest-scored sample is (``rerank@K``). ``annotate`` adds its numbers about the greedy
    response to the row (e.g. ``{"response_steps": 3}``). ``prompt_offset``: as in ``sample_and_score``, for one
    process's share of the questions; ``stop``: as in ``sample_and_score``."""
    if k == 1:
        raise ValueError("k must be 0 (greedy only) or at least 2: maj@1 is the greedy answer")
    draw = partial(
        sample_and_score,
        model,
        tokenizer,
        problems,
        task=task,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        chat=chat,
        backend=backend,
        prompt_prefix=prompt_prefix,
        prompt_offset=prompt_offset,
        progress=progress,
        stop=stop,
    )
    greedy = draw(n=1, temperature=0.0, seed=seed, label="eval greedy")
    rows = [{"id": r["id"], "maj@1": bool(r["correct"]), "response_words": len(r["text"].split())} for r in greedy]
    if annotate is not None:
        for row, r in zip(rows, greedy, strict=True):
            row.update(annotate(r["text"]))
    if k > 0:
        sampled = draw(n=k, temperature=temperature, top_p=top_p, seed=seed + 1, label=f"eval {k} samples")
        # a truncated sample has no answer: it never votes and is never right
        groups = [[(None if r["truncated"] else r["parsed"], bool(r["correct"])) for r in g]
                  for g in group_by_question(sampled).values()]  # fmt: skip
        for row, g in zip(rows, groups, strict=True):
            row.update({f"maj@{k}": majority_hit(g), f"pass@{k}": any_hit(g)})
        if rerank is not None:
            scores = list(rerank([r["question"] for r in sampled], [r["text"] for r in sampled]))
            for i, (row, g) in enumerate(zip(rows, groups, strict=True)):
                row[f"rerank@{k}"] = best_hit(g, scores[i * k : (i + 1) * k])
    return rows


def summarize_questions(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The rates of ``evaluate_questions`` rows: the share of questions right per metric, and the mean of every other
    number (``mean_response_words``, the greedy response length in words, and any annotation)."""
    if not rows:
        raise ValueError("no questions to summarize")
    out = {key: sum(bool(r[key]) for r in rows) / len(rows) for key in rows[0] if "@" in key}
    for key in rows[0]:
        if key != "id" and "@" not in key:
            out[f"mean_{key}"] = sum(float(r[key]) for r in rows) / len(rows)
    return out


def question_results(out: str | Path) -> list[dict[str, Any]]:
    """The per-question rows an evaluation cached in ``out`` (``LoopConfig.evaluate``)."""
    return read_parquet(Path(out) / QUESTIONS).to_pylist()


def finetune(
    init: str | Path,
    make_data: Callable[..., TrainData],
    loss_fn: Callable,
    cfg: TrainConfig,
    out: Path,
    progress: bool = True,
    **data: Any,
) -> Path:
    """Load the policy at ``init``, train it with ``loss_fn`` on ``make_data(tokenizer, **data)`` and save it to
    ``out/model``. The run checkpoints into ``out/ckpt``, so a rerun resumes; a finished one is skipped. Under
    several processes the training is data-parallel and the main process saves."""
    final = out / "model"
    if stage_done(final / "config.json"):
        return final
    model, tokenizer = load_lm(init, pad_with_eos=True)
    train(model, make_data(tokenizer, **data), loss_fn, cfg, out, progress=progress)
    if dist.is_main():
        save_lm(model, tokenizer, final)
    dist.barrier()
    return final


def finetune_sft(
    init: str | Path,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_len: int,
    cfg: TrainConfig,
    out: Path,
    progress: bool = True,
    ends: Sequence[bool] | None = None,
    chat: bool = False,
) -> Path:
    """``finetune`` on (prompt, response) pairs with the SFT loss on the response tokens (SFT on gold, expert
    iteration, RCRL, STaR); ``ends[i]`` False: response i was cut at max_new_tokens and gets no eos; ``chat``:
    prompts rendered by the tokenizer's chat template."""
    return finetune(init, SFTData, make_sft_loss_fn(), cfg, out, progress, prompts=prompts, responses=responses,
                    max_len=max_len, ends=ends, chat=chat)  # fmt: skip
