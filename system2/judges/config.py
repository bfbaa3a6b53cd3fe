"""The settings of a judge (Self-Rewarding, arXiv 2401.10020, Sec. 2 and Fig. 2; Meta-Rewarding, arXiv 2407.19594):
which model judges (backend), how its judgments are sampled, and how a remote server is reached.

Defaults follow Self-Rewarding: 3 judgments per response, averaged (Meta-Rewarding uses 11). The papers do not print
the judge's sampling temperature; 0.7 with top-p 0.9 (their response-sampling settings) is our choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from system2.config import ConfigError
from system2.judges.prompts import PAIRWISE_TEMPLATES, TEMPLATES

BACKENDS = ("policy", "hf", "reward_model", "http")
APIS = ("completions", "chat")


@dataclass
class JudgeConfig:
    """Who judges and how; ``validate`` names the field and the fix for any bad value."""

    backend: str = "policy"  # policy (the model being trained) | hf (another local model) | reward_model | http
    model: str = ""  # hf/reward_model: a local model directory; http: the server's base URL (http://host:port)
    served_model: str = ""  # http: the request's "model" field (vllm serve's model name); "": the server's default
    api: str = "completions"  # http: completions (/v1/completions, raw prompt) | chat (/v1/chat/completions)
    template: str = "paper"  # pointwise prompt: paper | compact | a string with {instruction} and {response}
    pair_template: str = "paper"  # pairwise prompt: paper | compact | a string with {instruction}, {response_a/b}
    judgments_per_response: int = 3  # judgments sampled per response (per order for pairs); valid scores averaged
    temperature: float = 0.7  # judge sampling temperature (0: greedy)
    top_p: float = 0.9  # nucleus sampling mass
    max_new_tokens: int = 128  # longest judgment in tokens
    seed: int = 0  # seed of the judgments: the same seed gives the same judgments
    batch_size: int = 64  # local backends: rows per generate (or scoring) call
    chat: bool = False  # local backends: render judge prompts with the tokenizer's chat template
    device: str = "cpu"  # hf/reward_model: where the judge model runs (cpu, cuda, cuda:N)
    timeout: float = 60.0  # http: seconds to wait for one response
    retries: int = 3  # http: further attempts after a failed request (connection error, 5xx, 408, 429)
    backoff: float = 1.0  # http: seconds before the first retry, doubled after each (at most 30)
    concurrency: int = 8  # http: requests in flight at once (1 for transformers serve when seeds must reproduce)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field and how to fix it."""
        if self.backend not in BACKENDS:
            raise ConfigError(f"judge.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend in ("hf", "reward_model") and not self.model:
            raise ConfigError(f"judge.backend={self.backend} needs judge.model=DIR (a local model directory)")
        if self.backend == "http" and not self.model.startswith(("http://", "https://")):
            raise ConfigError(
                f"judge.backend=http needs judge.model=URL of an OpenAI-compatible server (e.g. "
                f"http://127.0.0.1:8000 for `vllm serve MODEL --port 8000`), got {self.model!r}"
            )
        if self.backend == "policy" and self.model:
            raise ConfigError("judge.backend=policy judges with the policy itself: leave judge.model empty, or use "
                              "judge.backend=hf for another local model")  # fmt: skip
        if self.api not in APIS:
            raise ConfigError(f"judge.api must be one of {', '.join(APIS)}, got {self.api!r}")
        if self.template not in TEMPLATES and not ("{instruction}" in self.template and "{response}" in self.template):
            raise ConfigError(f"judge.template must be one of {', '.join(TEMPLATES)} or contain {{instruction}} and "
                              f"{{response}}, got {self.template!r}")  # fmt: skip
        fields = ("{instruction}", "{response_a}", "{response_b}")
        if self.pair_template not in PAIRWISE_TEMPLATES and not all(f in self.pair_template for f in fields):
            raise ConfigError(f"judge.pair_template must be one of {', '.join(PAIRWISE_TEMPLATES)} or contain "
                              f"{', '.join(fields)}, got {self.pair_template!r}")  # fmt: skip
        for name in ("judgments_per_response", "max_new_tokens", "batch_size", "concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"judge.{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(f"judge.temperature must be >= 0 (0: greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"judge.top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"judge.seed must be in [0, 2**63), got {self.seed}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"judge.timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0 or not (math.isfinite(self.backoff) and self.backoff >= 0):
            raise ConfigError(f"judge.retries and judge.backoff must be >= 0, got {self.retries}, {self.backoff}")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"judge.device must be cpu, cuda or cuda:N, got {self.device!r}")
