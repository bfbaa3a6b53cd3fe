"""The ``system2`` command line: a thin layer that parses settings and calls the library's recipes.

It imports the library; nothing in the library imports it. One module per group of commands:
``planning`` (datasets, planners), ``selfimprove`` (the reasoning world and the self-improvement
recipes), ``repro`` (paper reproductions and the CoPE arm), ``btx`` (Branch-Train-MiX stage by stage).
"""

from __future__ import annotations

from typing import Annotated

import typer

from system2 import __version__
from system2.cli import btx, planning, repro, selfimprove
from system2.cli.common import App

app = App(
    help="system2: teach transformers to think slow (plan by imitating search, reason, self-improve).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"system2 {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """system2 command line."""


planning.register(app)
selfimprove.register(app)
repro.register(app)
btx.register(app)

__all__ = ["app"]
