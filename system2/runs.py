"""Run directories: recorded settings, resume-or-refuse, and file writes a rerun can trust.

Every run or dataset directory holds ``run.json``: its kind (``planning-dataset``, ``sft``, ...) and the
full resolved settings it was made with. ``open_run`` is called before any compute:

- a new (or empty) directory gets its record and the job starts;
- the same kind with the same settings resumes (the job skips or continues what is on disk);
- other settings are refused with the differing keys and the fix: a new ``--out``, or ``--restart``,
  which moves the old run aside (``DIR.old-N``) and never deletes it;
- a directory of another kind (a dataset given as a run) is refused by name, ``--restart`` or not.

Settings that cannot change results (``VOLATILE``: paths of the run itself, worker counts, logging and
checkpoint frequency) may differ between runs. Paths given as settings are recorded absolute.

Every file is written to a temporary sibling and renamed into place, so a killed job never leaves a
half-written file under its final name; files and directories get the permissions the user's umask
gives (``mkstemp`` alone would leave 0600 files that a team on a shared cluster cannot read).
Unreadable or damaged files fail with ``FileProblem``: one line that names the file, what is wrong and
what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from system2.config import default_settings, to_dict

RUN_FILE = "run.json"
# leaf setting names that never change a result: where the run lives, speed and logging
VOLATILE = frozenset({"out", "workers", "log_every", "tensorboard", "ckpt_every", "keep_ckpts", "progress"})
# leaf setting names that hold paths to inputs: recorded absolute, so a relative path matches its resolved form
PATH_KEYS = frozenset({"data", "model", "train_data", "eval_data", "init_from", "world", "corpus", "tokenizer",
                       "entity_names", "eval_parent_child"})  # fmt: skip
KINDS = {
    "planning-dataset": "a planning dataset",
    "arithmetic-dataset": "an arithmetic dataset",
    "quantity-dataset": "a quantity-world dataset",
    "instruction-dataset": "an instruction-world dataset",
    "thought-dataset": "a TPO-world dataset",
    "lift-dataset": "a LIFT-world dataset",
    "planning-train": "a planner training run",
    "planning-eval": "a planner evaluation",
    "planning-bootstrap": "a search-dynamics bootstrapping run",
    "sft": "an SFT run",
    "irpo": "an IRPO run",
    "expert-iteration": "an expert-iteration run",
    "ppo": "a PPO run",
    "rcrl": "an RCRL run",
    "orm": "an outcome-reward-model run",
    "self-rewarding": "a Self-Rewarding run",
    "meta-rewarding": "a Meta-Rewarding run",
    "tpo": "a TPO run",
    "lift": "a LIFT run",
    "cope-arm": "a CoPE arm",
    "reverse-arm": "a reverse-training arm",
    "reverse-pretrain": "a reverse-training pretraining run",
    "repro": "a reproduction",
    "demo": "the demo's directory",
}


class RunError(ValueError):
    """A directory that cannot be used as asked: other settings, another kind, not a run at all."""


class FileProblem(ValueError):
    """A file that cannot be read: damaged, truncated or of the wrong format. The message names it."""


# ----- permissions and atomic writes -----------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _chmod(path: Path, directory: bool) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path`` (atomic on POSIX).

    On an exception the temporary file is removed and ``path`` is left untouched."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _chmod(tmp_path, directory=False)
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` by a rename."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        _chmod(tmp, directory=True)
        for p in tmp.rglob("*"):  # libraries (save_pretrained, torch.save) write with their own modes
            if not p.is_symlink():
                _chmod(p, directory=p.is_dir())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result into place (for libraries that write files)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_parquet(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows (one mapping per row, the same keys) as a Parquet table at ``path``, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(list(rows))
    atomic_write_with(path, lambda tmp: pq.write_table(table, tmp))


# ----- reading files with clear errors ----------------------------------------------------------------
def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; a damaged file raises ``FileProblem`` naming it."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise FileProblem(
            f"{p} is not valid JSON ({e.msg}, line {e.lineno}): the file is damaged or truncated; "
            "restore it, or make the directory again"
        ) from None
    except UnicodeDecodeError:
        raise FileProblem(f"{p} is not a text file: the file is damaged; restore it") from None


def read_parquet(path: str | os.PathLike[str], columns: list[str] | None = None) -> Any:
    """A pyarrow Table from ``path`` (only ``columns`` when given); a damaged or truncated file raises
    ``FileProblem`` naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FileProblem(
            f"{path} is not a readable Parquet file ({reason}): it is damaged or truncated; "
            "restore it, or make the dataset again"
        ) from None


# ----- run records --------------------------------------------------------------------------------------
def _resolve_paths(node: Any, key: str = "") -> Any:
    if isinstance(node, Mapping):
        return {k: _resolve_paths(v, k) for k, v in node.items()}
    if key in PATH_KEYS and isinstance(node, str) and node:
        return os.path.abspath(node)
    return node


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _identity(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in _flatten(settings).items() if k.rsplit(".", 1)[-1] not in VOLATILE}


def describe(kind: str | None) -> str:
    return KINDS.get(kind or "", f"a {kind!r} directory")


def read_run(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record of a run or dataset directory (kind, settings), or None when it has none."""
    record = Path(path) / RUN_FILE
    if not record.is_file():
        return None
    data = read_json(record)
    if not isinstance(data, dict) or "kind" not in data or not isinstance(data.get("settings"), dict):
        raise FileProblem(f"{record} is not a run record (it needs 'kind' and 'settings'): restore it")
    return data


def require_kind(path: str | os.PathLike[str], kinds: str | tuple[str, ...], role: str) -> dict[str, Any] | None:
    """Refuse ``path`` (given as ``role``, e.g. ``--data``) when its record names another kind; returns
    the record (None for a directory without one, such as a model directory made elsewhere)."""
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    record = read_run(path)
    if record is not None and record["kind"] not in kinds:
        wanted = " or ".join(describe(k) for k in kinds)
        raise RunError(f"{role} {path} is {describe(record['kind'])}, not {wanted}")
    return record


def move_aside(path: str | os.PathLike[str]) -> Path:
    """Rename ``path`` to the first free ``path.old-N`` (never deletes anything); returns the new name."""
    p = Path(path)
    n = 1
    while p.with_name(f"{p.name}.old-{n}").exists():
        n += 1
    target = p.with_name(f"{p.name}.old-{n}")
    os.replace(p, target)
    return target


def _differences(
    old: Mapping[str, Any], new: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> list[str]:
    """The settings that differ, as ``key: old -> new`` lines. A key the old record lacks is no difference when
    the new value is its ``defaults`` value: a setting added later keeps the old behaviour by default."""
    a, b, d = _identity(old), _identity(new), _identity(defaults or {})
    return [
        f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k) and not (k not in a and k in d and b.get(k) == d[k])
    ]


def open_run(
    out: str | os.PathLike[str],
    kind: str,
    settings: Mapping[str, Any] | Any,
    restart: bool = False,
    log: Callable[[str], None] = print,
    defaults: Mapping[str, Any] | None = None,
) -> Path:
    """Record ``settings`` in ``out`` (new), accept them (a resume), or refuse, before any compute.

    ``settings`` is a config dataclass or a plain mapping. With a dataclass (or a mapping and its ``defaults``), a
    setting the recorded run lacks is accepted when it holds its default, so a run recorded before a setting was
    added still resumes.

    ``restart`` moves a run of the same kind aside first. Under several processes only the main one
    moves or writes; the others wait for its record."""
    from system2 import __version__
    from system2.dist import is_main, world_size

    out = Path(out)
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        defaults, settings = default_settings(settings), to_dict(settings)
    defaults = json.loads(json.dumps(_resolve_paths(dict(defaults or {}))))
    settings = json.loads(json.dumps(_resolve_paths(dict(settings))))  # as it reads back: lists, not tuples
    record = {"kind": kind, "settings": settings, "version": __version__}
    if not is_main() and world_size() > 1:
        return _await_record(out, kind, settings, restart, defaults)
    existing = read_run(out) if out.is_dir() else None
    if existing is not None and existing["kind"] == kind and {p.name for p in out.iterdir()} == {RUN_FILE}:
        existing = None  # an earlier attempt that stopped before writing anything: nothing to resume
    if existing is not None and existing["kind"] != kind:
        raise RunError(f"{out} is {describe(existing['kind'])}, not {describe(kind)}: pass a new --out")
    if existing is None and out.exists() and (not out.is_dir() or any(p.name != RUN_FILE for p in out.iterdir())):
        if not restart:
            raise RunError(
                f"{out} exists and is not a system2 run directory (no {RUN_FILE}): pass a new --out, or "
                "--restart to move it aside"
            )
        log(f"moved {out} aside to {move_aside(out)}")
    elif existing is not None:
        diff = _differences(existing["settings"], settings, defaults)
        if diff and not restart:
            raise RunError(
                f"{out} holds {describe(kind)} made with other settings ({'; '.join(diff)}): pass a new --out, "
                "or --restart to move the old run aside and start again"
            )
        if restart:
            log(f"moved the old run to {move_aside(out)}")
        else:
            log(f"resuming {describe(kind)} in {out}")
            return out  # the record keeps the settings the run was made with
    out.mkdir(parents=True, exist_ok=True)
    _chmod(out, directory=True)
    atomic_write_json(out / RUN_FILE, record)
    return out


def _await_record(
    out: Path, kind: str, settings: Mapping[str, Any], restart: bool, defaults: Mapping[str, Any], timeout: float = 600
) -> Path:
    deadline = time.monotonic() + timeout
    while True:
        existing = read_run(out) if (out / RUN_FILE).is_file() else None
        if existing is not None and existing["kind"] == kind:
            diff = _differences(existing["settings"], settings, defaults)
            if not diff:
                return out
            if not restart:
                raise RunError(f"{out} holds {describe(kind)} made with other settings ({'; '.join(diff)})")
        if time.monotonic() > deadline:
            raise RunError(f"{out}: the main process wrote no run record within {timeout:.0f} s")
        time.sleep(0.2)
