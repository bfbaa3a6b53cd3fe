"""PPO for reasoning with a final-answer reward (Havrilla et al., arXiv 2403.04642; docs/selfimprove.md).

One iteration: ``rollout`` samples solutions for a batch of training questions with the current policy and
scores each by its final answer (sparse: 1 right, 0 wrong; ``dense`` adds ``dense_per_step`` per step the task's
step rewards pay for: arithmetic, a step whose value matches the gold solution's; quantities, a right step before the
first fault); ``advantages`` gives per-token rewards -kl_coef * (log pi - log pi_ref),
with the outcome added on the last token (eos) and each step's dense bonus on the token that ends that step
(``token_rewards``), and advantages by GAE(gamma, lambda) from a value head on the policy's last hidden state (the
math in ``ppo_math.py``); ``update`` makes ``ppo_epochs`` passes of clipped policy and clipped value losses
over minibatches.

Design choices (documented, configurable): the value head is a linear layer on the shared trunk (as in
trlx); sampled texts are re-tokenized before scoring, which is exact for the word-level tokenizers of the
synthetic tasks; PPO has its own loop (rollouts and updates alternate, which the supervised training loop
does not model), on ``accelerate``, so the same command runs on several processes. Checkpoints every
``ckpt_every`` iterations; a rerun resumes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from system2 import dist
from system2.checkpoint import (
    load_model_weights,
    load_trainer_state,
    prune_checkpoints,
    read_tensors,
    resume,
    save_checkpoint,
)
from system2.config import ConfigError
from system2.console import Progress
from system2.lm.encoding import response_token_ids
from system2.lm.io import load_lm, save_lm
from system2.lm.logprobs import encode_prompt_response
from system2.runs import atomic_write_text, write_parquet
from system2.selfimprove.loop import LoopConfig, evaluate_questions, sample_and_score, summarize_questions
from system2.selfimprove.ppo_math import gae, ppo_losses, token_logprobs_and_values

ITERATIONS = "iterations.jsonl"  # one row per iteration, in the run directory


@dataclass
class PPOConfig(LoopConfig):
    """``model`` is the initial policy and also the frozen KL reference."""

    iterations: int = 50  # PPO iterations: sample a batch of questions, then update
    prompts_per_iteration: int = 64  # training questions per iteration (over all processes)
    samples_per_prompt: int = 1  # solutions sampled per question
    temperature: float = 1.0  # sampling temperature
    kl_coef: float = 0.05  # per-token KL penalty to the initial policy
    gamma: float = 1.0  # discount of GAE
    lam: float = 0.95  # lambda of GAE
    clip: float = 0.2  # policy ratio clip
    value_clip: float = 0.2  # how far a value may move from its old estimate in the clipped value loss
    vf_coef: float = 1.0  # weight of the value loss
    ppo_epochs: int = 4  # passes over each iteration's samples
    minibatch_size: int = 16  # samples per update (over all processes)
    lr: float = 1e-5  # AdamW learning rate of the policy and value head
    max_grad_norm: float = 1.0  # gradient norm clip
    reward: str = "sparse"  # sparse (1 right, 0 wrong) | dense (adds dense_per_step per right step)
    dense_per_step: float = 0.1  # dense reward: bonus per right step (the task's step rewards)
    ckpt_every: int = 10  # iterations between checkpoints
    eval_every: int = 0  # iterations between evaluations, each kept per question in OUT/curve (0: only at the end)

    def validate(self) -> None:
        if self.backend != "hf":
            raise ConfigError("PPO samples from the policy it is training: it needs backend=hf")
        super().validate()
        if self.reward not in ("sparse", "dense"):
            raise ConfigError(f"reward must be 'sparse' or 'dense', got {self.reward!r}")
        if min(self.iterations, self.prompts_per_iteration, self.samples_per_prompt, self.ppo_epochs) < 1:
            raise ConfigError("iterations, prompts_per_iteration, samples_per_prompt and ppo_epochs must be >= 1")
        if not 0 <= self.lam <= 1 or not 0 <= self.gamma <= 1 or self.clip <= 0:
            raise ConfigError("need 0 <= lam, gamma <= 1 and clip > 0")
        if self.reward == "dense" and self.get_task().step_rewards is None:
            raise ConfigError(
                f"reward=dense needs a task with step rewards (arithmetic, quantities); task {self.task!r} has none"
            )
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0 (PPO needs the sampling distribution), got {self.temperature}")


def _score(cfg: PPOConfig, row: dict[str, Any], question: Any) -> float:
    """The sample's total reward (for the logs): its outcome plus, with ``dense``, every step's bonus."""
    return (1.0 if row["correct"] else 0.0) + sum(b for _, b in _dense(cfg, row["text"], question))


def _dense(cfg: PPOConfig, text: str, question: Any) -> list[tuple[int, float]]:
    """``(character end, bonus)`` of every step the task's step rewards pay for (``question``: the question
    object the response answers); empty for ``sparse``."""
    step_rewards = cfg.get_task().step_rewards
    if cfg.reward != "dense" or step_rewards is None:
        return []
    return step_rewards(text, question, cfg.dense_per_step)


def step_bonuses(cfg: PPOConfig, tok: Any, row: dict[str, Any], question: Any) -> list[tuple[int, float]]:
    """``(response token index, bonus)`` of every dense step reward: the token that ends the step's result (the
    last token of the response text up to it). Empty for ``sparse``."""
    out = []
    for end, bonus in _dense(cfg, row["text"], question):
        n = len(response_token_ids(tok, [row["text"][:end]])[0]) - 1  # the response's tokens up to the step, no eos
        out.append((n - 1, bonus))
    return out


class PolicyWithValue(torch.nn.Module):
    """The policy and its value head as one module, so one DDP wrapper syncs the gradients of both."""

    def __init__(self, policy: torch.nn.Module, value_head: torch.nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.policy, self.value_head, self.temperature = policy, value_head, temperature

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        return token_logprobs_and_values(self.policy, self.value_head, batch, self.temperature)


@dataclass
class Rollout:
    """One iteration's samples on one process: the sampled rows, their scores, the encoded prompt +
    response batch, and (under no grad) the old policy's log-probs and values, the response mask and the
    per-token KL to the reference."""

    rows: list[dict[str, Any]]
    scores: torch.Tensor  # each sample's total reward (outcome + step bonuses), for the logs
    outcomes: torch.Tensor  # 1 right, 0 wrong: the reward on the last response token
    bonuses: list[list[tuple[int, float]]]  # per sample: (response token index, dense step bonus)
    batch: dict[str, torch.Tensor]
    old_logp: torch.Tensor
    old_values: torch.Tensor
    mask: torch.Tensor
    kl: torch.Tensor


def _sums(acc: Any, *values: float) -> list[float]:
    """Sums over all processes (``acc``: the Accelerator)."""
    return acc.reduce(torch.tensor(values, dtype=torch.float64, device=acc.device), "sum").tolist()


@torch.no_grad()
def rollout(
    cfg: PPOConfig,
    policy: torch.nn.Module,
    value_head: torch.nn.Module,
    ref: torch.nn.Module,
    tok: Any,
    questions: list[Any],
    by_id: dict[str, Any],
    *,
    seed: int,
    prompt_offset: int,
    progress: bool,
) -> Rollout:
    """Sample ``samples_per_prompt`` solutions of ``questions`` with the policy, score them, and record
    what the update needs from the policy before it moves."""
    device = next(policy.parameters()).device
    policy.eval()
    rows = sample_and_score(
        policy,
        tok,
        questions,
        **cfg.sampling(),
        n=cfg.samples_per_prompt,
        temperature=cfg.temperature,
        seed=seed,
        prompt_offset=prompt_offset,
        progress=progress,
    )
    scores = torch.tensor([_score(cfg, r, by_id[r["id"]]) for r in rows], device=device)
    outcomes = torch.tensor([1.0 if r["correct"] else 0.0 for r in rows], device=device)
    bonuses = [step_bonuses(cfg, tok, r, by_id[r["id"]]) for r in rows]
    enc = encode_prompt_response(tok, [r["question"] for r in rows], [r["text"] for r in rows], cfg.max_len,
                                 ends=[not r["truncated"] for r in rows], chat=cfg.chat)  # no drawn eos  # fmt: skip
    enc = {k: v.to(device) for k, v in enc.items()}
    old_logp, old_values, mask = token_logprobs_and_values(policy, value_head, enc, cfg.temperature)
    ref_logp, _, _ = token_logprobs_and_values(ref, None, enc, cfg.temperature)  # the KL between tempered policies
    assert old_values is not None
    return Rollout(rows, scores, outcomes, bonuses, enc, old_logp, old_values, mask, (old_logp - ref_logp) * mask)


def token_rewards(cfg: PPOConfig, roll: Rollout) -> torch.Tensor:
    """(B, T-1) per-token rewards: ``-kl_coef * KL`` everywhere, the outcome on the last token of each response
    (its eos, or its last sampled token when it was cut at ``max_new_tokens``), and each dense step bonus on the
    token that ends that step."""
    rewards = -cfg.kl_coef * roll.kl
    rows = torch.arange(len(roll.rows), device=rewards.device)
    first = roll.mask.long().argmax(1)  # the position that predicts the first response token
    last = roll.mask.long().cumsum(1).argmax(1)  # the eos position of each response
    rewards[rows, last] += roll.outcomes
    for i, bonuses in enumerate(roll.bonuses):
        for j, bonus in bonuses:
            rewards[i, min(int(first[i]) + j, int(last[i]))] += bonus
    return rewards


@torch.no_grad()
def advantages(cfg: PPOConfig, roll: Rollout, acc: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised advantages, returns), both (B, T-1): the per-token rewards of ``token_rewards``,
    GAE(gamma, lambda), then advantages normalised to mean 0 and sd 1 over every response token of every
    process."""
    adv = gae(token_rewards(cfg, roll), roll.old_values, roll.mask, cfg.gamma, cfg.lam)
    returns = adv + roll.old_values
    mask = roll.mask
    n, s1, s2 = _sums(acc, float(mask.sum()), float(adv[mask].sum()), float((adv[mask] ** 2).sum()))
    mean = s1 / max(n, 1)
    std = max(((s2 - n * mean**2) / (n - 1)) ** 0.5, 1e-8) if n > 1 else 1.0
    return (adv - mean) / std * mask, returns


def update(
    cfg: PPOConfig,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    acc: Any,
    roll: Rollout,
    adv: torch.Tensor,
    returns: torch.Tensor,
    *,
    seed: int,
) -> dict[str, float]:
    """``ppo_epochs`` passes of clipped policy and value losses over shuffled minibatches (this process's
    1/W of each); returns the last minibatch's losses and statistics, averaged over processes."""
    world = dist.world_size()
    mb_size = cfg.minibatch_size // world
    params = list(model.parameters())
    model.train()
    stats: dict[str, float] = {}
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.ppo_epochs):
        perm = torch.randperm(len(roll.rows), generator=gen).to(adv.device)
        for s in range(0, len(roll.rows), mb_size):
            mb = perm[s : s + mb_size]
            logp, values, m = model({k: v[mb] for k, v in roll.batch.items()})
            (n_mb,) = _sums(acc, float(m.sum()))
            pg, vf, st = ppo_losses(
                logp,
                roll.old_logp[mb],
                adv[mb],
                values,
                roll.old_values[mb],
                returns[mb],
                m,
                cfg.clip,
                cfg.value_clip,
                n_tokens=max(n_mb, 1.0) / world,
            )
            opt.zero_grad(set_to_none=True)
            acc.backward(pg + cfg.vf_coef * vf)  # DDP averages: the sum over processes / n_mb
            acc.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sums = _sums(acc, pg.item(), vf.item(), *st.values())  # each a share of the minibatch mean
            stats = dict(zip(["policy_loss", "value_loss", *st], (v / world for v in sums), strict=True))
    return stats


def run_ppo(cfg: PPOConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) PPO; returns the logged rows (one per iteration) plus the final evaluation.

    Under ``torchrun``/``accelerate launch`` each of the W processes samples its contiguous 1/W of the
    iteration's prompts (with the random streams those prompts have in one process), advantages are
    normalised over all processes, and each process takes 1/W of every minibatch; losses are divided by
    the minibatch's token count over all processes, so the synced gradient is the one-process gradient
    of the same minibatch."""
    from accelerate import Accelerator

    cfg.validate()
    acc = Accelerator(cpu=not torch.cuda.is_available())
    world, rank, device = dist.world_size(), dist.rank(), acc.device
    if cfg.prompts_per_iteration % world or cfg.minibatch_size % world:
        raise ConfigError(
            f"prompts_per_iteration ({cfg.prompts_per_iteration}) and minibatch_size ({cfg.minibatch_size}) "
            f"must be multiples of the number of processes ({world})"
        )
    out = cfg.start("ppo", restart)
    problems, test = cfg.problems()
    by_id = {p.id: p for p in problems}

    torch.manual_seed(cfg.seed)
    ref, _ = load_lm(cfg.model, pad_with_eos=True)
    ref.eval().requires_grad_(False).to(device)
    policy, tok = load_lm(cfg.model, pad_with_eos=True)
    value_head = torch.nn.Linear(policy.config.hidden_size, 1)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    params = list(policy.parameters()) + list(value_head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    start, log = 0, []

    def load(ckpt: Path) -> dict[str, Any]:
        state = load_trainer_state(ckpt)
        load_model_weights(policy, ckpt)
        value_head.load_state_dict(read_tensors(ckpt, "value_head"))
        return state

    found = resume(out / "ckpt", load, log=print if dist.is_main() else lambda _: None)
    if found is not None:
        state = found[1]
        opt.load_state_dict(state["optimizer"])
        start, log = state["iteration"], [dict(r) for r in state["log"]]
        torch.set_rng_state(state["torch_rng"])
    model, opt = acc.prepare(PolicyWithValue(policy, value_head, cfg.temperature), opt)
    rng = random.Random(f"ppo/{cfg.seed}")
    epochs = cfg.iterations * cfg.prompts_per_iteration // len(problems) + 2
    order = [i for _ in range(epochs) for i in rng.sample(range(len(problems)), len(problems))]
    share = cfg.prompts_per_iteration // world

    with Progress(cfg.iterations, "ppo", enabled=progress and dist.is_main(), start=start) as bar:
        for it in range(start, cfg.iterations):
            first = it * cfg.prompts_per_iteration + rank * share
            questions = [problems[i] for i in order[first : first + share]]
            roll = rollout(
                cfg,
                policy,
                value_head,
                ref,
                tok,
                questions,
                by_id,
                seed=cfg.seed * 100_003 + it,
                prompt_offset=rank * share,
                progress=progress,
            )
            adv, returns = advantages(cfg, roll, acc)
            stats = update(cfg, model, opt, acc, roll, adv, returns, seed=cfg.seed * 7919 + it)
            n_correct = sum(bool(r["correct"]) for r in roll.rows)
            n_cut = sum(bool(r["truncated"]) for r in roll.rows)
            n_rows, score_sum, n_correct, kl_sum, n_cut = _sums(
                acc, len(roll.rows), float(roll.scores.sum()), n_correct, float(roll.kl.sum()), n_cut
            )
            row = {
                "iteration": it + 1,
                "samples_drawn": (it + 1) * cfg.prompts_per_iteration * cfg.samples_per_prompt,
                "reward": score_sum / n_rows,
                "train_accuracy": n_correct / n_rows,
                "kl": kl_sum / n_rows,
                "truncated": n_cut / n_rows,  # samples cut at max_new_tokens (scored wrong, no eos added)
                **stats,
            }
            if cfg.eval_every and (it + 1) % cfg.eval_every == 0 and test and dist.is_main():
                policy.eval()
                evaluated = evaluate_questions(
                    policy,
                    tok,
                    test,
                    **cfg.sampling(),
                    seed=cfg.seed,
                    progress=progress,
                )
                row.update(summarize_questions(evaluated))
                write_parquet(curve_file(out, it + 1), evaluated)  # per question: the units of a learning curve
            log.append(row)
            bar.update(it + 1, info=f"reward {row['reward']:.3f}")
            if (it + 1) % cfg.ckpt_every == 0 or it + 1 == cfg.iterations:
                acc.wait_for_everyone()
                if dist.is_main():
                    state = {"optimizer": opt.state_dict(), "iteration": it + 1, "log": log}
                    state["torch_rng"] = torch.get_rng_state()
                    save_checkpoint(
                        out / "ckpt",
                        it + 1,
                        policy,
                        state,
                        tokenizer=tok,
                        tensors={"value_head": value_head.state_dict()},
                    )
                    prune_checkpoints(out / "ckpt", 2)
                    write_iterations(out, log)
                acc.wait_for_everyone()
    final = out / "model"
    if dist.is_main() and not (final / "config.json").is_file():
        save_lm(policy, tok, final)
    result: dict[str, Any] = {}
    if dist.is_main():
        result = cfg.evaluate(final, test, out)
    acc.wait_for_everyone()  # a barrier before teardown (gloo can abort otherwise)
    rows = log + [{"iteration": cfg.iterations, "final": True, **result}]
    if dist.is_main():
        write_iterations(out, rows)
    return rows


def curve_file(out: str | Path, iteration: int) -> Path:
    """The per-question rows of the held-out evaluation after ``iteration`` (with ``eval_every``)."""
    return Path(out) / "curve" / f"iter-{iteration:06d}.parquet"


def write_iterations(out: Path, rows: list[dict[str, Any]]) -> None:
    """The run's per-iteration rows (reward, KL, and with ``eval_every`` the held-out accuracy) as
    ``OUT/iterations.jsonl``, rewritten at every checkpoint."""
    atomic_write_text(out / ITERATIONS, "".join(json.dumps(r) + "\n" for r in rows))
