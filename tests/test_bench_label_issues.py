"""Smoke run of the label issues benchmark at a tiny size (figures not checked, only produced)."""

import os
import zipfile

import pytest

from bench import label_issues
from tlcore.data.demo import write_class_folders


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TLCORE_TEST_BENCH") != "1",
                    reason="set TLCORE_TEST_BENCH=1 to run the benchmark smoke run; .ci/run does")
def test_label_issues_benchmark_writes_its_section(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "unused"))
    folders = write_class_folders(tmp_path / "shapes", ("disc", "square", "triangle"),
                                  per_class=10, size=32)
    upload = tmp_path / "shapes.zip"
    with zipfile.ZipFile(upload, "w") as zf:
        for path in sorted(folders.rglob("*.png")):
            zf.write(path, f"shapes/{path.relative_to(folders)}")
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## other · 64 px\n\nkept\n")
    assert label_issues.main(["--zip", str(upload), "--weights", "none", "--size", "32",
                              "--flips", "3", "--top", "5", "--seeds", "2",
                              "--out", str(out)]) == 0
    text = out.read_text()
    assert "kept" in text and "## Label issues · CPU · 32 px · shapes.zip" in text
    for row in ("| seed | recall at 5 | precision at 5 |", "| 0 | ", "| 1 | ", "| mean ± sd | ",
                "| random ranking (expected) | 16.7 % | 10.0 % |",
                "| ≥ 70 % of the flipped images in the top 5 (mean of 2 seeds) |",
                "| block 5 pooled, C 0.01, 5 folds |", "30 images, 3 classes"):
        assert row in text, row


def test_a_flipped_zip_moves_each_chosen_image_to_another_class(tmp_path):
    folders = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=16)
    source = tmp_path / "src.zip"
    with zipfile.ZipFile(source, "w") as zf:
        for path in sorted(folders.rglob("*.png")):
            zf.write(path, f"root/{path.relative_to(folders)}")
    flipped = label_issues.flipped_zip(source, tmp_path / "out.zip", 3, seed=0)
    with zipfile.ZipFile(source) as before, zipfile.ZipFile(tmp_path / "out.zip") as after:
        was = {n: before.read(n) for n in before.namelist()}
        now = {n: after.read(n) for n in after.namelist()}
    assert len(flipped) == 3 and len(now) == len(was) == 12
    moved = {n: data for n, data in now.items() if n not in was}
    assert {n.split("/")[-1] for n in moved} == flipped
    for name, data in moved.items():  # the same image, in the other class's folder
        origin = next(n for n, d in was.items() if d == data and n not in now)
        assert origin.split("/")[1] != name.split("/")[1]
        assert name.split("/")[2] == origin.split("/")[2].replace(".png", "-flipped.png")
