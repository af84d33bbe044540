"""Shift measures on synthetic features: the same distribution reads low, a shifted one high."""

import numpy as np
import pytest

from tlcore.adapt import shift


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    return rng.normal(0, 1, (200, 16)), rng.normal(0, 1, (150, 16)), rng.normal(1.5, 1, (150, 16))


def test_proxy_a_distance_and_mmd_tell_a_shift_from_none(rows):
    source, same, moved = rows
    low, high = shift.proxy_a_distance(source, same), shift.proxy_a_distance(source, moved)
    assert low["proxy_a_distance"] < 0.5 and high["proxy_a_distance"] > 1.5
    assert low["n"] == 150 and 0 <= low["domain_accuracy"] <= 1
    assert shift.mmd_test(source, same)["mmd_p_value"] > 0.05
    test = shift.mmd_test(source, moved)
    assert test["mmd_p_value"] < 0.05 and test["mmd2"] > 0


def test_measure_shift_reads_in_words_and_per_class(rows):
    source, same, moved = rows
    ys, yt = np.arange(200) % 2, np.arange(150) % 2
    calm = shift.measure_shift(source, ys, same, yt, ["a", "b"])
    strong = shift.measure_shift(source, ys, moved, yt, ["a", "b"])
    assert calm["level"] == "similar" and calm["reading"].startswith("The target looks like")
    assert strong["level"] == "strong" and "Expect the source model to degrade" in strong[
        "reading"]
    assert [r["class"] for r in strong["per_class"]] == ["a", "b"]
    assert all(r["proxy_a_distance"] > 1.0 for r in strong["per_class"])


def test_levels_follow_the_stated_thresholds():
    assert [shift.shift_level(v) for v in (0.0, 0.49, 0.5, 1.49, 1.5, 2.0)] == [
        "similar", "similar", "moderate", "moderate", "strong", "strong"]
