"""Helpers of the run-lifecycle tests: a tiny run config, waiting for a condition."""

from __future__ import annotations

import time

from tlcore.config import RunConfig

RUN_TIMEOUT_S = 180


def config_for(dataset: str, epochs: int = 1, **data) -> RunConfig:
    """A run config that trains in seconds: 32 px, random weights, a head of 8 units."""
    return RunConfig.from_dict({
        "dataset": dataset, "image_size": 32, "base": {"weights": "none"},
        "head": {"dense": [8], "dropout": 0.0},
        "train": {"epochs": epochs, "batch_size": 8, "early_stopping_patience": 0}, **data})


def wait_for(predicate, what: str, timeout: float = RUN_TIMEOUT_S, interval: float = 0.05):
    """`predicate()`'s first true value, polled; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
