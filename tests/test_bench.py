"""Smoke run of the benchmark module at a tiny size (figures are not checked, only produced)."""

import os
import sys
import types

import pytest

from bench import recipe


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TLCORE_TEST_BENCH") != "1",
                    reason="set TLCORE_TEST_BENCH=1 to run the benchmark smoke run; .ci/run does")
def test_benchmark_runs_end_to_end_and_writes_its_section(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "unused"))
    monkeypatch.setenv("TLCORE_BENCH_FASHION", str(tmp_path / "no-fashion-here"))
    # The launch-to-first-epoch measurement has tests of its own; here only its rows.
    warm_start = types.ModuleType("bench.warm_start")
    calls = []

    def measure_warm_start(ws, config):
        calls.append(list(config.head.dense))
        return {"warm_first_epoch_s": 1.5, "cold_first_epoch_s": 9.0}

    warm_start.measure_warm_start = measure_warm_start
    monkeypatch.setitem(sys.modules, "bench.warm_start", warm_start)
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## other device · 64 px\n\nkept\n")
    assert recipe.main(["--zip", "", "--size", "32", "--train", "24", "--val", "8",
                        "--epochs", "2", "--ft-epochs", "1", "--batch", "8", "--weights", "none",
                        "--repeats", "1", "--seeds", "2", "--out", str(out)]) == 0
    text = out.read_text()
    assert "kept" in text  # other sections survive
    assert "· 32 px · generated shapes" in text
    for row in ("A plain Keras recipe", "B tlcore, same config, cold cache",
                "C tlcore, other head", "seconds per epoch", "B / floor =",
                "### Light runs", "| figure | measured | target | met |"):
        assert row in text
    light = text.split("### Light runs", 1)[1]
    for figure, target in (
            ("Warm head-only run, `python -m tlcore train` spawn to exit", "≤ 5 s"),
            ("A / warm CLI run", "≥ 20x"),
            ("Warm CLI run beyond the worker's imports", "≤ 1.5 s"),
            ("Run files of a head-only run", "≤ 5 MB"),
            ("Cold run B / floor", "≤ 1.2"),
            ("Phase-2 (block 5) epoch, plain Keras / tlcore", "≥ 4x"),
            ("B − A, mean best val accuracy", "within ±2 points")):
        line = next(ln for ln in light.splitlines() if ln.startswith(f"| {figure}"))
        assert target in line and line.rstrip(" |").endswith(("yes", "no")), line
    for figure in ('import tensorflow, keras', 'import tlcore.engine.train',
                   "Best val accuracy A, seeds 0-1", "Best val accuracy B, seeds 0-1"):
        assert figure in light
    warm = next(ln for ln in light.splitlines() if ln.startswith("| Launch → first epoch, warm"))
    assert warm.endswith("| 1.50 s | ≤ 2 s | yes |")
    assert "| Launch → first epoch, cold worker | 9.00 s | — | — |" in light
    assert calls == [[128]]
