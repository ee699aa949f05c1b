"""Crash-risk model: features, training, risk classes, baselines, metrics and backtests."""
