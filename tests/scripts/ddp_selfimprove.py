"""IRPO, expert iteration or Self-Rewarding through their runners; run under torchrun by the tests.

usage: ddp_selfimprove.py irpo|expert-iteration|self-rewarding CONFIG_JSON (the config's fields)
"""

import json
import sys
from pathlib import Path

from system2.config import from_dict
from system2.dist import is_main
from system2.selfimprove.expert_iteration import ExpertIterationConfig, run_expert_iteration
from system2.selfimprove.irpo import IRPOConfig, run_irpo
from system2.selfimprove.self_rewarding import SelfRewardingConfig, run_self_rewarding

RECIPES = {
    "irpo": (IRPOConfig, run_irpo),
    "expert-iteration": (ExpertIterationConfig, run_expert_iteration),
    "self-rewarding": (SelfRewardingConfig, run_self_rewarding),
}


def main() -> None:
    cls, run = RECIPES[sys.argv[1]]
    cfg = from_dict(cls, json.loads(Path(sys.argv[2]).read_text()))
    rows = run(cfg, progress=False)
    if is_main():
        Path(cfg.out, "done").write_text(json.dumps(rows) + "\n")


if __name__ == "__main__":
    main()
