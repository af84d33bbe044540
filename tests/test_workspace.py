"""Workspace paths: env override, validated names and ids, allowed server paths."""

import errno
import os
from pathlib import Path

import pytest

from tlcore.errors import ConfigError, DiskFullError
from tlcore.workspace import (
    Workspace,
    allowed_roots,
    atomic_write_text,
    check_run_name,
    check_server_path,
    has_control_characters,
    min_free_bytes,
    space_for,
)


def test_env_home_and_subfolders(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "h"))
    ws = Workspace.from_env()
    assert ws.root == (tmp_path / "h").resolve()
    assert ws.runs_dir.is_dir() and ws.cache_dir.parent == ws.root
    assert ws.db_path.name == "tlcore.db"


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 65, "a..b", "ümlaut"])
def test_bad_dataset_names_are_refused(ws, name):
    with pytest.raises(ConfigError, match="dataset name"):
        ws.dataset_dir(name)


@pytest.mark.parametrize("run_id", ["../../x", "ABCDEF", "abc", "a" * 33])
def test_bad_run_ids_are_refused(ws, run_id):
    with pytest.raises(ConfigError, match="run id"):
        ws.run(run_id)


def test_good_names(ws):
    assert ws.dataset_dir("fashion_mnist-600.v2").name == "fashion_mnist-600.v2"
    assert ws.run("0a1b2c3d4e5f").dir.parent == ws.runs_dir


def test_run_files_keep_their_names_on_disk(ws):
    # Existing workspaces depend on these names: changing one orphans their files.
    files = ws.run("0a1b2c3d4e5f")
    assert files.id == "0a1b2c3d4e5f" and not files.dir.exists()
    rel = {key: getattr(files, key).relative_to(files.dir).as_posix() for key in (
        "config", "log", "model", "history", "checkpoint_dir", "checkpoint_state",
        "test_metrics", "class_names", "eval_dir", "exports_dir")}
    assert rel == {
        "config": "config.json", "log": "log.txt", "model": "model.keras",
        "history": "history.csv", "checkpoint_dir": "checkpoint",
        "checkpoint_state": "checkpoint/state.json", "test_metrics": "test_metrics.json",
        "class_names": "class_names.json", "eval_dir": "eval", "exports_dir": "exports"}
    assert files.checkpoint_weights(4) == files.dir / "checkpoint" / "weights-e4.npz"
    assert files.evaluation("shapes") == files.dir / "eval" / "shapes.json"
    assert files.gradcam_dir("shapes") == files.dir / "eval" / "gradcam" / "shapes"
    assert files.export_zip("tflite") == files.dir / "exports" / "0a1b2c3d4e5f-tflite.zip"
    with pytest.raises(ConfigError, match="dataset name"):
        files.evaluation("../x")


def test_atomic_write_text_replaces_whole_files(tmp_path):
    path = tmp_path / "a.csv"
    atomic_write_text(path, "old")
    atomic_write_text(path, "x,y\r\n1,2\r\n")
    assert path.read_bytes() == b"x,y\r\n1,2\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]




# ---- paths typed in the browser -----------------------------------------------------------

def test_import_dir_is_a_workspace_folder(ws):
    assert ws.import_dir == ws.root / "import" and ws.import_dir.is_dir()


def test_server_paths_must_lie_inside_the_allowed_roots(ws, tmp_path, monkeypatch):
    monkeypatch.delenv("TLCORE_SERVER_ROOTS", raising=False)
    assert allowed_roots(ws) == [ws.weights_dir, ws.import_dir]
    flowers = ws.import_dir / "flowers"
    flowers.mkdir()
    assert check_server_path(str(flowers), ws) == flowers
    assert check_server_path("import/flowers/", ws) == flowers  # relative to the workspace
    assert check_server_path(ws.weights_dir / "vgg16.h5", ws) == ws.weights_dir / "vgg16.h5"

    secret = tmp_path / "secret"
    secret.mkdir()
    os.symlink(secret, ws.import_dir / "link")
    refusals = {}
    for path in (secret, tmp_path / "missing", f"{flowers}/../../../secret",
                 ws.import_dir / "link", "/etc/passwd", "/nonexistent/x", "", "a\x00b"):
        with pytest.raises(ConfigError) as err:
            check_server_path(path, ws)
        msg = str(err.value)
        assert "\n" not in msg and "TLCORE_SERVER_ROOTS" in msg
        refusals[str(path)] = msg.split(" Received:")[0]
    # The same words whether or not the path exists: a refusal reveals nothing outside.
    assert len(set(refusals.values())) == 1
    assert refusals[str(secret)].startswith(
        f"Only paths inside {ws.weights_dir}, {ws.import_dir} can be used from the browser")


def test_server_roots_from_the_environment(ws, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    monkeypatch.setenv("TLCORE_SERVER_ROOTS", os.pathsep.join([str(shared), str(tmp_path / "b")]))
    assert allowed_roots(ws) == [shared, tmp_path / "b"]
    assert check_server_path(shared / "data", ws) == shared / "data"
    with pytest.raises(ConfigError, match="Only paths inside"):
        check_server_path(ws.import_dir, ws)  # no longer allowed


@pytest.mark.parametrize("name", ["nl\n", "x\r", "tab\tname", "a\x00", "esc\x1b[31m"])
def test_dataset_names_with_control_characters_are_refused(ws, name):
    # A trailing newline passed a `$`-anchored pattern and made an undeletable folder.
    with pytest.raises(ConfigError, match="dataset name") as info:
        ws.dataset_dir(name)
    assert "\n" not in str(info.value)


def test_run_ids_are_matched_whole(ws):
    with pytest.raises(ConfigError, match="run id"):
        ws.run("0a1b2c3d4e5f\n")


@pytest.mark.parametrize("name", ["a\nb", "a\x1b[31mb", "bell\x07", "del\x7f", "c1\x9b31m",
                                  "line\u2028sep", "para\u2029sep", "x" * 121, "", "   "])
def test_bad_run_names_are_refused_in_one_line(name):
    with pytest.raises(ConfigError, match="run name") as info:
        check_run_name(name)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


@pytest.mark.parametrize("name", ["baseline", "  spaced  ", "lr=1e-3 · gap", "猫 vs 犬",
                                  "![x](y) :red[z] $w$", "x" * 120])
def test_good_run_names_are_kept_as_typed_without_surrounding_spaces(name):
    assert check_run_name(name) == name.strip()


def test_control_characters_are_cc_and_line_separators():
    assert has_control_characters("a\tb") and has_control_characters("\u2028")
    assert not has_control_characters("café · 猫 \u200b") and not has_control_characters("")


def test_a_full_disk_is_one_error_and_leaves_no_temp_file(tmp_path, monkeypatch, full_disk):
    target = tmp_path / "state.json"
    target.write_text("old")

    real_write = Path.write_text

    def no_space(self, text, *args, **kwargs):
        real_write(self, text[:1], *args, **kwargs)  # half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space left"):
        patch.setattr(Path, "write_text", no_space)
        atomic_write_text(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert target.read_text() == "old"

    monkeypatch.setenv("TLCORE_MIN_FREE_MB", "1")
    with pytest.raises(DiskFullError, match=f"^disk full: 5 MB free in {tmp_path} "):
        with space_for(tmp_path, 10**7):  # 10 MB would leave less than 1 MB
            pytest.fail("the write must not start")
    with pytest.raises(DiskFullError, match="^disk full: "):
        with space_for(tmp_path, 0):
            raise OSError(errno.ENOSPC, "No space left on device")
    for bad in ("lots", "-1", "inf"):
        monkeypatch.setenv("TLCORE_MIN_FREE_MB", bad)
        with pytest.raises(ConfigError, match="TLCORE_MIN_FREE_MB must be a number"):
            min_free_bytes()
