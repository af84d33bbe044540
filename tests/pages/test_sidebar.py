"""The sidebar's queue: running runs, then a few queued ones, the rest counted."""

from __future__ import annotations

from tlcore.config import RunConfig
from tlcore.runs import queue
from tlcore.store import RunStore


def test_a_long_queue_is_summarised(app, ws, monkeypatch):
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])  # they stay queued
    store = RunStore(ws)
    config = RunConfig.from_dict({"dataset": "pets", "image_size": 32})
    names = [f"queued-{i}" for i in range(40)]
    for name in names:
        store.create_run(config, name)
    at = app("app_pages/data.py")
    assert not at.exception
    links = [link.proto.label for link in at.sidebar.get("page_link")]
    assert links == [f"queued\\-{i} · queued" for i in range(5)]  # oldest first
    captions = [c.value for c in at.sidebar.caption]
    assert "and 35 more queued (Runs & compare lists them)" in captions
