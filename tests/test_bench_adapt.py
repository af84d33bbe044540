"""Smoke run of the adaptation benchmark at a tiny size (figures are not checked, only produced)."""

import gzip
import os

import numpy as np
import pytest

from bench import adapt as bench_adapt


def write_idx(path, array):
    """`array` (uint8) as an IDX gzip file, as Fashion-MNIST ships."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TLCORE_TEST_BENCH") != "1",
                    reason="set TLCORE_TEST_BENCH=1 to run the benchmark smoke run; .ci/run does")
def test_adapt_benchmark_writes_its_section(tmp_path, monkeypatch):
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 200), ("t10k", 100)):
        labels = np.arange(n) % 10
        images = np.clip(rng.normal(25 * labels[:, None, None], 20, (n, 28, 28)), 0, 255)
        write_idx(fashion / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(fashion / f"{prefix}-labels-idx1-ubyte.gz", labels)
    monkeypatch.setenv("TLCORE_BENCH_FASHION", str(fashion))
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "unused"))
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## other · 64 px\n\nkept\n")
    assert bench_adapt.main(["--zip", "", "--source", "200", "--size", "32", "--weights", "none",
                             "--epochs", "1", "--per-target", "50", "--seeds", "1",
                             "--targets", "inverted,tinted", "--out", str(out)]) == 0
    text = out.read_text()
    assert "kept" in text and "## Domain adaptation · " in text and "· 32 px · " in text
    for row in ("| inverted | ", "| tinted | ", "Goal: the choice never worse",
                "Negative transfer"):
        assert row in text
