"""MoE fine-tuning of a BTX mix (system2.btx.stages.run_finetune); run under torchrun by the tests.

usage: ddp_btx.py CONFIG_YAML
"""

import sys
from pathlib import Path

from system2.btx.stages import BTXConfig, final_dir, run_finetune
from system2.config import load_config
from system2.dist import is_main


def main() -> None:
    cfg = load_config(BTXConfig, sys.argv[1])
    run_finetune(cfg, progress=False)
    if is_main():
        Path(final_dir(cfg).parent, "done").write_text("ok\n")


if __name__ == "__main__":
    main()
