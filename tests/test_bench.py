"""Smoke run of the benchmark module at a tiny size (figures are not checked, only produced)."""

import pytest

from bench import recipe


@pytest.mark.slow
def test_benchmark_runs_end_to_end_and_writes_its_section(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "unused"))
    monkeypatch.setenv("TLCORE_BENCH_FASHION", str(tmp_path / "no-fashion-here"))
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## other device · 64 px\n\nkept\n")
    assert recipe.main(["--size", "32", "--train", "24", "--val", "8", "--epochs", "2",
                        "--ft-epochs", "1", "--batch", "8", "--weights", "none",
                        "--out", str(out)]) == 0
    text = out.read_text()
    assert "kept" in text  # other sections survive
    assert "· 32 px" in text and "generated shapes" in text
    for row in ("A plain Keras recipe", "B tlcore, same config, cold cache",
                "C tlcore, other head", "seconds per epoch", "B / floor ="):
        assert row in text
