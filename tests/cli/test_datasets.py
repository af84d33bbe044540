"""`python -m tlcore datasets ...` and `python -m tlcore demo`, run as real subprocesses."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tlcore.cli.datasets import ProgressPrinter, format_table
from tlcore.data.demo import write_class_folders

REPO = Path(__file__).resolve().parents[2]


def tlcore(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI with the test's TLCORE_HOME (exported by the `ws` fixture)."""
    return subprocess.run([sys.executable, "-m", "tlcore", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_import_list_show_delete_round_trip(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("cat", "dog house"), per_class=6, size=16)
    (folder / "cat" / "notes.txt").write_text("skip me")

    done = tlcore("datasets", "import", folder, "--name", "pets", "--val", "0.25", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "pets\n"
    assert (ws.dataset_dir("pets") / "manifest.json").is_file()

    listed = tlcore("datasets", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["pets"] and rows[0]["n_images"] == 12

    table = tlcore("datasets", "list").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "IMAGES"]
    assert table[1].split()[:2] == ["pets", "12"]

    shown = json.loads(tlcore("datasets", "show", "pets", "--json").stdout)
    assert {"name", "classes", "counts", "skipped", "health"} <= set(shown)
    assert shown["classes"] == ["cat", "dog house"]
    assert shown["split"] == {"val": 0.25, "test": 0.1, "seed": 3}
    assert shown["counts"]["dog house"] == {"train": 3, "val": 2, "test": 1, "total": 6}
    assert shown["skipped"] == [{"file": "cat/notes.txt",
                                 "reason": "not an image (or an unsupported format)"}]

    human = tlcore("datasets", "show", "pets").stdout
    assert "dog house" in human and "cat/notes.txt" in human and "Health" in human

    gone = tlcore("datasets", "delete", "pets")
    assert gone.returncode == 0 and not ws.dataset_dir("pets").exists()
    again = tlcore("datasets", "delete", "pets")
    assert again.returncode == 2 and "No dataset named 'pets'" in again.stderr


def test_refused_import_exits_2_with_one_line(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("only",), per_class=6, size=16)
    res = tlcore("datasets", "import", folder, "--name", "lonely")
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: Refused: only 1 class folder found (only)")
    assert not ws.dataset_dir("lonely").exists()
    assert json.loads(tlcore("datasets", "list", "--json").stdout) == []


@pytest.mark.parametrize("name", ["x\n", "nl\nname", "esc\x1b[31m"])
def test_import_refuses_a_name_with_control_characters_in_one_line(ws, tmp_path, name):
    # `$` in the name pattern once let "x\n" through: a dataset no command could delete.
    folder = write_class_folders(tmp_path / "src", ("cat", "dog"), per_class=6, size=16)
    res = tlcore("datasets", "import", folder, "--name", name)
    assert res.returncode != 0 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: A dataset name must be")
    assert f"Received: name={name!r}" in lines[0]
    assert list(ws.datasets_dir.iterdir()) == []
    assert json.loads(tlcore("datasets", "list", "--json").stdout) == []


def test_demo_command(ws):
    res = tlcore("demo", "--name", "first-demo")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "first-demo\n"
    shown = json.loads(tlcore("datasets", "show", "first-demo", "--json").stdout)
    assert len(shown["classes"]) >= 3 and shown["n_images"] >= 300
    twice = tlcore("demo", "--name", "first-demo")
    assert twice.returncode == 2 and "already exists" in twice.stderr


def test_cli_imports_from_any_path_and_deletes_a_dataset_whose_folder_is_gone(ws, tmp_path):
    # The operator on the server may name paths the browser may not.
    folder = write_class_folders(tmp_path / "anywhere", ("a", "b"), per_class=5, size=16)
    assert tlcore("datasets", "import", folder, "--name", "gone").returncode == 0
    shutil.rmtree(ws.dataset_dir("gone") / "images")
    shown = tlcore("datasets", "show", "gone")
    assert shown.returncode == 0  # the manifest alone answers
    shutil.rmtree(ws.dataset_dir("gone"))
    broken = tlcore("datasets", "show", "gone")
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1
    deleted = tlcore("datasets", "delete", "gone")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(tlcore("datasets", "list", "--json").stdout) == []


def test_cache_clear_removes_staging_left_by_killed_imports(ws):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    killed = ws.tmp_dir / "import-pets-k1ll3d"
    (killed / "images" / "0").mkdir(parents=True)
    (killed / "images" / "0" / "a.png").write_bytes(bytes(2_000_000))
    (killed / ".owner").write_text(json.dumps({"host": socket.gethostname(), "pid": proc.pid}))
    running = ws.tmp_dir / "job-st1llrunn1ng"
    running.mkdir()
    (running / ".owner").write_text(json.dumps({"host": socket.gethostname(),
                                                "pid": os.getpid()}))
    hour_ago = time.time() - 3600
    for folder in (killed, running):
        os.utime(folder, (hour_ago, hour_ago))

    res = tlcore("cache", "clear")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "freed 0.0 MB", "removed 1 staging folder left by killed imports (2.0 MB)"]
    assert not killed.exists() and running.exists()


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_printer_quiet_for_small_non_tty_imports():
    stream = _Stream(tty=False)
    bar = ProgressPrinter(stream, large=100)
    for i in range(11):
        bar(i, 10, "x.png")
    assert stream.getvalue() == ""


def test_progress_printer_lines_for_large_non_tty_imports():
    stream = _Stream(tty=False)
    bar = ProgressPrinter(stream, large=100)
    for i in range(0, 1001, 7):
        bar(i, 1000, "x.png")
    bar(1000, 1000, "done")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[-1] == "imported 1000/1000 files (100%)"


def test_progress_printer_bar_on_a_terminal():
    stream = _Stream(tty=True)
    bar = ProgressPrinter(stream)
    bar(5, 10, "cat/1.png")
    assert stream.getvalue().startswith("\r[" + "#" * 15 + "." * 15 + "] 5/10 cat/1.png")
    bar.close()
    assert stream.getvalue().endswith("\n")


def test_format_table_aligns_columns():
    text = format_table(["NAME", "N"], [["a", "5"], ["longer", "123"]], right={1})
    assert text.splitlines() == ["NAME      N", "a         5", "longer  123"]
