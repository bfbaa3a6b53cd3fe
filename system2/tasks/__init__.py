"""Synthetic worlds with exact oracles: each task generates seeded data and scores answers exactly."""
