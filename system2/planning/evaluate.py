"""Scoring sampled planner outputs: the Searchformer and Dualformer metrics (docs/planning.md).

Pure metric logic on string tokens, no model and no torch. A response is judged once
(:func:`judge_sample`), the judgements of one task are grouped in a :class:`TaskEvaluation`, and
:func:`summarize` turns many tasks into the published numbers:

- Searchformer (the official ``notebook/PerfTable.ipynb``): Solved % = ``any_correct@K``, Optimal % =
  ``any_optimal@K``, SWC, ILR-on-solved and ILR-on-optimal (against ``t*_i``, the mean trace length of 64
  non-deterministic A* runs).
- Dualformer (as remembered from the paper [M]): k-Solved-K / k-Optimal-K (``{k}_solved@K``,
  ``{k}_optimal@K``), mean reasoning length and diversity (mean number of distinct optimal plans among the
  K samples).
- Search steps: ``create`` clauses (nodes generated) in a trace. "Searches less" is counted in them, not
  in tokens, because Dualformer's dropped format (no ``close`` clauses, no costs) shortens an identical
  search by 31-64% of its tokens.

Wording: "feasible" = "correct" = "solved" (the plan reaches the goal legally); "optimal" = feasible with
as many plan nodes as the A* plan.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from system2.planning import tokens as tk
from system2.planning.maze import Maze
from system2.planning.sokoban import SokobanLevel

Task = Maze | SokobanLevel
ENVS = ("maze", "sokoban")


@dataclass(frozen=True)
class SampleResult:
    """The judgement of one decoder output."""

    valid: bool  # the output parsed into a plan (tokens.parse_response(...).valid)
    feasible: bool  # the plan is correct (task.check_plan)
    optimal: bool  # feasible and len(plan) == optimal_nodes
    plan_length: int  # number of plan nodes (0 if invalid)
    trace_tokens: int  # tokens before the first 'plan' (bos excluded), as the official evaluator counts
    plan: tuple[tuple[int, int], ...]
    search_steps: int = 0  # 'create' tokens among the trace tokens: nodes generated, whatever the trace format
    exact: bool | None = None  # the response is the dataset's trace + plan token for token (None: no reference)


def task_from_prompt(prompt: Sequence[str], env: str, width: int, height: int) -> Task:
    """Rebuild the task a prompt describes (raises MazeError / SokobanError on a malformed prompt,
    ValueError on an unknown ``env``)."""
    if env == "maze":
        return tk.maze_from_prompt(prompt, width, height)
    if env == "sokoban":
        return tk.sokoban_from_prompt(prompt, width, height)
    raise ValueError(f"env must be one of {ENVS}, got {env!r}")


def judge_sample(
    task: Task, tokens: Sequence[str], optimal_nodes: int, reference: Sequence[str] | None = None
) -> SampleResult:
    """Judge one generated token sequence against its task (docs/planning.md).

    ``reference`` (the dataset's trace + plan tokens) adds exact match: the response, read as the evaluator
    reads it, equals it token for token (the metric of deterministic-A* datasets, where a model that learned
    A* reproduces its sequence).

    Parsing follows the official evaluator (``tokens.parse_response``): cut at the first ``eos``, the part
    from the first ``plan`` on must be ``plan x y`` triples, the tokens before it are the trace. The plan is
    feasible if ``task.check_plan`` accepts it and optimal if it is
    feasible with ``optimal_nodes`` nodes. Never raises on junk tokens: whatever cannot be parsed is invalid.
    Raises ValueError only for ``optimal_nodes < 1``, a caller error.
    """
    if optimal_nodes < 1:
        raise ValueError(f"optimal_nodes must be >= 1 (the A* plan length in nodes), got {optimal_nodes}")
    parsed = tk.parse_response(tokens)
    exact = None if reference is None else tk.response_tokens(tokens) == list(reference)
    if not parsed.valid:
        return SampleResult(False, False, False, 0, parsed.trace_tokens, (), parsed.search_steps, exact)
    plan = parsed.plan
    feasible = task.check_plan(plan)
    optimal = feasible and len(plan) == optimal_nodes
    return SampleResult(True, feasible, optimal, len(plan), parsed.trace_tokens, plan, parsed.search_steps, exact)


def astar_trace_tokens(task: Task, rng: random.Random, ties: str = "coin") -> int:
    """Trace tokens of one non-deterministic A* run on ``task`` (ValueError if A* cannot solve it)."""
    result = task.solve(deterministic=False, rng=rng, ties=ties)
    if not result.solved:
        raise ValueError("A* cannot solve this task, so it has no reference trace length")
    if isinstance(task, Maze):
        return len(tk.maze_trace(task, result))
    return len(tk.sokoban_trace(task, result))


def astar_reference_trace_length(task: Task, runs: int = 64, seed: int = 0, ties: str = "coin") -> float:
    """``t*_i`` of ILR (docs/planning.md): the mean number of trace tokens over ``runs`` independent
    non-deterministic A* runs, run i seeded with ``random.Random(seed + i)`` so the value is reproducible;
    ``ties``: the tie-breaking the dataset's traces were made with.

    The official value comes from 64 runs per task (``sokobanAStarRefDataDB.trace_variance``)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    return sum(astar_trace_tokens(task, random.Random(seed + i), ties) for i in range(runs)) / runs


@dataclass
class TaskEvaluation:
    """Every judged response for one task, plus what its metrics need."""

    task_id: str
    optimal_nodes: int
    samples: list[SampleResult]  # the K sampled responses
    greedy: SampleResult | None = None  # the greedy response, if evaluated
    reference_trace_tokens: float | None = None  # t*_i (A* mean), if computed
    reference_search_steps: int | None = None  # 'create' clauses of the dataset's A* trace, if known
    layout_id: str | None = None  # the wall layout (Sokoban: the level) of the task, if known

    @property
    def num_feasible(self) -> int:
        return sum(s.feasible for s in self.samples)

    @property
    def num_optimal(self) -> int:
        return sum(s.optimal for s in self.samples)

    @property
    def shortest_feasible(self) -> int | None:
        """``l_i`` of SWC: the fewest plan nodes of a feasible sample (None if none is feasible)."""
        return min((s.plan_length for s in self.samples if s.feasible), default=None)

    @property
    def unique_optimal_plans(self) -> int:
        """Distinct optimal plans among the samples (Dualformer diversity [M], docs/planning.md)."""
        return len({s.plan for s in self.samples if s.optimal})


def evaluate_task(
    row: Mapping[str, Any],
    env: str,
    samples: Sequence[Sequence[str]],
    greedy: Sequence[str] | None = None,
    reference_runs: int = 0,
    seed: int = 0,
    ties: str = "coin",
) -> TaskEvaluation:
    """Judge the responses to one dataset row (``task_id``, ``prompt``, ``width``, ``height``,
    ``optimal_plan_length`` as written by ``generate``); with ``reference_runs > 0`` also compute ``t*_i`` from
    that many A* runs (with ``ties``, the dataset's tie-breaking). The row's ``layout_id`` and the search steps of
    its ``trace`` (A*'s own) are kept when the row has them; with its ``trace`` and ``plan`` every response is
    also checked for exact match."""
    task = task_from_prompt(list(row["prompt"]), env, int(row["width"]), int(row["height"]))
    nodes = int(row["optimal_plan_length"])
    trace = row.get("trace")
    layout = row.get("layout_id")
    plan = row.get("plan")
    reference = None if trace is None or plan is None else [*trace, *plan]
    return TaskEvaluation(
        task_id=str(row["task_id"]),
        optimal_nodes=nodes,
        samples=[judge_sample(task, s, nodes, reference) for s in samples],
        greedy=None if greedy is None else judge_sample(task, greedy, nodes, reference),
        reference_trace_tokens=(
            astar_reference_trace_length(task, reference_runs, seed, ties) if reference_runs > 0 else None
        ),
        reference_search_steps=None if trace is None else tk.search_steps(list(trace)),
        layout_id=None if layout is None else str(layout),
    )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _ilr_term(task: TaskEvaluation, optimal: bool) -> tuple[float, bool]:
    """One task's ILR term ``c_i * t*_i / t_i`` and whether it is undefined (t_i == 0).

    ``t_i`` is the mean trace length of the feasible (``optimal=False``) or optimal samples and c_i = 0 when
    there are none. When every such sample has an empty trace (Dualformer fast mode answers with the plan
    alone) t*_i / t_i has no finite value: there is no search to compare with A*'s, so the term counts as 0
    (as an unsolved task would) and the task is reported in ``ilr_undefined_tasks`` instead of inflating
    the mean with an infinite ratio.
    """
    lengths = [s.trace_tokens for s in task.samples if (s.optimal if optimal else s.feasible)]
    if not lengths:
        return 0.0, False
    t = _mean(lengths)
    if t == 0:
        return 0.0, True
    assert task.reference_trace_tokens is not None
    return task.reference_trace_tokens / t, False


def summarize(tasks: Sequence[TaskEvaluation], ks: Sequence[int] = (1, 3)) -> dict[str, float | None]:
    """Aggregate metrics over tasks that all have the same number K of samples (docs/planning.md).

    Keys (K is the literal sample count, e.g. ``any_optimal@64``):

    - ``tasks``, ``samples_per_task``: n and K; ``layouts``: distinct layout ids among the tasks, present
      only when every task has one.
    - ``greedy_optimal``, ``greedy_feasible``: fraction of tasks whose greedy response is optimal / feasible;
      present only when every task has a greedy judgement.
    - ``greedy_exact``: fraction of tasks whose greedy response is the dataset's trace + plan token for token
      (the deterministic-A* metric; meaningful on deterministic datasets), present when every greedy
      judgement has a reference; ``exact_rate``: the fraction of samples that are, likewise.
    - ``any_correct@K``, ``any_optimal@K``: fraction of tasks with >= 1 feasible / optimal sample (the
      Searchformer Solved % and Optimal %).
    - ``{k}_solved@K``, ``{k}_optimal@K`` for k in ``ks``: fraction with >= k feasible / optimal samples
      (Dualformer k-Solved-K, k-Optimal-K).
    - ``swc``: (1/n) sum_i c_i l*_i / max(l_i, l*_i), l_i the shortest feasible sample, c_i = 1 if any.
    - ``ilr_solved``, ``ilr_optimal``: (1/n) sum_i c_i t*_i / t_i with t_i the mean trace tokens of the
      feasible / optimal samples; present only when every task has ``reference_trace_tokens``. Terms with
      t_i == 0 are 0 (see ``_ilr_term``) and counted: ``ilr_solved_undefined_tasks``,
      ``ilr_optimal_undefined_tasks`` and their union ``ilr_undefined_tasks``.
    - ``mean_trace_tokens`` (all samples), ``mean_trace_tokens_optimal`` (optimal samples; 0.0 if none).
    - ``mean_search_steps``: mean over tasks of the task's mean ``create`` clauses per sample (the nodes its
      search generated; unlike tokens, the same whether or not close clauses and costs are written);
      ``mean_search_steps_optimal``: the same over the optimal samples, averaged over the tasks that have
      one (None if no task has).
    - ``diversity``: mean number of distinct optimal plans among a task's samples.
    - ``valid_rate``: fraction of samples that parse into a plan.

    Greedy responses enter only the ``greedy_*`` keys. With K = 0 (a greedy-only evaluation) the
    sample-based keys are omitted. Raises ValueError for no tasks, unequal K, or k < 1 in ``ks``.
    """
    if not tasks:
        raise ValueError("no tasks to summarize")
    counts = {len(t.samples) for t in tasks}
    if len(counts) != 1:
        raise ValueError(f"every task needs the same number of samples K, got {sorted(counts)}")
    if any(k < 1 for k in ks):
        raise ValueError(f"every k in ks must be >= 1, got {list(ks)}")
    K = counts.pop()
    n = len(tasks)
    out: dict[str, float | None] = {"tasks": float(n), "samples_per_task": float(K)}
    if all(t.layout_id is not None for t in tasks):
        out["layouts"] = float(len({t.layout_id for t in tasks}))

    if all(t.greedy is not None for t in tasks):
        out["greedy_optimal"] = sum(t.greedy.optimal for t in tasks) / n  # type: ignore[union-attr]
        out["greedy_feasible"] = sum(t.greedy.feasible for t in tasks) / n  # type: ignore[union-attr]
        if all(t.greedy.exact is not None for t in tasks):  # type: ignore[union-attr]
            out["greedy_exact"] = sum(bool(t.greedy.exact) for t in tasks) / n  # type: ignore[union-attr]
    if K == 0:
        return out

    feasible = [t.num_feasible for t in tasks]
    optimal = [t.num_optimal for t in tasks]
    out[f"any_correct@{K}"] = sum(f >= 1 for f in feasible) / n
    out[f"any_optimal@{K}"] = sum(o >= 1 for o in optimal) / n
    for k in ks:
        out[f"{k}_optimal@{K}"] = sum(o >= k for o in optimal) / n
        out[f"{k}_solved@{K}"] = sum(f >= k for f in feasible) / n

    swc = 0.0
    for t in tasks:
        shortest = t.shortest_feasible
        if shortest is not None:
            swc += t.optimal_nodes / max(shortest, t.optimal_nodes)
    out["swc"] = swc / n

    if all(t.reference_trace_tokens is not None for t in tasks):
        solved_terms = [_ilr_term(t, optimal=False) for t in tasks]
        optimal_terms = [_ilr_term(t, optimal=True) for t in tasks]
        out["ilr_solved"] = sum(v for v, _ in solved_terms) / n
        out["ilr_optimal"] = sum(v for v, _ in optimal_terms) / n
        out["ilr_solved_undefined_tasks"] = float(sum(u for _, u in solved_terms))
        out["ilr_optimal_undefined_tasks"] = float(sum(u for _, u in optimal_terms))
        out["ilr_undefined_tasks"] = float(
            sum(a or b for (_, a), (_, b) in zip(solved_terms, optimal_terms, strict=True))
        )

    all_samples = [s for t in tasks for s in t.samples]
    out["mean_trace_tokens"] = _mean([s.trace_tokens for s in all_samples])
    out["mean_trace_tokens_optimal"] = _mean([s.trace_tokens for s in all_samples if s.optimal])
    out["mean_search_steps"] = _mean([_mean([s.search_steps for s in t.samples]) for t in tasks])
    optimal_steps = [[s.search_steps for s in t.samples if s.optimal] for t in tasks]
    out["mean_search_steps_optimal"] = _mean([_mean(v) for v in optimal_steps if v]) if any(optimal_steps) else None
    out["diversity"] = sum(t.unique_optimal_plans for t in tasks) / n
    out["valid_rate"] = sum(s.valid for s in all_samples) / len(all_samples)
    if all(s.exact is not None for s in all_samples):
        out["exact_rate"] = sum(bool(s.exact) for s in all_samples) / len(all_samples)
    return out


def task_rows(tasks: Sequence[TaskEvaluation]) -> list[dict[str, Any]]:
    """One flat dict per task (scalars or None, the same keys in every row) for a Parquet table."""
    rows = []
    for t in tasks:
        feasible = [s for s in t.samples if s.feasible]
        optimal = [s for s in t.samples if s.optimal]
        g = t.greedy
        rows.append(
            {
                "task_id": t.task_id,
                "layout_id": t.layout_id,
                "optimal_nodes": t.optimal_nodes,
                "samples": len(t.samples),
                "valid": sum(s.valid for s in t.samples),
                "feasible": len(feasible),
                "optimal": len(optimal),
                "shortest_feasible": t.shortest_feasible,
                "mean_trace_tokens": _mean([s.trace_tokens for s in t.samples]) if t.samples else None,
                "mean_trace_tokens_feasible": _mean([s.trace_tokens for s in feasible]) if feasible else None,
                "mean_trace_tokens_optimal": _mean([s.trace_tokens for s in optimal]) if optimal else None,
                "mean_search_steps": _mean([s.search_steps for s in t.samples]) if t.samples else None,
                "mean_search_steps_optimal": _mean([s.search_steps for s in optimal]) if optimal else None,
                "unique_optimal_plans": t.unique_optimal_plans,
                "greedy_valid": None if g is None else g.valid,
                "greedy_feasible": None if g is None else g.feasible,
                "greedy_optimal": None if g is None else g.optimal,
                "greedy_plan_length": None if g is None else g.plan_length,
                "greedy_trace_tokens": None if g is None else g.trace_tokens,
                "greedy_search_steps": None if g is None else g.search_steps,
                "greedy_exact": None if g is None else g.exact,
                "reference_trace_tokens": t.reference_trace_tokens,
                "reference_search_steps": t.reference_search_steps,
            }
        )
    return rows
