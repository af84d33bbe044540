"""A toast when a run of yours ends while another page is open."""

from __future__ import annotations

import time

from tlcore.auth import MEMBER, Actor
from tlcore.config import RunConfig
from tlcore.store import CANCELLED, COMPLETED, QUEUED, RUNNING, RunStore
from tlcore.ui import notices

ANA, BO = Actor("ana@example.com", "Ana", MEMBER), Actor("bo@example.com", "Bo", MEMBER)


def _run(run_id: str, status: str = RUNNING, owner: str | None = "ana@example.com",
         **fields) -> dict:
    return {"id": run_id, "name": f"run-{run_id}", "status": status, "owner": owner,
            "extra": {}, "error": None, "best_val_accuracy": None, **fields}


def test_settle_names_the_watched_runs_that_left_the_queue():
    active = [_run("a"), _run("b", QUEUED), _run("c", owner="bo@example.com")]
    watched, ended = notices.settle(set(), active, ANA)
    assert watched == {"a", "b"} and ended == []  # Bo's run is not Ana's to hear about
    watched, ended = notices.settle(["a", "b"], [_run("b", RUNNING)], ANA)
    assert watched == {"b"} and ended == ["a"]
    # Without a login, every run is everyone's.
    assert notices.settle([], active, None)[0] == {"a", "b", "c"}
    assert notices.settle([], [_run("c", owner=None)], Actor(None, "operator", MEMBER))[0] == {"c"}
    assert notices.settle(["c"], [], BO)[1] == ["c"]


def test_notice_text_says_how_the_run_ended():
    done = _run("a", COMPLETED, best_val_accuracy=0.873, name="cats <b>")
    assert notices.notice_text(done) == r"Run **cats \<b\>** completed — 87.3% val accuracy"
    failed = _run("b", "failed", error="Out of memory.\nTraceback ...")
    assert notices.notice_text(failed) == "Run **run\\-b** failed: Out of memory\\."
    assert notices.notice_text(_run("c", CANCELLED)) == "Run **run\\-c** cancelled"


def test_a_run_seen_running_gets_one_toast_when_it_completes(app, ws):
    store = RunStore(ws)
    store.create_run(RunConfig(dataset="d"), name="quick")
    now = time.time()
    # Claimed without a worker just now, so refresh leaves it running.
    run_id = store.claim_next(2, started=now, heartbeat=now)
    at = app()
    assert not at.exception and not at.toast
    store.update_run(run_id, status=COMPLETED, ended=time.time(), best_val_accuracy=0.873)
    at.switch_page("app_pages/data.py").run()
    assert not at.exception
    assert [t.value for t in at.toast] == ["Run **quick** completed — 87.3% val accuracy"]
    at.run()
    assert not at.toast  # once only
