"""One name, one meaning: no two modules of the library define a public class or type alias of the same
name (two ``DecoderState`` for two different models, two ``Mode`` for a training target and a decoding
mode). A shared type is defined once and imported where it is used."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import system2

ROOT = Path(system2.__file__).parent
TYPE_FACTORIES = {"TypeVar", "ParamSpec", "TypeVarTuple", "NewType", "NamedTuple", "TypedDict"}
BUILTIN_TYPES = {"None", "int", "float", "complex", "bool", "str", "bytes", "list", "dict", "tuple", "set", "object"}


def _is_type_expression(node: ast.expr) -> bool:
    """``Literal[...]``, ``tuple[int, int]``, ``A | B``, ``Annotated[...]``, ``typing.Any``, ``int`` or a
    bare class name: what the right-hand side of a type alias looks like."""
    if isinstance(node, ast.Subscript):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_type_expression(node.left) and _is_type_expression(node.right)
    if isinstance(node, ast.Name):
        return node.id[:1].isupper() or node.id in BUILTIN_TYPES
    if isinstance(node, ast.Attribute):
        return node.attr[:1].isupper()
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name in TYPE_FACTORIES
    return False


def public_type_names(tree: ast.Module) -> list[str]:
    """Public top-level classes and type aliases of a module: ``class X``, ``X = Literal[...]`` (any
    type expression bound to a capitalised name that is not an ALL_CAPS constant), ``X: TypeAlias = ...``
    and ``type X = ...``."""
    names = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name[:1].isupper() and name != name.upper() and _is_type_expression(node.value):
                names.append(name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if "TypeAlias" in ast.unparse(node.annotation):
                names.append(node.target.id)
        elif type(node).__name__ == "TypeAlias":  # ``type X = ...`` (Python 3.12)
            names.append(node.name.id)  # type: ignore[attr-defined]
    return [n for n in names if not n.startswith("_")]


def shared_names(modules: dict[str, str]) -> dict[str, list[str]]:
    """{name: modules} for every public class or type alias defined in more than one of ``modules``
    (module name -> source)."""
    where: dict[str, list[str]] = defaultdict(list)
    for module, source in sorted(modules.items()):
        for name in dict.fromkeys(public_type_names(ast.parse(source))):
            where[name].append(module)
    return {name: mods for name, mods in sorted(where.items()) if len(mods) > 1}


def test_shared_names_are_found() -> None:
    modules = {
        "a.py": "from typing import Literal\nclass State: ...\nMode = Literal['x']\nLIMIT = 3\n_Private = int\n",
        "b.py": "class State: ...\nMode = Literal['y']\nPos = tuple[int, int]\nLIMIT = 4\n_Private = str\n",
        "c.py": "Pos: TypeAlias = tuple[int, int]\nstate = State\nT = TypeVar('T')\nclass Other: ...\n",
        "d.py": "Key = str | None\nMode = 'not a type'\n",
        "e.py": "Key = int\nT = TypeVar('T')\nstate = State\n",
    }
    assert shared_names(modules) == {
        "Key": ["d.py", "e.py"],
        "Mode": ["a.py", "b.py"],
        "Pos": ["b.py", "c.py"],
        "State": ["a.py", "b.py"],
    }


def test_every_public_class_and_type_alias_has_one_home() -> None:
    modules = {str(p.relative_to(ROOT.parent)): p.read_text(encoding="utf-8") for p in sorted(ROOT.rglob("*.py"))}
    shared = shared_names(modules)
    assert shared == {}, (
        "public classes or type aliases defined in more than one module; give each meaning its own name, or "
        "define a shared type once and import it:\n" + "\n".join(f"{n}: {', '.join(m)}" for n, m in shared.items())
    )
