"""The ``key=value`` settings of a command, listed in its ``--help`` straight from its config dataclass.

Each setting's meaning is the trailing ``# comment`` on the field's line in the dataclass source (a field
a class inherits, or redeclares without a comment, takes its base class's comment), so the list cannot
drift from the code. Nested dataclasses give dotted keys (``train.lr``), with defaults as the parent
sets them.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import io
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from typing import Any

# comments that are tool pragmas, not meanings
_PRAGMAS = ("fmt:", "type:", "noqa", "pragma:")


@dataclass(frozen=True)
class Setting:
    key: str  # dotted key, as typed on the command line
    type: str  # what the value must look like: int, float, str, true|false, maze|sokoban, ...
    default: str  # the default as it would be typed
    meaning: str  # the field's trailing comment ("" when it has none)


def load_class(path: str) -> type:
    """``"package.module:Class"`` -> the class (imported only when a help or a test needs it)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@functools.cache
def own_comments(cls: type) -> dict[str, str]:
    """Trailing comments of the fields ``cls`` itself declares, by field name."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if text and not text.startswith(_PRAGMAS):
                comments[tok.start[0]] = text
    out: dict[str, str] = {}
    for node in getattr(body, "body", []):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            text = " ".join(comments[n] for n in lines if n in comments)
            if text:
                out[node.target.id] = text
    return out


def field_comment(cls: type, name: str) -> str:
    """The meaning of field ``name`` of ``cls``: its own comment, else the nearest base class's."""
    for klass in cls.__mro__:
        if dataclasses.is_dataclass(klass) and name in klass.__dict__.get("__annotations__", {}):
            text = own_comments(klass).get(name)
            if text:
                return text
    return ""


def type_text(tp: Any) -> str:
    """A field type as a user types its value."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        return "|".join(parts + (["none"] if type(None) in args else []))
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin is list:
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_text(args[0])}"
        if args and all(a == args[0] for a in args):
            return f"{len(args)} {type_text(args[0])}s"
        return "list of " + ", ".join(type_text(a) for a in args)
    if tp is bool:
        return "true|false"
    return getattr(tp, "__name__", str(tp))


def value_text(value: Any) -> str:
    """A default as a user would type it after ``key=``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, float) and len(repr(value)) > 10:
        return f"{value:.6g}"  # 1/6 reads as 0.166667
    return str(value)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def settings(cls: type, prefix: str = "", defaults: Any = None) -> list[Setting]:
    """Every ``key=value`` setting of config class ``cls``, nested dataclasses flattened to dotted keys."""
    hints = typing.get_type_hints(cls)
    out: list[Setting] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(settings(tp, f"{prefix}{f.name}.", default))
        else:
            out.append(Setting(prefix + f.name, type_text(tp), value_text(default), field_comment(cls, f.name)))
    return out


def flag_keys(option_names: dict[str, str], keys: list[str]) -> dict[str, str]:
    """Which setting each flag sets: ``{key: "--flag"}``, from the flags' parameter names.

    A flag whose parameter name is a key sets that key (``--train-data`` sets ``train_data``); otherwise
    it sets the one dotted key that ends in its name (``--steps`` sets ``train.steps``), if there is one.
    """
    out: dict[str, str] = {}
    for name, flag in option_names.items():
        if name in keys:
            out[name] = flag
            continue
        ends = [k for k in keys if k.endswith("." + name)]
        if len(ends) == 1:
            out[ends[0]] = flag
    return out


def plain_rows(rows: list[Setting], flags: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The settings as (key, description) pairs, for help without rich."""
    flags = flags or {}
    out = []
    for s in rows:
        extra = f"default: {s.default}" + (f"; flag {flags[s.key]}" if s.key in flags else "")
        out.append((s.key, f"<{s.type}> {s.meaning}  [{extra}]"))
    return out


def print_panel(title: str, rows: list[Setting], flags: dict[str, str] | None = None) -> None:
    """The settings as a help panel in typer's style: key, type, meaning with the default (and flag)."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    from typer import rich_utils

    flags = flags or {}
    table = Table(show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1))
    for s in rows:
        meaning = Text(s.meaning, style=rich_utils.STYLE_OPTION_HELP)
        extra = f"default: {s.default}" + (f"; flag {flags[s.key]}" if s.key in flags else "")
        meaning.append(("  " if s.meaning else "") + f"[{extra}]", style=rich_utils.STYLE_OPTION_DEFAULT)
        table.add_row(Text(s.key, style=rich_utils.STYLE_OPTION), Text(s.type, style=rich_utils.STYLE_TYPES), meaning)
    panel = Panel(table, border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER, title=title, title_align="left")
    rich_utils._get_rich_console().print(panel)
