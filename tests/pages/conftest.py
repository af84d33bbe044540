"""Fixtures for the page tests: the app under AppTest, and a workspace with data and runs.

Every page test starts from `app.py`, as a user's browser does, and switches to
its page from there: navigation and page config are part of what each test
sees, and the sidebar too on the app's first run (AppTest shows what `app.py`
draws around a page on that run only).
"""

from __future__ import annotations

import json
import time

import pytest
import streamlit
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from tlcore import data
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.runs import device
from tlcore.store import COMPLETED, FAILED, RunStore
from tlcore.ui import studio

APP = studio.APP
CPU = {"device": "CPU", "gpus": [], "mixed_precision": False, "backend": "tensorflow",
       "backends": ["tensorflow", "jax"]}


@pytest.fixture(autouse=True)
def known_device(ws):
    """The sidebar's device probe already answered, as on a server after its first probe.

    The probe imports Keras in a subprocess (seconds); with its answer in the
    workspace cache, `device.device_info` reads that instead, here and in the
    subprocesses some tests start.
    """
    (ws.cache_dir / device.DEVICE_CACHE_FILE).write_text(json.dumps(CPU))


@pytest.fixture(autouse=True)
def server_address():
    """`server_address(value)` sets Streamlit's `server.address`; loopback until then.

    The page tests run as a server started by `make run` (127.0.0.1) whatever
    folder they run from; the option is restored afterwards.
    """
    before = streamlit_config.get_option("server.address")

    def set_address(value: str | None) -> None:
        streamlit_config.set_option("server.address", value)

    set_address("127.0.0.1")
    yield set_address
    set_address(before)


@pytest.fixture
def app(ws):
    """`app(page=None)`: `app.py` run once, then switched to `page` when given.

    `page` is a page file relative to `app.py`, e.g. `"app_pages/train.py"`.
    """

    def make(page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        if page:
            at.switch_page(page).run()
        return at

    return make


def add_run(store: RunStore, status: str = COMPLETED, name: str | None = None,
            epochs: int = 4, fine_tune_from: int | None = None, **config) -> str:
    """A finished run written straight to the store, with per-epoch metrics."""
    cfg = RunConfig.from_dict({"dataset": "pets", "image_size": 32,
                               "base": {"weights": "none"}, **config})
    run_id = store.create_run(cfg, name)
    now = time.time()
    best = 0.5 + 0.1 * len(store.list_runs())
    store.update_run(run_id, status=status, started=now - 95, ended=now, device="CPU",
                     best_val_accuracy=best, best_val_loss=0.4, best_epoch=epochs,
                     test_metrics={"loss": 0.5, "accuracy": best - 0.05},
                     error=("Out of memory while training.\nTraceback (most recent call last):\n"
                            '  File "train.py", line 1') if status == FAILED else None)
    for epoch in range(1, epochs + 1):
        phase = 2 if fine_tune_from and epoch >= fine_tune_from else 1
        store.add_epoch(run_id, epoch, phase, {
            "loss": 1.0 / epoch, "accuracy": 0.4 + 0.1 * epoch, "val_loss": 1.2 / epoch,
            "val_accuracy": 0.35 + 0.1 * epoch, "learning_rate": 1e-3, "epoch_time": 1.5})
    return run_id


@pytest.fixture
def make_run(ws):
    """`make_run(status=..., name=..., **config)`: a finished run with metrics (see add_run)."""
    store = RunStore(ws)
    return lambda *args, **kwargs: add_run(store, *args, **kwargs)


@pytest.fixture
def populated(ws, tmp_path) -> dict[str, str]:
    """Dataset "pets" (3 classes, 32 px) and three finished runs: two completed, one failed."""
    folders = write_class_folders(tmp_path / "pets", ("cat", "dog", "bird"), per_class=8, size=32)
    data.import_dataset(folders, "pets", ws=ws)
    store = RunStore(ws)
    return {
        "adam": add_run(store, name="adam-flatten", fine_tune_from=3,
                        fine_tune={"blocks": 1, "epochs": 2}, train={"epochs": 2}),
        "sgd": add_run(store, name="sgd-avg", head={"pooling": "avg"},
                       train={"optimizer": "sgd", "learning_rate": 0.01}),
        "failed": add_run(store, status=FAILED, name="oom", epochs=1),
    }


@pytest.fixture
def fragment_timers(monkeypatch) -> dict[str, float | None]:
    """`{function name: run_every}` of the fragments the app declared; the latest wins.

    AppTest always runs the whole script and never fires a fragment's timer, so a
    test reads here whether a panel would poll in the browser. Clear it before a
    run to see only the fragments that run declares.
    """
    timers: dict[str, float | None] = {}
    declare = streamlit.fragment

    def fragment(func=None, *, run_every=None, **kwargs):
        if func is None:  # the decorator form, @st.fragment(run_every=...)
            return lambda f: fragment(f, run_every=run_every, **kwargs)
        timers[func.__name__] = run_every
        return declare(func, run_every=run_every, **kwargs)

    monkeypatch.setattr(streamlit, "fragment", fragment)
    return timers
