"""`python -m tlcore datasets issues`: its JSON, its text, its errors (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.support.labels import colour_dataset
from tlcore import cli
from tlcore.vgg16 import backbones

REPO = Path(__file__).resolve().parents[2]


def tlcore(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI with the test's TLCORE_HOME (exported by the `ws` fixture)."""
    return subprocess.run([sys.executable, "-m", "tlcore", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def seeded_weights_file(path: Path) -> Path:
    """A Keras 3 `.weights.h5` of VGG16 notop shapes with seeded He-normal kernels."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        layers = f.create_group("layers")
        for i, conv in enumerate(backbones.CONV_LAYERS):
            kernel, bias = backbones.conv_shapes()[conv]
            variables = layers.create_group("conv2d" + (f"_{i}" if i else "")).create_group(
                "vars")
            variables.attrs["name"] = conv
            fan_in = kernel[0] * kernel[1] * kernel[2]
            variables.create_dataset("0", data=rng.normal(0, np.sqrt(2 / fan_in), kernel)
                                     .astype("f4"))
            variables.create_dataset("1", data=np.zeros(bias, "f4"))
        f.create_group("vars")
    return path


@pytest.mark.slow
def test_issues_json_lists_the_swapped_images_first_then_reads_the_cache(ws, tmp_path):
    manifest, swapped = colour_dataset(ws)
    weights = seeded_weights_file(tmp_path / "vgg16_local.weights.h5")
    done = tlcore("datasets", "issues", "colours", "--image-size", "32", "--weights", weights,
                  "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["image_id"] for r in rows} == swapped  # the suspects
    for row in rows:
        assert set(row) == {"image_id", "file", "source", "split", "given", "suggested",
                            "score", "confidence", "issue", "suspect"}
        assert row["file"].endswith(f"/{row['image_id']}.png") and row["suspect"] is True
        assert {row["given"], row["suggested"]} == {"red", "blue"}
        assert 0 <= row["score"] < 0.5
    assert [r["score"] for r in rows] == sorted(r["score"] for r in rows)

    start = time.monotonic()
    text = tlcore("datasets", "issues", "colours", "--image-size", "32", "--weights", weights,
                  "--top", "6")
    assert text.returncode == 0, text.stderr
    assert time.monotonic() - start < 15  # cached: no feature pass
    lines = text.stdout.splitlines()
    assert lines[0] == ("dataset colours: the 6 most suspicious of 32 images (32 px, weights "
                        f"{weights})")
    assert [ln.split()[1] for ln in lines[1:5]] == [r["image_id"] for r in rows]
    fifth = lines[5].split()  # rank, id, given, "->", suggested, ...: not an issue
    assert fifth[3] == "->" and fifth[2] == fifth[4]
    assert lines[-1] == "near-duplicate groups: 0; outliers: 0"


def test_issues_refuses_bad_input_in_one_line(ws):
    colour_dataset(ws, per_class=6, flipped=0)
    for args, expected in (
            (("nope",), "No dataset named 'nope'"),
            (("colours", "--top", "0"), "--top must be a whole number of at least 1"),
            (("colours", "--weights", "run:abc"), "weights must be 'imagenet', 'none' or"),
            (("colours", "--image-size", "8"), "image_size"),
    ):
        done = tlcore("datasets", "issues", *args)
        assert done.returncode == 2, (args, done.stdout)
        assert done.stderr.startswith("error: ") and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""


def test_imagenet_without_local_weights_or_network_says_what_to_do(ws, tmp_path, monkeypatch,
                                                                    capsys):
    colour_dataset(ws, per_class=6, flipped=0)
    monkeypatch.delenv(backbones.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    # Port 9 on localhost refuses at once: the same path as a machine without network.
    monkeypatch.setattr(backbones, "VGG16_NOTOP_URL", "http://127.0.0.1:9/vgg16_notop.h5")
    assert cli.main(["datasets", "issues", "colours", "--image-size", "32", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ImageNet weights for VGG16 are not available locally")
    assert backbones.ENV_WEIGHTS in err and str(ws.weights_dir) in err
    assert not list((ws.cache_dir / "reviews").glob("*"))
