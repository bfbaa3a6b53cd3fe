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
