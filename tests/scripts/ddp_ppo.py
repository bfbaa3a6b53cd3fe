"""PPO through ``run_ppo``; run under torchrun by the tests.

usage: ddp_ppo.py CONFIG_JSON (PPOConfig fields)
"""

import json
import sys
from pathlib import Path

from system2.dist import is_main
from system2.selfimprove.ppo import PPOConfig, run_ppo


def main() -> None:
    cfg = PPOConfig(**json.loads(Path(sys.argv[1]).read_text()))
    log = run_ppo(cfg, progress=False)
    if is_main():
        Path(cfg.out, "done").write_text(json.dumps(log) + "\n")


if __name__ == "__main__":
    main()
