"""``system2 btx ...``: Branch-Train-MiX stage by stage (arXiv 2403.07816; docs/btx.md). Every stage reads the
same settings (``--config``, see configs/btx/) and resumes in the same run directory."""

from __future__ import annotations

from typing import Annotated

import typer

from system2.cli.common import App, ConfigFile, Out, Overrides, Restart, run_config, user_errors
from system2.dist import is_main

btx = App(help="Branch-Train-MiX: domain experts trained apart, mixed into one Mixtral model.", no_args_is_help=True)
SETTINGS = "system2.btx.stages:BTXConfig"


def _config(config, overrides, out):  # noqa: ANN001, ANN202 - typer's own types
    from system2.btx.stages import BTXConfig

    return run_config(BTXConfig, config, overrides, {"out": out})


@btx.command("branch", settings=SETTINGS)
def branch(overrides: Overrides = None, out: Out = None, config: ConfigFile = None, restart: Restart = False) -> None:
    """Copy the seed checkpoint once per domain (out/experts/NAME/init).

    Example: system2 btx branch --config configs/btx/paper.yaml
    """
    from system2.btx.stages import run_branch

    cfg = _config(config, overrides, out)
    with user_errors():
        outs = run_branch(cfg, restart=restart)
    if is_main():
        typer.echo("\n".join(str(o) for o in outs))


@btx.command("train", settings=SETTINGS)
def train(
    overrides: Overrides = None,
    out: Out = None,
    config: ConfigFile = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Train this domain's expert only.")] = None,
) -> None:
    """Train each branched copy on its own domain (one job per --domain on a cluster; no communication).

    Example: accelerate launch -m system2.cli btx train --config configs/btx/paper.yaml --domain math
    """
    from system2.btx.stages import run_train

    cfg = _config(config, overrides, out)
    with user_errors():
        outs = run_train(cfg, domain)
    if is_main():
        typer.echo("\n".join(str(o) for o in outs))


@btx.command("mix", settings=SETTINGS)
def mix(overrides: Overrides = None, out: Out = None, config: ConfigFile = None) -> None:
    """Mix the experts into one Mixtral checkpoint (out/mixed): FFNs become experts, the rest is averaged.

    Example: system2 btx mix --config configs/btx/paper.yaml
    """
    from system2.btx.stages import run_mix

    cfg = _config(config, overrides, out)
    with user_errors():
        path = run_mix(cfg)
    if is_main():
        typer.echo(str(path))


@btx.command("finetune", settings=SETTINGS)
def finetune(overrides: Overrides = None, out: Out = None, config: ConfigFile = None) -> None:
    """MoE fine-tuning of the mix on the union of the domains, with the load-balancing loss.

    Example: accelerate launch -m system2.cli btx finetune --config configs/btx/paper.yaml
    """
    from system2.btx.stages import run_finetune

    cfg = _config(config, overrides, out)
    with user_errors():
        path = run_finetune(cfg)
    if is_main():
        typer.echo(str(path))


@btx.command("evaluate", settings=SETTINGS)
def evaluate(
    overrides: Overrides = None,
    out: Out = None,
    config: ConfigFile = None,
    model: Annotated[str | None, typer.Option("--model", help="Model directory (default: the fine-tuned mix).")] = None,
) -> None:
    """Validation loss (nats per token) of each domain's valid documents, and their mean.

    Example: system2 btx evaluate --config configs/btx/paper.yaml
    """
    from system2.btx.stages import describe_result, run_evaluate

    cfg = _config(config, overrides, out)
    with user_errors():
        result = run_evaluate(cfg, model)
    if is_main():
        typer.echo(describe_result(result))


@btx.command("run", settings=SETTINGS)
def run_all(overrides: Overrides = None, out: Out = None, config: ConfigFile = None, restart: Restart = False) -> None:
    """Every stage in turn on this machine: branch, train, mix, finetune, then evaluate when domains have valid
    documents.

    Example: system2 btx run --config configs/btx/paper.yaml
    """
    from system2.btx.stages import describe_result, run_branch, run_evaluate, run_finetune, run_mix, run_train

    cfg = _config(config, overrides, out)
    with user_errors():
        run_branch(cfg, restart=restart)
        run_train(cfg)
        run_mix(cfg)
        run_finetune(cfg)
        result = run_evaluate(cfg) if any(d.valid for d in cfg.domains) else None
    if is_main() and result is not None:
        typer.echo(describe_result(result))


def register(app: App) -> None:
    """Add the ``btx`` group to the main app."""
    app.add_typer(btx, name="btx")
