"""What every command shares: one-line errors, settings from defaults < YAML < flags < key=value, the
``--restart`` option, the result table (printed on the main process only) and ``App``, the typer app
whose commands list their ``key=value`` settings in ``--help``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import HAS_RICH, TyperCommand, TyperGroup, TyperOption

from system2.config import ConfigError, load_config
from system2.runs import FileProblem, RunError

Overrides = Annotated[
    list[str] | None,
    typer.Argument(metavar="KEY=VALUE", help="Settings (see Settings below); they win over flags and --config."),
]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML file of settings (flags and KEY=VALUE win).")]
Out = Annotated[str | None, typer.Option("--out", help="Run directory (rerun to resume).")]
Restart = Annotated[
    bool,
    typer.Option(
        "--restart",
        help="Move an existing run in --out aside (to OUT.old-N; nothing is deleted) and start again.",
        show_default=False,
    ),
]
SETTINGS_TITLE = "Settings (KEY=VALUE)"


class _FlagsWithoutType:
    """Help shows no ``<bool>`` after an on/off flag (``--help``, ``--version``, ``--restart``, ``--json``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:
            if isinstance(p, TyperOption) and p.is_flag and p.metavar is None:
                p.metavar = ""  # rich help prints the metavar, if set, in place of the type
        return params


class Group(_FlagsWithoutType, TyperGroup):
    """A command group of ``App``."""


class Command(_FlagsWithoutType, TyperCommand):
    """A command of ``App``: its ``--help`` ends with every ``key=value`` setting of its config class."""

    settings: str | None = None  # "module:Class" of the config, imported only when the help is shown

    def settings_class(self) -> type | None:
        from system2.cli.settings_help import load_class

        return load_class(self.settings) if self.settings else None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        cls = self.settings_class()
        if cls is None:
            return
        from system2.cli import settings_help

        rows = settings_help.settings(cls)
        options = {p.name: p.opts[0] for p in self.params if isinstance(p, TyperOption) and not p.is_flag}
        flags = settings_help.flag_keys(options, [s.key for s in rows])
        if HAS_RICH and self.rich_markup_mode is not None:
            settings_help.print_panel(SETTINGS_TITLE, rows, flags)
        else:
            with formatter.section(SETTINGS_TITLE):
                formatter.write_dl(settings_help.plain_rows(rows, flags))


class App(typer.Typer):
    """``typer.Typer`` whose groups and commands are ``Group`` and ``Command``; a command that reads a
    config class names it with ``settings="module:Class"`` and its help lists the class's settings."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, *, settings: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", type("Command", (Command,), {"settings": settings}))
        return super().command(name, **kwargs)


# errors a user can fix: bad settings, another run in the way, a missing or damaged file
USER_ERRORS = (ConfigError, RunError, FileProblem, ValueError, FileNotFoundError, NotADirectoryError)


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line on stderr and exit status 2 (never a traceback)."""
    try:
        yield
    except USER_ERRORS as e:
        fail(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)


def run_config(cls: type, config: Path | None, overrides: list[str] | None, flags: dict[str, Any]) -> Any:
    """Defaults < YAML file < command-line flags < key=value overrides, validated before any work."""
    items = [f"{k}={v}" for k, v in flags.items() if v is not None]
    with user_errors():
        cfg = load_config(cls, config, [*items, *(overrides or [])])
        cfg.validate()
    return cfg
