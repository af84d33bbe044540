"""The Adapt page: pick a run and a target, follow the background job, read the report."""

from __future__ import annotations

import json

import pytest

from tests.pages.conftest import CPU
from tests.support.adaptlab import lab_env
from tests.support.runs import wait_for
from tlcore.runs import device
from tlcore.ui import adapt as ui
from tlcore.workspace import Workspace


@pytest.fixture
def lab(lab_home, monkeypatch):
    """The shared lab workspace (a completed source run, target datasets) as TLCORE_HOME."""
    home, run_id = lab_home
    lab_env(monkeypatch, home)
    ws = Workspace.from_env(home)
    (ws.cache_dir / device.DEVICE_CACHE_FILE).write_text(json.dumps(CPU))
    return ws, run_id


def test_without_completed_runs_the_page_points_to_train(app):
    at = app("app_pages/adapt.py")
    assert not at.exception
    assert any("No completed runs yet" in i.value for i in at.info)


def test_adapting_shows_the_shift_the_methods_and_the_chosen_run(app, lab):
    _, run_id = lab
    at = app("app_pages/adapt.py")
    assert not at.exception
    assert at.selectbox(key="adapt_run").value == run_id
    at.selectbox(key="adapt_target").select("inverted").run()
    at.multiselect(key="adapt_methods").set_value(["coral"]).run()
    at.button(key="adapt_start").click().run()
    assert ui.JOB_KEY in at.session_state

    def reported():
        at.run()
        return ui.REPORT_KEY in at.session_state and at.session_state[ui.REPORT_KEY]

    report = wait_for(reported, "the adaptation's report", timeout=120, interval=0.5)
    assert not at.exception
    assert report["target"] == "inverted" and report["chosen"] in ("none", "coral")
    assert any(box.value.startswith("Strong shift") for box in at.warning)
    table = next(d.value for d in at.dataframe if "method" in d.value.columns)
    assert list(table["method"]) == ["No adaptation", "CORAL"]
    assert table["target accuracy"].between(0, 1).all()
    assert any(report["run_id"] in box.value for box in at.success)
    assert at.get("plotly_chart")


def test_an_unreadable_store_shows_one_line(app, ws):
    ws.db_path.write_bytes(b"this is not a database " * 512)
    at = app("app_pages/adapt.py")
    assert not at.exception
    assert [e.value for e in at.main.error][0].startswith("The run store at ")
