"""``system2 repro ...``: the papers' experiments in miniature, single CoPE arms and the reverse-training
pretraining recipe."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from system2.cli.common import App, ConfigFile, Overrides, Restart, fail, run_config, user_errors
from system2.config import parse_overrides
from system2.dist import is_main

repro = App(
    help="Paper reproductions in miniature: every arm, the papers' metrics, claim checks.", no_args_is_help=True
)
# command: (the paper as it names itself, its arXiv id, what the reproduction compares)
REPROS = {
    "searchformer": ("Searchformer (Lehnert et al. 2024)", "2402.14083",
                     "solution-only vs search-augmented planners, then search-dynamics bootstrapping"),
    "dualformer": ("Dualformer (Su et al. 2024)", "2410.09918",
                   "randomized trace dropping; slow, fast and auto mode vs Searchformer and solution-only"),
    "cope": ("CoPE (Golovneva et al. 2024)", "2405.18719",
             "absolute vs RoPE vs CoPE position encoding on Flip-Flop, selective copy and counting"),
    "cope-lm": ("CoPE (Golovneva et al. 2024), language modelling", "2405.18719",
                "absolute vs RoPE vs CoPE decoders trained at context T on a local corpus, perplexity at T, 2T and 4T"),
    "irpo": ("IRPO (Pang et al. 2024)", "2404.19733",
             "Iterative Reasoning Preference Optimization vs DPO alone, STaR and SFT, on arithmetic"),
    "rl-reasoning": ("Teaching Large Language Models to Reason with Reinforcement Learning (Havrilla et al. 2024)",
                     "2403.04642", "expert iteration, PPO, RCRL and outcome-reward-model reranking, on arithmetic"),
    "reverse": ("Reverse Training to Nurse the Reversal Curse (Golovneva et al. 2024)", "2403.13799",
                "standard vs token, word, entity-preserving and random-segment reversal, on the reversal curse"),
    "dualformer-llm": ("Dualformer (Su et al. 2024), language models", "2410.09918",
                       "SFT on chains of thought with steps dropped at p = 0.1-0.3 vs none, slow and fast modes, vs "
                       "an answer-only model"),
    "btx": ("Branch-Train-MiX (Sukhbaatar et al. 2024)", "2403.07816",
            "BTX vs dense continued training, sparse upcycling and Branch-Train-Merge at equal compute, routing "
            "variants and load balancing, on three synthetic domains"),
    "self-rewarding": ("Self-Rewarding Language Models (Yuan et al. 2024)", "2401.10020",
                       "SFT on IFT+EFT (M1), then two iterations of self-judged best-vs-worst DPO (M2, M3), on the "
                       "instruction world"),
    "meta-rewarding": ("Meta-Rewarding Language Models (Wu et al. 2024)", "2407.19594",
                       "Self-Rewarding, with length control, and Meta-Rewarding at rho 0 and 0.3 from one M1, on the "
                       "instruction world"),
    "tpo": ("Thinking LLMs: General Instruction Following with Thought Generation (Wu et al. 2024)", "2410.10630",
            "Thought Preference Optimization vs the direct-answer baseline from one M0 and one reward model, on "
            "families where a scratchpad helps and where it cannot"),
    "lift": ("Following Length Constraints in Instructions (Yuan et al. 2024)", "2406.17744",
             "LIFT-DPO vs standard DPO on one preference set from one M0, on a length-instructed benchmark in a "
             "knowledge world where longer answers score higher"),
}  # fmt: skip
SCALE_HELP = "tiny (minutes), small (at most 2 hours on 2 CPU cores), gpu (one GPU; searchformer) or paper."
ScaleName = Annotated[str, typer.Option(help=SCALE_HELP)]
Seeds = Annotated[int | None, typer.Option(help="Seeds per arm (default: the scale's); more reuses finished seeds.")]


# reproductions whose scale takes key=value settings (e.g. the paper scale's local model and data files)
SCALE_SETTINGS = {
    "cope-lm": "system2.repro.cope_lm:CopeLMScale",
    "irpo": "system2.repro.irpo:IRPOScale",
    "rl-reasoning": "system2.repro.rl_reasoning:RLScale",
    "dualformer-llm": "system2.repro.dualformer_llm:DualLMScale",
    "self-rewarding": "system2.repro.self_rewarding:SelfRewardingScale",
    "meta-rewarding": "system2.repro.meta_rewarding:MetaRewardingScale",
    "tpo": "system2.repro.tpo:TPOScale",
    "lift": "system2.repro.lift:LIFTScale",
}

# the paper-scale example of a reproduction whose settings differ from the self-improvement ones
SCALE_EXAMPLES = {
    "cope-lm": "arm.corpus=data/wikitext/train-*.parquet arm.eval_corpus=data/wikitext/validation-*.parquet "
    "arm.tokenizer=checkpoints/gpt2",
    "self-rewarding": "data.ift=400 run.prompts_per_iteration=200 run.judge.judgments_per_response=5",
    "meta-rewarding": "data.meta=400 run.iterations=3 run.judge.judgments_per_response=5",
    "tpo": "data.direct=2000 run.iterations=3 run.rho=0.3",
    "lift": "data.world.entities=200 run.min_gap=6 run.epochs=3",
}


def run_repro(
    name: str,
    scale: str,
    seeds: int | None,
    out: Path | None,
    restart: bool = False,
    overrides: list[str] | None = None,
) -> None:
    module = importlib.import_module(f"system2.repro.{name.replace('-', '_')}")
    if scale not in module.SCALES:
        fail(f"unknown scale {scale!r}: use one of {', '.join(module.SCALES)}")
    if overrides and name not in SCALE_SETTINGS:
        fail(f"repro {name} takes no key=value settings")
    if seeds is not None and seeds < 1:
        fail("--seeds must be >= 1")
    target = out or Path("runs") / "repro" / f"{name}-{scale}"
    if scale == "paper":
        typer.secho(
            "paper scale runs the papers' own settings: days of GPU time; see configs/ to launch single arms "
            "with accelerate launch",
            fg=typer.colors.YELLOW,
        )
    with user_errors():
        kwargs = {"settings": parse_overrides(overrides)} if overrides else {}
        module.run(scale, target, seeds, restart=restart, **kwargs)
    if (target / "report.md").is_file():
        typer.echo(f"report: {target / 'report.md'}")


def _repro_command(name: str) -> None:
    def command(
        overrides: Overrides = None,
        scale: ScaleName = "tiny",
        seeds: Seeds = None,
        out: Annotated[Path | None, typer.Option("--out", help="Output directory (rerun to resume).")] = None,
        restart: Restart = False,
    ) -> None:
        run_repro(name, scale, seeds, out, restart, overrides)

    paper, arxiv, what = REPROS[name]
    command.__doc__ = (
        f"{paper}: {what}.\n\nThe paper's arms in miniature (--scale tiny or small) or at its own settings "
        f"(--scale paper); writes report.md (in --out, default runs/repro/{name}-SCALE) with the paper's "
        f"metrics and claim checks. arXiv {arxiv}."
    )
    if name in SCALE_SETTINGS:
        example = SCALE_EXAMPLES.get(
            name, "model=checkpoints/llama train_data=gsm8k_train.jsonl test_data=gsm8k_test.jsonl"
        )
        command.__doc__ += (
            "\n\nThe settings below change the scale's fields, e.g. the paper scale's local files: system2 repro "
            f"{name} --scale paper {example}"
        )
        repro.command(name, settings=SCALE_SETTINGS[name])(command)
    else:
        repro.command(name)(command)


for _name in REPROS:
    _repro_command(_name)


@repro.command("all")
def repro_all(
    scale: ScaleName = "tiny",
    seeds: Seeds = None,
    out: Annotated[Path, typer.Option("--out", help="Parent output directory.")] = Path("runs/repro"),
) -> None:
    """Run every reproduction (Searchformer, Dualformer and its LM half, CoPE and its LM half, IRPO, Havrilla et al.'s
    RL, reverse training, BTX, Self-Rewarding, Meta-Rewarding, TPO, LIFT) at one scale; a reproduction without that
    scale (gpu: only searchformer has one) is skipped, and said so."""
    for name in REPROS:
        if scale not in importlib.import_module(f"system2.repro.{name.replace('-', '_')}").SCALES:
            typer.secho(f"repro {name}: no {scale!r} scale, skipped", fg=typer.colors.YELLOW)
            continue
        run_repro(name, scale, seeds, out / f"{name}-{scale}")


@repro.command("cope-arm", settings="system2.repro.cope_arm:ArmConfig")
def cope_arm(
    overrides: Overrides = None,
    out: Annotated[str | None, typer.Option("--out", help="Run directory (rerun to resume).")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Train and score one CoPE arm (one task, one position encoding); see configs/cope/.

    Example: system2 repro cope-arm --config configs/cope/flipflop_paper.yaml --out runs/ff-rope model.position=rope
    """
    from system2.repro.cope_arm import ArmConfig, evaluate_arm, train_arm

    cfg = run_config(ArmConfig, config, overrides, {"out": out})
    with user_errors():
        train_arm(cfg, restart=restart)
        if is_main():
            for split, s in evaluate_arm(cfg).items():
                typer.echo(
                    f"{split}: sequence error {100 * s['sequence_error']:.1f}%, "
                    f"token error {100 * s['token_error']:.1f}%"
                )


@repro.command("cope-lm-arm", settings="system2.repro.cope_lm_arm:CopeLMConfig")
def cope_lm_arm(
    overrides: Overrides = None,
    out: Annotated[str | None, typer.Option("--out", help="Run directory (rerun to resume).")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Train one CoPE language-modelling arm on a local corpus and score held-out perplexity at T, 2T and 4T
    (arXiv 2405.18719; the recipe of repro cope-lm, configs/cope/lm/).

    Example: system2 repro cope-lm-arm --config configs/cope/lm/wikitext103_paper.yaml --out runs/wt-rope
    model.position=rope
    """
    from system2.repro.cope_lm_arm import CopeLMConfig, evaluate_arm, train_arm

    cfg = run_config(CopeLMConfig, config, overrides, {"out": out})
    with user_errors():
        train_arm(cfg, restart=restart)
        if is_main():
            result = evaluate_arm(cfg)
            shown = ", ".join(f"{f}T {p:.3f}" for f, p in result["perplexity"].items())
            typer.echo(f"held-out perplexity: {shown} ({result['parameters']:,} parameters)")


@repro.command("reverse-pretrain", settings="system2.repro.reverse_pretrain:ReversePretrainConfig")
def reverse_pretrain(
    overrides: Overrides = None,
    out: Annotated[str | None, typer.Option("--out", help="Run directory (rerun to resume).")] = None,
    config: ConfigFile = None,
    restart: Restart = False,
) -> None:
    """Pretrain a Llama-style model with reverse training on a local corpus, then answer reversal-curse
    questions (arXiv 2403.13799; the paper-scale recipe of repro reverse, configs/reverse/).

    Example: system2 repro reverse-pretrain --config configs/reverse/pretrain_paper.yaml reversal.kind=entity
    """
    from system2.repro.reverse_pretrain import ReversePretrainConfig, run_pretrain

    cfg = run_config(ReversePretrainConfig, config, overrides, {"out": out})
    with user_errors():
        result = run_pretrain(cfg, restart=restart)
    if is_main():
        typer.echo(f"forward {result.get('forward')}, reverse {result.get('reverse')}: {cfg.out}/result.json")


def register(app: App) -> None:
    """Add the ``repro`` group to the main app."""
    app.add_typer(repro, name="repro")
