"""Self-improvement: a language model trained on its own samples, judged by exact checkers or by itself."""
