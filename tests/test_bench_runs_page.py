"""Smoke run of the Runs page benchmark at a tiny size (figures are not checked, only produced)."""

import os

import pytest

from bench import runs_page


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TLCORE_TEST_BENCH") != "1",
                    reason="set TLCORE_TEST_BENCH=1 to run the benchmark smoke run; .ci/run does")
def test_runs_page_benchmark_writes_its_section(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "unused"))
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## other · 64 px\n\nkept\n")
    assert runs_page.main(["--small", "3", "--large", "12", "--epochs", "2", "--tick", "2",
                           "--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "kept" in text and "## Runs page · SQLite · " in text
    for row in ("| figure (s) | 3 runs | 12 runs |", "| Open, app.py then the Runs page",
                "| Tick 2 runs", "| Open with 12 runs ≤ 1.1x open with 3 |",
                "| Tick 2 (12 in the store) ≤ 0.3x open |", "The floor with 12 runs"):
        assert row in text
