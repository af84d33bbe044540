"""Shared facts of runs: the epoch where a metric peaked."""

from __future__ import annotations

from tlcore.entities import peak_epoch


def test_peak_epoch_names_the_first_epoch_of_the_highest_value():
    rows = [{"epoch": 1, "val_accuracy": 0.6}, {"epoch": 2, "val_accuracy": 0.758},
            {"epoch": 3, "val_accuracy": 0.758}, {"epoch": 4, "val_accuracy": None}]
    assert peak_epoch(rows) == 2
    assert peak_epoch(rows, key="loss") is None
    assert peak_epoch([]) is None
