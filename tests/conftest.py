"""Shared test settings: hypothesis profiles sized for a 2-core CI machine, and the 2-process launcher."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

SCRIPTS = Path(__file__).parent / "scripts"

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, print_blob=True
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def run_two_processes():
    """Run a script from tests/scripts under torchrun with 2 CPU (gloo) processes; the script writes
    ``done_file`` on rank 0 when it finishes. gloo may abort at teardown ("terminate called without an
    active exception") after finishing, so a run is judged by what it wrote and fails on any other error."""

    def run(script: str, args: list[str], done_file: Path) -> subprocess.CompletedProcess:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               str(SCRIPTS / script), *map(str, args)]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            assert done_file.exists() and "terminate called" in proc.stderr, proc.stderr[-3000:]
        return proc

    return run


def tiny_arithmetic_world(root: Path, n_train: int, n_test: int, steps: int, batch: int, **loop: object) -> dict:
    """An arithmetic world of ``n_train``/``n_test`` questions in ``root`` and a tiny M_0 (d=32, 1 layer) trained on
    it for ``steps`` SFT steps of ``batch``; ``loop``: the SFT config's other settings (``max_len`` sizes the model).
    Returns the model, train and test paths."""
    from system2.selfimprove.sft import SFTConfig, TinyLMConfig, run_sft
    from system2.tasks.arithmetic import make_dataset, write_problems
    from system2.train import TrainConfig

    for name, problems in make_dataset(0, n_train, n_test).items():
        write_problems(root / f"{name}.parquet", problems)
    tiny = TinyLMConfig(d_model=32, layers=1, heads=2, max_len=int(loop["max_len"]))  # type: ignore[arg-type]
    train = TrainConfig(steps=steps, batch_size=batch, lr=3e-3, warmup=1, ckpt_every=steps, log_every=2,
                        tensorboard=False)  # fmt: skip
    cfg = SFTConfig(tiny=tiny, train_data=str(root / "train.parquet"), out=str(root / "sft"), train=train, **loop)
    return {"model": run_sft(cfg, progress=False)["model"], "train": str(root / "train.parquet"),
            "test": str(root / "test.parquet")}  # fmt: skip
