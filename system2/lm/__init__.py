"""Hugging Face causal LMs: tiny models, sampling, sequence log-probabilities, SFT/DPO losses and data."""
