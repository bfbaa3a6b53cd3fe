"""Judges: LLM-as-a-Judge with the additive 5-point prompt (Self-Rewarding, arXiv 2401.10020), pairwise judging in
both orders and Bradley-Terry Elo (Meta-Rewarding, arXiv 2407.19594), one interface over several backends, and judge
quality against an oracle. Modules: prompts, config, backends, pointwise, pairwise, elo, quality (docs/judges.md)."""
