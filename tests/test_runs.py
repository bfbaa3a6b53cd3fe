"""Run records (resume or refuse), permissions under the user's umask, damaged files named in one line,
and training that resumes past a damaged checkpoint with each step logged once."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from system2.checkpoint import checkpoints, load_trainer_state, resume, save_checkpoint
from system2.runs import FileProblem, RunError, atomic_write_json, open_run, read_json, read_parquet, read_run
from system2.train import TrainConfig, train


def test_open_run_records_resumes_and_refuses(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = {"data": "d", "lr": 0.1, "train": {"steps": 3, "log_every": 1}, "workers": 1}
    open_run(out, "sft", settings, log=lambda _: None)
    record = read_run(out)
    assert record["kind"] == "sft" and record["settings"]["data"] == os.path.abspath("d")
    (out / "result.json").write_text("{}")
    # the same settings resume; settings that cannot change results may differ
    open_run(out, "sft", {**settings, "workers": 4, "train": {"steps": 3, "log_every": 7}}, log=lambda _: None)
    with pytest.raises(RunError, match=r"other settings \(lr: 0.1 -> 0.2; train.steps: 3 -> 4\).*--restart"):
        open_run(out, "sft", {**settings, "lr": 0.2, "train": {"steps": 4}}, log=lambda _: None)
    with pytest.raises(RunError, match="is an SFT run, not an IRPO run"):
        open_run(out, "irpo", settings, restart=True, log=lambda _: None)
    # restart moves the old run aside, never deletes it
    open_run(out, "sft", {**settings, "lr": 0.2}, restart=True, log=lambda _: None)
    assert (tmp_path / "run.old-1" / "result.json").is_file() and read_run(out)["settings"]["lr"] == 0.2
    assert not (out / "result.json").exists()


@dataclasses.dataclass
class _Inner:
    steps: int = 3


@dataclasses.dataclass
class _Cfg:
    lr: float = 0.1
    train: _Inner = dataclasses.field(default_factory=_Inner)
    added: str = "old-behaviour"  # a setting added after the run was recorded


def test_a_run_recorded_before_a_setting_was_added_resumes_at_its_default(tmp_path: Path) -> None:
    out = tmp_path / "run"
    open_run(out, "sft", {"lr": 0.1, "train": {"steps": 3}}, log=lambda _: None)  # recorded without ``added``
    (out / "result.json").write_text("{}")
    open_run(out, "sft", _Cfg(), log=lambda _: None)  # the new setting at its default: the same run
    with pytest.raises(RunError, match=r"other settings \(added: '\(unset\)' -> 'new'\)"):
        open_run(out, "sft", _Cfg(added="new"), log=lambda _: None)
    with pytest.raises(RunError, match=r"train.steps: 3 -> 4"):
        open_run(out, "sft", _Cfg(train=_Inner(steps=4)), log=lambda _: None)
    # a mapping carries no defaults: an unset key is a difference
    with pytest.raises(RunError, match="added"):
        open_run(out, "sft", {"lr": 0.1, "train": {"steps": 3}, "added": "old-behaviour"}, log=lambda _: None)


def test_open_run_refuses_a_foreign_directory_and_forgets_an_empty_attempt(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(RunError, match="not a system2 run directory"):
        open_run(mine, "sft", {"a": 1}, log=lambda _: None)
    assert (mine / "notes.txt").read_text() == "keep"
    # an attempt that stopped before writing anything holds only its record: new settings are accepted
    open_run(tmp_path / "x", "sft", {"a": 1}, log=lambda _: None)
    open_run(tmp_path / "x", "sft", {"a": 2}, log=lambda _: None)
    assert read_run(tmp_path / "x")["settings"] == {"a": 2}


def test_writes_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        open_run(tmp_path / "run", "sft", {"a": 1}, log=lambda _: None)
        atomic_write_json(tmp_path / "run" / "x.json", {"b": 2})
        ckpt = save_checkpoint(tmp_path / "run" / "ckpt", 1, _Tiny(), {"step": 1})
    finally:
        os.umask(old)
    for f in (
        tmp_path / "run" / "run.json",
        tmp_path / "run" / "x.json",
        ckpt / "trainer.pt",
        ckpt / "model.safetensors",
    ):
        assert stat.S_IMODE(f.stat().st_mode) == 0o664, f
    for d in (tmp_path / "run", ckpt):
        assert stat.S_IMODE(d.stat().st_mode) == 0o775, d


class _Tiny(torch.nn.Module):
    """A model with the project's model-file contract (``model_type`` + a dataclass ``config``)."""

    model_type = "decoder"

    def __init__(self) -> None:
        super().__init__()
        from system2.nn.decoder import DecoderConfig

        self.config = DecoderConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, max_len=8)
        self.w = torch.nn.Parameter(torch.zeros(2))


def test_damaged_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": 1')
    with pytest.raises(FileProblem, match=r"a.json is not valid JSON"):
        read_json(tmp_path / "a.json")
    (tmp_path / "b.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(FileProblem, match=r"b.parquet is not a readable Parquet file"):
        read_parquet(tmp_path / "b.parquet")
    ckpt = save_checkpoint(tmp_path / "ckpt", 1, _Tiny(), {"step": 1})
    data = (ckpt / "trainer.pt").read_bytes()
    (ckpt / "trainer.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileProblem, match=r"trainer.pt is not a readable training state"):
        load_trainer_state(ckpt)


def test_resume_falls_back_to_the_previous_valid_checkpoint(tmp_path: Path) -> None:
    for step in (1, 2):
        save_checkpoint(tmp_path, step, _Tiny(), {"step": step})
    assert [c.name for c in checkpoints(tmp_path)] == ["step-00000002", "step-00000001"]
    (tmp_path / "step-00000002" / "model.safetensors").write_bytes(b"\x00" * 10)
    said: list[str] = []

    def load(ckpt: Path) -> int:
        from system2.checkpoint import load_model_weights

        load_model_weights(_Tiny(), ckpt)
        return load_trainer_state(ckpt)["step"]

    found = resume(tmp_path, load, log=said.append)
    assert found is not None and found[1] == 1
    assert said and "skipping the damaged checkpoint step-00000002" in said[0] and "model.safetensors" in said[0]


class _Data:
    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.randn(4, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[indices], "y": self.y[indices]}


class _Reg(_Tiny):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 1)


def _loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    return torch.nn.functional.mse_loss(model.lin(batch["x"]), batch["y"]), len(batch["x"])


def test_training_resumes_past_a_damaged_checkpoint_and_logs_each_step_once(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrainConfig(steps=6, batch_size=8, lr=1e-2, warmup=1, ckpt_every=2, keep_ckpts=3, log_every=1)
    full = _Reg()
    train(full, _Data(), _loss, cfg, tmp_path / "full", progress=False)
    # a run killed after step 6's checkpoint was half written: its newest checkpoint is damaged
    part = _Reg()
    train(part, _Data(), _loss, cfg, tmp_path / "part", progress=False)
    newest = tmp_path / "part" / "ckpt" / "step-00000006"
    data = (newest / "trainer.pt").read_bytes()
    (newest / "trainer.pt").write_bytes(data[:100])
    # TensorBoard reads event files in name order; give the old file a name that sorts after any new one
    # (as a same-second rerun's counter 10 sorts before 9) so a purge step alone would log steps twice
    (old,) = (tmp_path / "part" / "tensorboard").glob("events.out.tfevents.*")
    old.rename(old.with_name("events.out.tfevents.9999999999.host.1.0"))
    again = _Reg()
    train(again, _Data(), _loss, cfg, tmp_path / "part", progress=False)
    assert torch.equal(again.lin.weight, full.lin.weight) and torch.equal(again.lin.bias, full.lin.bias)
    steps = [json.loads(x)["step"] for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    events = EventAccumulator(str(tmp_path / "part" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4, 5, 6]
