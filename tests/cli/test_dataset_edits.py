"""`python -m tlcore datasets create/add/remove/relabel/versions`, run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tlcore.data.demo import synth_image

REPO = Path(__file__).resolve().parents[2]


def tlcore(*args) -> subprocess.CompletedProcess:
    """Run the CLI with the test's TLCORE_HOME (exported by the `ws` fixture)."""
    return subprocess.run([sys.executable, "-m", "tlcore", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def images(folder: Path, seeds: range) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = folder / f"img{seed}.png"
        synth_image(seed % 4, 24, np.random.default_rng(seed)).save(path)
        paths.append(path)
    return paths


def test_build_edit_and_list_versions(ws, tmp_path):
    made = tlcore("datasets", "create", "pets", "--classes", "cat, dog")
    assert made.returncode == 0, made.stderr
    assert made.stdout == "pets\n"

    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    added = tlcore("datasets", "add", "pets", "--class", "cat",
                   *images(tmp_path / "cats", range(3)), junk)
    assert added.returncode == 0, added.stderr
    version, *ids = added.stdout.split()
    assert len(version) == 64 and len(ids) == 3 and all(len(i) == 16 for i in ids)
    assert "1 file skipped: notes.txt (not an image" in added.stderr
    assert tlcore("datasets", "add", "pets", "--class", "dog",
                  *images(tmp_path / "dogs", range(10, 12))).returncode == 0

    shown = json.loads(tlcore("datasets", "show", "pets", "--images", "--json").stdout)
    assert [im["id"] for im in shown["images"] if im["class"] == "cat"] == ids
    assert shown["counts"]["cat"]["total"] == 3 and shown["counts"]["dog"]["total"] == 2
    table = tlcore("datasets", "show", "pets", "--images").stdout
    assert f"{ids[0]}  cat" in table and "img0.png" in table

    moved = tlcore("datasets", "relabel", "pets", ids[0], "--to", "dog")
    assert moved.returncode == 0, moved.stderr
    removed = tlcore("datasets", "remove", "pets", ids[1], ids[2])
    assert removed.returncode == 0, removed.stderr

    listed = json.loads(tlcore("datasets", "versions", "pets", "--json").stdout)
    assert [v["summary"] for v in listed] == [
        "created empty", "added 3 to 'cat'", "added 2 to 'dog'",
        "relabelled 1 'cat'->'dog'", "removed 2 from 'cat'"]
    assert listed[1]["id"] == version
    assert listed[-1]["id"] == removed.stdout.strip() and listed[-1]["head"]
    assert [v["parent"] for v in listed[1:]] == [v["id"] for v in listed[:-1]]
    assert [v["n_images"] for v in listed] == [0, 3, 5, 5, 3]
    assert listed[3]["changes"]["relabelled"] == [{"from": "cat", "to": "dog", "n": 1}]
    human = tlcore("datasets", "versions", "pets").stdout
    assert "relabelled 1 'cat'->'dog'" in human and f"{listed[-1]['id'][:12]} *" in human


def test_errors_are_one_line_and_exit_non_zero(ws, tmp_path):
    assert tlcore("datasets", "create", "pets", "--classes", "cat,dog").returncode == 0
    [path] = images(tmp_path, range(1))
    for args, message in [
        (("add", "pets", "--class", "cow", path), "has no class 'cow'"),
        (("add", "nope", "--class", "cat", path), "No dataset named 'nope'"),
        (("remove", "pets", "0123456789abcdef"), "No image with id '0123456789abcdef'"),
        (("relabel", "pets", "0123456789abcdef", "--to", "dog"), "No image with id"),
        (("versions", "nope"), "No dataset named 'nope'"),
        (("add", "pets", "--class", "cat", tmp_path / "missing.png"), "Cannot read"),
        (("create", "pets", "--classes", "a"), "already exists"),
    ]:
        done = tlcore("datasets", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
    listed = json.loads(tlcore("datasets", "versions", "pets", "--json").stdout)
    assert len(listed) == 1  # nothing refused made a version
