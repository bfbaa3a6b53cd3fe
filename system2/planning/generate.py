"""Planning datasets: A* search dynamics of mazes or Sokoban levels, as sharded Parquet.

Layout of a dataset directory::

    DIR/run.json                             the settings (a rerun must use the same ones)
    DIR/data/train-00000-of-00005.parquet    tasks, one row each (datasets.load_dataset("parquet") opens DIR)
    DIR/data/test-00000-of-00001.parquet
    DIR/vocab.json                           the token vocabulary (bos, eos, then sorted tokens)
    DIR/meta.json                            counts and lengths; written last, it marks the dataset complete

Generation runs in two phases. (1) Blocks: block b draws a fixed number of wall layouts (mazes) or levels
(Sokoban) from a generator seeded by (seed, b), solves them with A* and writes ``DIR/.blocks/block-b.arrow``
(Arrow IPC: fast to write and read back); blocks run in parallel worker processes and a finished block is
kept, so a killed run resumes where it stopped. (2) Merge: blocks are read in index order, layouts seen before
are skipped, and whole layouts go to train until it is full, then to test (a layout never spans the two
splits; the last layout of a split is truncated). Test takes at most ``test_per_layout`` tasks of a layout
(the first ones, in block order), so a test split spreads over many layouts (200 tasks over at least 40 with
the default 5) instead of arriving as a few whole layouts; ``train_per_layout`` caps train the same way (off by
default: the official generator keeps every task of a layout); Sokoban levels are one task each. Because blocks
depend only on (seed, b) and the merge is sequential, the bytes of the dataset do not depend on the number of
workers.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc  # noqa: F401  (pa.ipc)
import pyarrow.parquet as pq

from system2.config import ConfigError, to_dict
from system2.console import Progress
from system2.planning import maze as maze_env
from system2.planning import sokoban as sokoban_env
from system2.planning import tokens as tk
from system2.planning.astar import TIES
from system2.runs import (
    FileProblem,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    open_run,
    read_json,
    read_parquet,
    read_run,
    require_kind,
)

SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("layout_id", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("prompt", pa.list_(pa.string())),
        ("trace", pa.list_(pa.string())),
        ("plan", pa.list_(pa.string())),
        ("prompt_len", pa.int32()),
        ("trace_len", pa.int32()),
        ("plan_len", pa.int32()),
        ("optimal_plan_length", pa.int32()),
    ]
)
SPLITS = ("train", "test")
DATASET_KIND = "planning-dataset"


@dataclass(frozen=True)
class GenerateConfig:
    """Settings of a planning dataset. ``workers`` changes speed only, never the output."""

    env: Literal["maze", "sokoban"] = "maze"  # the environment
    width: int = 10  # grid columns (Sokoban: including the border walls)
    height: int = 10  # grid rows (Sokoban: including the border walls)
    train: int = 1000  # training tasks
    test: int = 100  # test tasks, on layouts unseen in train
    test_per_layout: int = 5  # most test tasks per layout (maze), so test spreads over layouts; 0: no cap
    train_per_layout: int = 0  # most training tasks per layout (maze; more layouts for the same tasks); 0: no cap
    seed: int = 0  # the same seed gives the same bytes, for any number of workers
    mode: Literal["det", "nondet"] = "nondet"  # A* tie-breaking: det (the official one) or nondet (randomised)
    ties: Literal["coin", "priority"] = "coin"  # nondet: how equal-f ties are broken (coin: the official way)
    workers: int = 1  # worker processes (speed only)
    shard_size: int = 10_000  # rows per Parquet file
    block_size: int = 0  # layouts (maze) or levels (Sokoban) per block; 0 picks a default
    attempts_per_layout: int = 100  # maze: (start, goal) draws per wall layout
    min_plan_nodes: int = 0  # maze: keep plans with at least this many nodes; 0 means max(w, h)
    num_walls: int = 2  # Sokoban: interior walls
    num_boxes: int = 2  # Sokoban: boxes (and docks)
    max_trace_tokens: int = 0  # drop tasks whose trace has at least this many tokens; 0 keeps all
    cost_tokens: int = 0  # Sokoban vocabulary: cost tokens c0..c{n-1}; 0 sizes it to the data

    def validate(self) -> None:
        """Raise ConfigError for settings that cannot produce a dataset, before any work starts."""
        try:
            if self.env == "maze":
                maze_env.check_maze_size(self.width, self.height)
            elif self.env == "sokoban":
                sokoban_env.check_sokoban_size(self.width, self.height, self.num_walls, self.num_boxes)
            else:
                raise ConfigError(f"env must be 'maze' or 'sokoban', got {self.env!r}")
        except (maze_env.MazeError, sokoban_env.SokobanError) as e:
            raise ConfigError(str(e)) from None
        if self.mode not in ("det", "nondet"):
            raise ConfigError(f"mode must be 'det' or 'nondet', got {self.mode!r}")
        if self.ties not in TIES:
            raise ConfigError(f"ties must be one of {', '.join(TIES)}, got {self.ties!r}")
        nonnegative = (
            *("train", "test", "test_per_layout", "train_per_layout"),
            *("max_trace_tokens", "cost_tokens", "min_plan_nodes"),
        )
        for name in (*nonnegative, "block_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.train + self.test == 0:
            raise ConfigError("train and test are both 0: ask for at least one task")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.shard_size < 1:
            raise ConfigError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.attempts_per_layout < 1:
            raise ConfigError(f"attempts_per_layout must be >= 1, got {self.attempts_per_layout}")
        if self.env == "maze" and self.min_plan_nodes > self.width * self.height:
            raise ConfigError(f"min_plan_nodes={self.min_plan_nodes} exceeds the {self.width * self.height} cells")
        bound = maze_env.max_distinct_tasks(self.width, self.height) if self.env == "maze" else None
        if bound is not None and self.train + self.test > bound:
            raise ConfigError(
                f"a {self.width}x{self.height} maze admits at most {bound} distinct tasks, fewer than the "
                f"{self.train + self.test} asked for: lower train/test or enlarge the grid"
            )

    @property
    def deterministic(self) -> bool:
        return self.mode == "det"

    def resolved_block_size(self) -> int:
        if self.block_size:
            return self.block_size
        return 8 if self.env == "maze" else 64


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _block_seed(seed: int, block: int) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"system2-planning:{seed}:{block}".encode(), digest_size=8).digest(), "little"
    )


def make_row(
    task_id: str, layout_id: str, w: int, h: int, prompt: list[str], trace: list[str], plan: list[str]
) -> dict:
    """One dataset row in the ``SCHEMA`` layout."""
    return {
        "task_id": task_id,
        "layout_id": layout_id,
        "width": w,
        "height": h,
        "prompt": prompt,
        "trace": trace,
        "plan": plan,
        "prompt_len": len(prompt),
        "trace_len": len(trace),
        "plan_len": len(plan),
        "optimal_plan_length": len(plan) // 3,
    }


def _maze_block(cfg: GenerateConfig, rng: random.Random) -> list[dict]:
    rows = []
    min_nodes = cfg.min_plan_nodes or None
    for _ in range(cfg.resolved_block_size()):
        layout, free = maze_env.sample_layout(cfg.width, cfg.height, rng)
        layout_id = _digest(f"maze:{cfg.width}x{cfg.height}:" + ",".join(map(str, layout.walls)))
        for m, result in maze_env.layout_tasks(
            layout, free, rng, cfg.deterministic, cfg.attempts_per_layout, min_plan_nodes=min_nodes, ties=cfg.ties
        ):
            trace = tk.maze_trace(m, result)
            if cfg.max_trace_tokens and len(trace) >= cfg.max_trace_tokens:
                continue
            task_id = _digest(f"{layout_id}:{m.start}:{m.goal}")
            rows.append(
                make_row(task_id, layout_id, m.width, m.height, tk.maze_prompt(m), trace, tk.maze_plan(m, result))
            )
    return rows


def _sokoban_block(cfg: GenerateConfig, rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(cfg.resolved_block_size()):
        level = sokoban_env.generate_level(rng, cfg.width, cfg.height, cfg.num_walls, cfg.num_boxes)
        result = level.solve(deterministic=cfg.deterministic, rng=None if cfg.deterministic else rng, ties=cfg.ties)
        if not result.solved:
            continue
        trace = tk.sokoban_trace(level, result)
        if cfg.max_trace_tokens and len(trace) >= cfg.max_trace_tokens:
            continue
        level_id = _digest("sokoban:" + level.to_ascii())
        rows.append(
            make_row(
                level_id,
                level_id,
                level.width,
                level.height,
                tk.sokoban_prompt(level),
                trace,
                tk.sokoban_plan(level, result),
            )
        )
    return rows


def generate_block(cfg: GenerateConfig, block: int, path: str) -> pa.Table:
    """Generate block ``block``, write it atomically to ``path`` (kept for a resume) and return it."""
    rng = random.Random(_block_seed(cfg.seed, block))
    rows = _maze_block(cfg, rng) if cfg.env == "maze" else _sokoban_block(cfg, rng)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)

    def write(tmp: str | Path) -> None:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
            writer.write_table(table)

    atomic_write_with(path, write)
    return table


def _read_block(path: Path) -> pa.Table | None:
    """A finished block read back, or None when it is missing or damaged (it is made again)."""
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid):
        return None
    return table if table.schema.equals(SCHEMA) else None


class _Merge:
    """Sequential assignment of layouts to splits, in block order (rows stay in Arrow tables)."""

    def __init__(self, cfg: GenerateConfig) -> None:
        self.need = {"train": cfg.train, "test": cfg.test}
        self.per_layout = {"train": cfg.train_per_layout, "test": cfg.test_per_layout}  # 0: no cap
        self.counts = {"train": 0, "test": 0}
        self.parts: dict[str, list[pa.Table]] = {"train": [], "test": []}
        self.seen: set[str] = set()

    @property
    def done(self) -> bool:
        return all(self.counts[s] >= self.need[s] for s in SPLITS)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def add_block(self, table: pa.Table) -> None:
        groups: dict[str, list[int]] = {}
        for i, layout_id in enumerate(table.column("layout_id").to_pylist()):
            groups.setdefault(layout_id, []).append(i)
        take: dict[str, list[int]] = {"train": [], "test": []}
        for layout_id, rows in groups.items():
            if layout_id in self.seen:
                continue
            self.seen.add(layout_id)
            for split in SPLITS:
                room = self.need[split] - self.counts[split]
                if room > 0:
                    cap = self.per_layout[split]
                    chosen = rows[: min(room, cap) if cap else room]
                    take[split] += chosen
                    self.counts[split] += len(chosen)
                    break
        for split, rows in take.items():
            if rows:
                self.parts[split].append(table.take(rows))

    def tables(self) -> dict[str, pa.Table]:
        return {s: pa.concat_tables(p) if p else SCHEMA.empty_table() for s, p in self.parts.items()}


def _mp_context():  # noqa: ANN202
    """fork where the platform has it (fast, works from any __main__), spawn elsewhere."""
    import multiprocessing

    return get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as the parent process is gone (killed with SIGKILL, say), so no worker
    is left running under PID 1. A daemon thread polls the parent's id."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _block_path(out: Path, b: int) -> Path:
    return out / ".blocks" / f"block-{b:06d}.arrow"


def generate_dataset(
    cfg: GenerateConfig, out: str | Path, progress: bool = True, restart: bool = False
) -> dict[str, Any]:
    """Generate (or resume) the dataset described by ``cfg`` in ``out``; returns its meta data.

    ``out`` records the settings (``run.json``): a rerun with the same ones resumes or returns the
    finished dataset, other ones are refused (``restart`` moves the old directory aside first)."""
    cfg.validate()
    out = Path(out)
    created = not out.exists() or not any(out.iterdir())  # removed again if the settings prove impossible
    # a record made before a setting existed was made as it was then: priority ties, the old task draw (refused)
    legacy = {**to_dict(cfg), "ties": "priority", "train_per_layout": 0}
    open_run(
        out, DATASET_KIND, to_dict(cfg), restart=restart, log=print if progress else lambda _: None, defaults=legacy
    )
    if (out / "meta.json").exists():
        return read_json(out / "meta.json")
    (out / ".blocks").mkdir(exist_ok=True)

    merge = _Merge(cfg)
    total = cfg.train + cfg.test
    bar = Progress(total, f"generate {cfg.env} {cfg.width}x{cfg.height}", enabled=progress)
    max_blocks = 1_000_000
    pool = None
    if cfg.workers > 1:
        pool = ProcessPoolExecutor(cfg.workers, _mp_context(), initializer=_exit_with_parent, initargs=(os.getpid(),))
    futures: dict[int, Future] = {}
    empty_streak = 0
    try:
        for b in range(max_blocks):
            if pool is not None:  # keep the workers busy with the next blocks, in order
                for nb in range(b, b + 2 * cfg.workers):
                    if nb not in futures and not _block_path(out, nb).exists():
                        futures[nb] = pool.submit(generate_block, cfg, nb, str(_block_path(out, nb)))
            path = _block_path(out, b)
            # a missing or damaged block is made (again): it depends only on (seed, block)
            table = futures.pop(b).result() if b in futures else _read_block(path)
            if table is None:
                table = generate_block(cfg, b, str(path))
            before = merge.count
            merge.add_block(table)
            bar.advance(merge.count - before)
            empty_streak = empty_streak + 1 if merge.count == before else 0
            if merge.done:
                break
            if empty_streak >= 200:
                raise ConfigError(
                    f"200 blocks in a row gave no new task (have {merge.count} of {total}): the "
                    "settings admit too few distinct tasks; lower train/test or min_plan_nodes, "
                    "or enlarge the grid"
                )
    except ConfigError:
        shutil.rmtree(out if created else out / ".blocks", ignore_errors=True)
        raise
    finally:
        bar.close(stopped=not merge.done)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    meta = _write_splits(cfg, out, merge.tables())
    shutil.rmtree(out / ".blocks", ignore_errors=True)
    return meta


def _write_splits(cfg: GenerateConfig, out: Path, rows: dict[str, pa.Table]) -> dict[str, Any]:
    if cfg.env == "maze":
        vocab = tk.maze_vocabulary(cfg.width, cfg.height)
    else:
        tokens = {t for table in rows.values() for t in pc.unique(pc.list_flatten(table.column("trace"))).to_pylist()}
        max_cost = max((int(t[1:]) for t in tokens if tk.is_cost_token(t)), default=0)
        vocab = tk.sokoban_vocabulary(cfg.width, cfg.height, cfg.cost_tokens or max_cost + 1)
        if cfg.cost_tokens and max_cost >= cfg.cost_tokens:
            raise ConfigError(f"cost_tokens={cfg.cost_tokens} is too small: the traces use c{max_cost}")
    info = {
        "env": cfg.env,
        "width": cfg.width,
        "height": cfg.height,
        "mode": cfg.mode,
        "seed": cfg.seed,
        "ties": cfg.ties,
        "train_per_layout": cfg.train_per_layout,
    }
    return write_dataset(out, rows, vocab, info, cfg.shard_size)


def write_dataset(
    out: str | Path,
    rows: dict[str, list[dict] | pa.Table],
    vocab: tk.PlanningVocabulary,
    info: dict[str, Any],
    shard_size: int = 10_000,
) -> dict[str, Any]:
    """Write the rows (the ``SCHEMA`` columns; dicts or an Arrow table) of each split as Parquet shards,
    ``vocab.json`` and, last, ``meta.json`` (``info`` must give env, width, height). Also used for derived
    datasets such as the improved traces of search-dynamics bootstrapping."""
    out = Path(out)
    if read_run(out) is None:  # a derived dataset records what it was made from
        open_run(out, DATASET_KIND, info, log=lambda _: None)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    tables = {
        s: r.select(SCHEMA.names).cast(SCHEMA) if isinstance(r, pa.Table) else pa.Table.from_pylist(r, schema=SCHEMA)
        for s, r in rows.items()
    }
    files: dict[str, list[str]] = {}
    for split, table in tables.items():
        n_shards = max(1, math.ceil(table.num_rows / shard_size))
        files[split] = []
        for i in range(n_shards):
            chunk = table.slice(i * shard_size, shard_size)
            name = f"{split}-{i:05d}-of-{n_shards:05d}.parquet"
            atomic_write_with(data / name, lambda tmp, t=chunk: pq.write_table(t, tmp, compression="zstd"))
            files[split].append(f"data/{name}")
    atomic_write_text(out / "vocab.json", vocab.to_json() + "\n")

    def longest(column: str) -> int:
        return max((pc.max(t.column(column)).as_py() or 0 for t in tables.values() if t.num_rows), default=0)

    meta = {
        **info,
        "counts": {s: t.num_rows for s, t in tables.items()},
        "layouts": {s: pc.count_distinct(t.column("layout_id")).as_py() for s, t in tables.items()},
        "files": files,
        "vocab_size": len(vocab),
        "max_lengths": {k: longest(k) for k in ("prompt_len", "trace_len", "plan_len")},
    }
    atomic_write_json(out / "meta.json", meta)
    return meta


# ----- reading -------------------------------------------------------------------------------------
def dataset_ties(meta: dict[str, Any]) -> str:
    """How a dataset's non-deterministic A* broke ties (its ``meta.json``); datasets made before this was recorded
    used the per-push random priority."""
    return str(meta.get("ties", "priority"))


def read_meta(path: str | Path) -> dict[str, Any]:
    """The meta data of a finished dataset, with a clear error when ``path`` is not one."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p} is not a planning dataset (no such directory)")
    record = require_kind(p, DATASET_KIND, "the dataset")
    meta = p / "meta.json"
    if not meta.is_file():
        if record is not None:
            raise FileNotFoundError(
                f"{p} is an unfinished planning dataset: rerun the same generate command to finish it"
            )
        raise FileNotFoundError(
            f"{p} is not a planning dataset (no meta.json): make one with 'system2 planning generate'"
        )
    meta_data = read_json(meta)
    if not isinstance(meta_data, dict) or not isinstance(meta_data.get("files"), dict):
        raise FileProblem(f"{meta} is not a dataset's meta data (no 'files'): restore it or generate again")
    return meta_data


def read_split(path: str | Path, split: str, columns: list[str] | None = None) -> pa.Table:
    """All rows of one split as a pyarrow Table (only ``columns`` when given)."""
    meta = read_meta(path)
    if split not in meta["files"]:
        raise ValueError(f"unknown split {split!r}: this dataset has {', '.join(meta['files'])}")
    tables = [read_parquet(Path(path) / f, columns) for f in meta["files"][split]]
    schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
    return pa.concat_tables(tables) if tables else schema.empty_table()


def read_vocab(path: str | Path) -> tk.PlanningVocabulary:
    """The vocabulary stored in ``path/vocab.json`` (a dataset or a model directory)."""
    file = Path(path) / "vocab.json"
    tokens = read_json(file)
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise FileProblem(f"{file} is not a vocabulary (a JSON list of tokens): restore it")
    return tk.PlanningVocabulary(tuple(tokens))
