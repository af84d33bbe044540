"""Workspace paths: env override, validated names and ids."""

import pytest

from tlcore.errors import ConfigError
from tlcore.workspace import Workspace


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
