"""Workspace paths: env override, validated names and ids."""

import pytest

from tlcore.errors import ConfigError
from tlcore.workspace import Workspace, check_run_name, has_control_characters


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
        ws.run_dir(run_id)


def test_good_names(ws):
    assert ws.dataset_dir("fashion_mnist-600.v2").name == "fashion_mnist-600.v2"
    assert ws.run_dir("0a1b2c3d4e5f").parent == ws.runs_dir


@pytest.mark.parametrize("name", ["nl\n", "x\r", "tab\tname", "a\x00", "esc\x1b[31m"])
def test_dataset_names_with_control_characters_are_refused(ws, name):
    # A trailing newline passed a `$`-anchored pattern and made an undeletable folder.
    with pytest.raises(ConfigError, match="dataset name") as info:
        ws.dataset_dir(name)
    assert "\n" not in str(info.value)


def test_run_ids_are_matched_whole(ws):
    with pytest.raises(ConfigError, match="run id"):
        ws.run_dir("0a1b2c3d4e5f\n")


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
