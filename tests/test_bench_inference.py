"""Smoke run of the inference benchmark at a tiny size (figures are not checked, only produced)."""

import os
import sys
import types

import pytest

from bench import inference


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TLCORE_TEST_BENCH") != "1",
                    reason="set TLCORE_TEST_BENCH=1 to run the benchmark smoke run; .ci/run does")
def test_inference_benchmark_writes_its_section(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "unused"))
    monkeypatch.setenv("TLCORE_BENCH_FASHION", str(tmp_path / "no-fashion-here"))
    # The launch-to-first-epoch measurement has tests of its own; here only its rows.
    warm_start = types.ModuleType("bench.warm_start")
    warm_start.measure_warm_start = lambda ws, config: {"warm_first_epoch_s": 1.0,
                                                        "cold_first_epoch_s": 4.0}
    monkeypatch.setitem(sys.modules, "bench.warm_start", warm_start)
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## other · 64 px\n\nkept\n")
    assert inference.main(["--zip", "", "--images", "24", "--weights", "none", "--repeats", "1",
                           "--out", str(out)]) == 0
    text = out.read_text()
    assert "kept" in text and "## Inference and launch · CPU · 64 px" in text
    for row in ("| bare `import keras`, fresh process (median) |",
                "| predict 1 image + Grad-CAM, service (median) |",
                "| export as Keras zip, service |",
                "| Predict one image, Grad-CAM included, ≤ 0.25x a bare `import keras` |",
                "| Launch → first epoch, features cached, ≤ 0.5x |"):
        assert row in text
    seconds = next(ln for ln in text.splitlines() if ln.startswith("| predict 1 image + Grad"
                                                                   "-CAM, service"))
    assert float(seconds.split("|")[2]) > 0
