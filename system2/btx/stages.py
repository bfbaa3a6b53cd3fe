"""The BTX workflow (arXiv 2403.07816, section 3; docs/btx.md) as resumable stages over one run directory.

    branch    copy the seed once per domain                      out/experts/NAME/init
    train     each copy on its own domain, one job per domain     out/experts/NAME/model
    mix       the experts into one Mixtral checkpoint             out/mixed
    finetune  MoE fine-tuning on the union of the domains         out/finetune/model
    evaluate  token-level validation loss per domain              out/eval/MODEL.json

Each stage skips what is already finished and resumes what is half done (the training loop's checkpoints), so
a rerun of any stage, or of all of them, never repeats work; a run directory made with other settings is
refused before any compute. The ``train`` stage of different domains shares nothing: on a cluster each is its
own ``accelerate launch`` job (``--domain NAME``), with no communication. A domain may instead name an
``expert`` trained anywhere else (a Llama-like Hugging Face checkpoint directory): it skips branch and train.
Every domain's corpus is read, and an empty one refused, before a stage does any work.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from system2.btx.branch import branch
from system2.btx.mix import mix
from system2.btx.router_init import ROUTER_INITS
from system2.btx.routing import EXPORTABLE, ROUTINGS, set_routing
from system2.btx.scoring import document_scores
from system2.config import ConfigError
from system2.dist import barrier, is_main
from system2.lm.corpus import CORPUS_SUFFIXES, read_corpus
from system2.lm.io import load_lm, save_lm
from system2.lm.losses import AUX_FORMS, make_moe_sft_loss_fn, make_sft_loss_fn
from system2.lm.reversal_data import plain_lm_data
from system2.runs import atomic_write_json, open_run
from system2.train import TrainConfig, train

DTYPES = {"": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ROUTING_KEY = "system2_routing"  # config field of a fine-tuned model whose routing Mixtral cannot express


@dataclass
class Domain:
    name: str = ""  # names the expert (out/experts/NAME)
    corpus: str = ""  # training documents: a local .txt (one per line), .jsonl or .parquet file
    valid: str = ""  # held-out documents of the domain for `evaluate` (same formats; optional)
    text_key: str = "text"  # the documents' field in .jsonl / .parquet
    limit: int = 0  # documents used (0: all)
    steps: int = 0  # this expert's training steps (0: expert_train.steps)
    expert: str = ""  # an expert trained elsewhere (Llama-like checkpoint directory): skips branch and train


@dataclass
class MixSettings:
    include_seed_expert: bool = False  # the seed's FFN as an extra, last expert (the paper's 4th: unconfirmed)
    router_init: str = "random"  # random | mean_hidden (each domain's mean hidden state)
    router_batches: int = 4  # mean_hidden: training batches of each domain averaged
    router_seed: int = 0  # random: the routers' seed
    top_k: int = 2  # experts per token
    aux_coef: float = 0.01  # load-balancing coefficient alpha (0: none)
    dtype: str = ""  # output dtype: "" (the experts'), float32, bfloat16 or float16


@dataclass
class BTXConfig:
    seed: str = ""  # the seed checkpoint: a Llama-like Hugging Face directory with its tokenizer
    domains: list[Domain] = field(default_factory=list)  # one expert each
    out: str = ""  # run directory (every stage resumes in it)
    max_len: int = 2048  # training sequence length (longer documents are cut)
    expert_train: TrainConfig = field(default_factory=TrainConfig)  # each expert's training
    mix: MixSettings = field(default_factory=MixSettings)
    routing: str = "topk"  # MoE fine-tuning routing: topk | soft | switch | sample_top1 (btx/routing.py)
    aux_form: str = "paper"  # load-balancing loss: paper (per layer, averaged) | transformers
    finetune: TrainConfig = field(default_factory=TrainConfig)  # MoE fine-tuning on the union of the domains
    eval_batch_size: int = 8  # documents scored at once by `evaluate`

    def validate(self) -> None:
        if not self.out or not self.domains:
            raise ConfigError("set out=DIR and list the domains (name, corpus) in a --config file")
        names = [d.name for d in self.domains]
        for i, d in enumerate(self.domains):
            where = f"domains[{i}]"
            if not d.name or "/" in d.name or d.name.startswith("."):
                raise ConfigError(f"{where}.name must be a plain directory name, got {d.name!r}")
            if names.index(d.name) != i:
                raise ConfigError(f"{where}.name {d.name!r} appears twice: give each domain its own name")
            for key in ("corpus", "valid"):
                path = getattr(d, key)
                if path and (not Path(path).is_file() or Path(path).suffix not in CORPUS_SUFFIXES):
                    raise ConfigError(f"{where}.{key} {path} is not a {'/'.join(CORPUS_SUFFIXES)} file")
            if not d.corpus:
                raise ConfigError(f"{where}.corpus is not set: every domain needs its training documents")
            if d.expert and not Path(d.expert).is_dir():
                raise ConfigError(f"{where}.expert {d.expert} is not a directory")
            if d.limit < 0 or d.steps < 0 or d.steps and d.steps < self.expert_train.warmup:
                raise ConfigError(f"{where}: limit must be >= 0 (0: all) and steps 0 or >= expert_train.warmup")
        if not self.seed and (self.mix.include_seed_expert or any(not d.expert for d in self.domains)):
            raise ConfigError("set seed=DIR: the checkpoint to branch (or the seed expert to include)")
        if self.seed and not Path(self.seed).is_dir():
            raise ConfigError(f"seed {self.seed} is not a directory")
        m = self.mix
        if m.router_init not in ROUTER_INITS or m.dtype not in DTYPES:
            raise ConfigError(f"mix.router_init must be one of {ROUTER_INITS} and mix.dtype one of {list(DTYPES)}")
        if m.router_batches < 1 or m.top_k < 1 or not (math.isfinite(m.aux_coef) and m.aux_coef >= 0):
            raise ConfigError("mix.router_batches and mix.top_k must be >= 1 and mix.aux_coef a number >= 0")
        if self.routing not in ROUTINGS or self.aux_form not in AUX_FORMS:
            raise ConfigError(f"routing must be one of {ROUTINGS} and aux_form one of {AUX_FORMS}")
        if self.max_len < 2 or self.eval_batch_size < 1:
            raise ConfigError("max_len must be >= 2 and eval_batch_size >= 1")
        self.expert_train.validate("expert_train")
        self.finetune.validate("finetune")


def experts_dir(cfg: BTXConfig, name: str) -> Path:
    return Path(cfg.out) / "experts" / name


def expert_model(cfg: BTXConfig, domain: Domain) -> Path:
    """Where the domain's trained expert is: its own ``expert`` directory, or the train stage's output."""
    return Path(domain.expert) if domain.expert else experts_dir(cfg, domain.name) / "model"


def mixed_dir(cfg: BTXConfig) -> Path:
    return Path(cfg.out) / "mixed"


def final_dir(cfg: BTXConfig) -> Path:
    return Path(cfg.out) / "finetune" / "model"


def read_domains(cfg: BTXConfig, names: list[str] | None = None, split: str = "corpus") -> dict[str, list[str]]:
    """The documents of each domain (of ``names``, default all) in ``split`` (corpus or valid); a domain
    without documents fails naming it and its file."""
    out = {}
    for d in cfg.domains:
        path = getattr(d, split)
        if (names is not None and d.name not in names) or not path:
            continue
        texts, _ = read_corpus(path, d.text_key, limit=d.limit if split == "corpus" else 0)
        if not texts:
            raise ConfigError(f"domain {d.name}: {path} holds no documents (no non-blank {d.text_key!r})")
        out[d.name] = texts
    return out


def _open(cfg: BTXConfig, restart: bool = False) -> Path:
    cfg.validate()
    return open_run(cfg.out, "btx", cfg, restart=restart)


def run_branch(cfg: BTXConfig, restart: bool = False) -> list[Path]:
    """Copy the seed into ``out/experts/NAME/init`` for each domain without an ``expert`` (copies already made
    are kept)."""
    _open(cfg, restart)
    read_domains(cfg)
    todo = [d for d in cfg.domains if not d.expert]
    outs = [experts_dir(cfg, d.name) / "init" for d in todo]
    missing = [o for o in outs if not (o / "config.json").is_file()]
    if missing and is_main():
        branch(cfg.seed, missing, overwrite=True)
    barrier()
    return outs


def run_train(cfg: BTXConfig, domain: str | None = None, progress: bool = True) -> list[Path]:
    """Train the expert of ``domain`` (default: every domain in turn) on its own documents; finished experts
    are skipped, a half-trained one resumes."""
    _open(cfg)
    names = [d.name for d in cfg.domains if not d.expert]
    if domain is not None and domain not in names:
        listed = [d.name for d in cfg.domains]
        why = "it names an expert trained elsewhere" if domain in listed else f"the domains are {', '.join(listed)}"
        raise ConfigError(f"no domain {domain!r} to train: {why}")
    names = [domain] if domain else names
    texts = read_domains(cfg, names)
    steps = {d.name: d.steps or cfg.expert_train.steps for d in cfg.domains}
    for name in names:
        if not (experts_dir(cfg, name) / "init" / "config.json").is_file():
            raise ConfigError(f"expert {name} is not branched yet: run system2 btx branch first")
    outs = []
    for name in names:
        run_dir, final = experts_dir(cfg, name), experts_dir(cfg, name) / "model"
        if not (final / "config.json").is_file():
            model, tok = load_lm(run_dir / "init", pad_with_eos=True)
            data = plain_lm_data(tok, texts[name], cfg.max_len)
            settings = dataclasses.replace(cfg.expert_train, steps=steps[name])
            train(model, data, make_sft_loss_fn("token"), settings, run_dir, progress=progress)
            if is_main():
                save_lm(model, tok, final)
            barrier()
        outs.append(final)
    return outs


def router_batches(tokenizer: Any, texts: list[str], cfg: BTXConfig) -> list[dict[str, torch.Tensor]]:
    """The first ``mix.router_batches`` training batches of a domain (``mean_hidden`` router rows)."""
    data, b = plain_lm_data(tokenizer, texts, cfg.max_len), cfg.expert_train.batch_size
    starts = range(0, min(len(data), cfg.mix.router_batches * b), b)
    batches = [data.batch(list(range(s, min(s + b, len(data)))), 0) for s in starts]
    return [{"input_ids": x["input_ids"], "attention_mask": x["attention_mask"]} for x in batches]


def run_mix(cfg: BTXConfig) -> Path:
    """Mix the trained experts into ``out/mixed`` (a standard Mixtral checkpoint); kept if already written."""
    _open(cfg)
    out = mixed_dir(cfg)
    experts = [expert_model(cfg, d) for d in cfg.domains]
    for d, path in zip(cfg.domains, experts, strict=True):
        if not (path / "config.json").is_file():
            raise ConfigError(f"expert {d.name} is not trained yet ({path}): run system2 btx train --domain {d.name}")
    if (out / "config.json").is_file() or not is_main():
        barrier()
        return out
    router_data = None
    if cfg.mix.router_init == "mean_hidden":
        texts = read_domains(cfg)
        _, tok = load_lm(experts[0], pad_with_eos=True)
        router_data = [router_batches(tok, texts[d.name], cfg) for d in cfg.domains]
    m = cfg.mix
    mix(experts, out, seed_dir=cfg.seed if m.include_seed_expert else None, include_seed_expert=m.include_seed_expert,
        router_init=m.router_init, router_data=router_data, top_k=m.top_k, aux_loss_coef=m.aux_coef,
        router_seed=m.router_seed, dtype=DTYPES[m.dtype], overwrite=True)  # fmt: skip
    barrier()
    return out


def load_finetuned(path: str | Path) -> tuple[Any, Any]:
    """A fine-tuned mix with its routing (a ``switch`` or ``sample_top1`` model records it in its config; plain
    ``from_pretrained`` would route it as Mixtral top-1), in bfloat16 on the GPU when there is one."""
    cuda = torch.cuda.is_available()  # scoring a 7B-class mix on a CPU is not an option
    model, tok = load_lm(path, dtype=torch.bfloat16 if cuda else None, device="cuda" if cuda else "cpu",
                         pad_with_eos=True)  # fmt: skip
    routing = getattr(model.config, ROUTING_KEY, None)
    if routing and routing != "topk":
        set_routing(model, routing)
    return model, tok


def run_finetune(cfg: BTXConfig, progress: bool = True) -> Path:
    """MoE fine-tuning of ``out/mixed`` on the union of the domains with the load-balancing loss, into
    ``out/finetune/model``; resumes from its checkpoints, skipped when finished. Torch's generator is seeded
    with ``finetune.seed``, so sampled routing gives the same model whatever ran before in the process."""
    _open(cfg)
    final = final_dir(cfg)
    if not (mixed_dir(cfg) / "config.json").is_file():
        raise ConfigError("the experts are not mixed yet: run system2 btx mix first")
    texts = read_domains(cfg)
    if (final / "config.json").is_file():
        return final
    model, tok = load_lm(mixed_dir(cfg), pad_with_eos=True)
    if cfg.routing != "topk":
        set_routing(model, cfg.routing)
    if cfg.routing not in EXPORTABLE:
        setattr(model.config, ROUTING_KEY, cfg.routing)
    data = plain_lm_data(tok, [t for d in cfg.domains for t in texts[d.name]], cfg.max_len)
    loss = make_moe_sft_loss_fn("token", aux_coef=cfg.mix.aux_coef, aux_form=cfg.aux_form)
    torch.manual_seed(cfg.finetune.seed)  # sampled routing draws from it (a resume restores its saved state)
    train(model, data, loss, cfg.finetune, final.parent, progress=progress)
    if is_main():
        save_lm(model, tok, final)
    barrier()
    return final


def run_evaluate(cfg: BTXConfig, model_dir: str | Path | None = None) -> dict[str, Any]:
    """Validation loss of each domain (and their mean) for ``model_dir`` (default: the fine-tuned mix), written
    to ``out/eval/<model directory name>.json``."""
    _open(cfg)
    path = Path(model_dir) if model_dir else final_dir(cfg)
    valid = read_domains(cfg, split="valid")
    if not valid:
        raise ConfigError("no domain has valid documents: set valid=FILE in each domain to evaluate")
    model, tok = load_finetuned(path)
    losses = {}
    for name, texts in valid.items():
        rows = document_scores(model, tok, texts, cfg.max_len, cfg.eval_batch_size)
        losses[name] = sum(r["nll"] for r in rows) / sum(r["tokens"] for r in rows)  # nats per token
    result = {"model": str(path), "loss": losses, "mean": sum(losses.values()) / len(losses)}
    if is_main():
        name = path.parent.name if path.name == "model" else path.name
        atomic_write_json(Path(cfg.out) / "eval" / f"{name}.json", result)
    return result


def describe_result(result: dict[str, Any]) -> str:
    """One line per domain and the mean (the CLI's table)."""
    rows = [f"{name}: {loss:.4f}" for name, loss in result["loss"].items()]
    return "\n".join([*rows, f"mean: {result['mean']:.4f}"])
