"""Every page renders, empty or full; the sidebar; the UI process never loads TensorFlow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.markup import shown
from tlcore.config import RunConfig
from tlcore.runs import device, sweeps
from tlcore.runs.executors import local
from tlcore.store import RunStore, new_run_id
from tlcore.ui import studio

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("app_pages/data.py", "app_pages/train.py", "app_pages/runs.py", "app_pages/evaluate.py")
TITLES = {"app_pages/train.py": "Train", "app_pages/runs.py": "Runs & compare",
          "app_pages/evaluate.py": "Evaluate"}


def _texts(at) -> str:
    parts = [e.value for kind in ("title", "markdown", "caption", "info", "warning", "success")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _sidebar(at) -> str:
    return "\n".join(str(c.value) for c in at.sidebar.caption)


def _once_probed(app, page: str | None = None):
    """A fresh app (see `_sidebar_warnings` below) once the background device probe answered."""
    deadline = time.monotonic() + 30
    at = app(page)
    while "Checking…" in _sidebar(at) and time.monotonic() < deadline:
        time.sleep(0.05)
        at = app(page)
    return at


def test_every_page_renders_on_an_empty_workspace(app, ws):
    at = _once_probed(app)
    assert not at.exception
    # Sidebar: workspace path, device, queue.
    assert str(ws.root) in [c.value for c in at.sidebar.code]
    sidebar = _sidebar(at)
    assert "CPU · float32 · TensorFlow" in sidebar and "Nothing running" in sidebar
    assert "Local workers · 0 of 1 busy" in sidebar  # no GPU: the worker limit
    assert "No datasets yet" in at.info[0].value
    expected = {"app_pages/train.py": "No datasets yet", "app_pages/runs.py": "No runs yet",
                "app_pages/evaluate.py": ""}
    for page, text in expected.items():
        at.switch_page(page).run()
        assert not at.exception, page
        assert text in _texts(at), page


def test_a_slow_device_probe_delays_no_page(app, ws, populated, monkeypatch):
    """The probe imports Keras in a subprocess; until it answers, pages draw without it."""
    answer = threading.Event()

    def slow_probe(ws=None, refresh=False):
        answer.wait(30)
        return {"device": "Test GPU", "gpus": ["Test GPU"], "mixed_precision": True,
                "backend": "jax", "gpu_free_bytes": [8 * 2**30]}

    monkeypatch.setattr(device, "device_info", slow_probe)
    at = app()
    assert not at.exception
    assert ":material/hourglass_empty: Checking…" in _sidebar(at)
    at.switch_page("app_pages/train.py").run()
    assert at.button(key="train_launch")  # the form is drawn in full
    assert not any("images per batch" in c.value for c in at.caption)
    answer.set()
    assert "Test GPU · mixed precision on · JAX" in _sidebar(_once_probed(app))
    at = app("app_pages/train.py")
    assert any("images per batch fit in the 8 GiB free on Test GPU" in c.value
               for c in at.caption)


def test_every_page_renders_with_datasets_and_runs(app, populated):
    at = app()
    assert not at.exception
    assert at.title[0].value == "Data"
    assert [m.value for m in at.metric][:2] == ["24", "3"]
    assert len(at.get("plotly_chart")) == 1
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, page
        assert [t.value for t in at.title] == [TITLES[page]], page
    # Evaluate, the last page: the newest completed run's tabs, not evaluated yet.
    assert [t.label for t in at.tabs] == ["Metrics", "Mistakes & Grad-CAM", "Transfer",
                                          "Predict", "Export"]
    assert "Not evaluated on this dataset yet" in at.info[0].value
    at.switch_page("app_pages/runs.py").run()
    table = at.dataframe(key="runs_table").value
    assert table["run"].to_list() == ["oom", "sgd-avg", "adam-flatten"]  # newest first


def test_pages_never_import_tensorflow():
    pattern = re.compile(r"^\s*(import|from)\s+(tensorflow|keras)\b", re.M)
    for path in [studio.APP, *sorted(studio.PAGES_DIR.glob("*.py")),
                 *sorted((ROOT / "tlcore" / "ui").glob("*.py")),
                 *sorted((ROOT / "tlcore" / "charts").glob("*.py"))]:
        assert not pattern.search(path.read_text()), path


def test_only_tlcore_ui_imports_streamlit():
    pattern = re.compile(r"^\s*(import|from)\s+streamlit\b", re.M)
    ui = ROOT / "tlcore" / "ui"
    outside = [path for path in sorted((ROOT / "tlcore").rglob("*.py"))
               if ui not in path.parents and pattern.search(path.read_text())]
    assert outside == []


@pytest.mark.usefixtures("populated")
def test_rendering_every_page_leaves_tensorflow_unloaded(ws):
    # A fresh interpreter: other tests in this process may have loaded TensorFlow.
    script = f"""
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(studio.APP)!r}, default_timeout=60)
at.run()
errors = [e.value for e in at.exception]
for page in {list(PAGES[1:])!r}:
    at.switch_page(page).run()
    errors += [e.value for e in at.exception]
print(json.dumps({{"errors": errors,
                   "loaded": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"errors": [], "loaded": []}


def _sidebar_warnings(at) -> list[str]:
    return [shown(w.value) for w in at.sidebar.warning]


# AppTest shows what `app.py` draws around the page (the sidebar) on an app's first run
# only; after `switch_page` or a rerun it shows the page's own elements. The sidebar is the
# same on every page, so it is checked on that first run.
@pytest.mark.parametrize("address", ["0.0.0.0", "", "192.168.1.20", "::"])
def test_sidebar_warns_while_shared_on_the_network_without_a_login(app, server_address,
                                                                   address):
    server_address(address)
    at = app()
    assert not at.exception
    (warning,) = _sidebar_warnings(at)
    where = f"{address}:8501" if address else "port 8501 of this machine"
    assert warning.startswith("Shared on the network without a login: anyone who can reach "
                              f"{where} can use this studio.")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_no_network_warning_on_loopback(app, server_address, address):
    server_address(address)
    at = app()
    assert not at.exception and _sidebar_warnings(at) == []


def test_no_network_warning_with_a_login(app, server_address):
    server_address("0.0.0.0")
    at = AppTest.from_file(str(studio.APP), default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                          "cookie_secret": "x"}
    at.run()
    assert not at.exception and _sidebar_warnings(at) == []


@pytest.mark.parametrize("page", PAGES)
def test_an_unreadable_store_shows_one_line_on_every_page(app, ws, page):
    ws.db_path.write_bytes(b"this is not a database " * 512)
    at = app(None if page == PAGES[0] else page)
    assert not at.exception, at.exception
    errors = [shown(e.value) for e in at.main.error]
    assert errors and errors[0].startswith(f"The run store at {ws.db_path} cannot be read")
    assert "file is not a database" in errors[0]
    assert all("\n" not in e and "Traceback" not in e for e in errors)


def test_sidebar_shows_each_gpu_slot_and_the_run_holding_it(app, ws, monkeypatch):
    monkeypatch.setenv("TLCORE_GPUS", "0,1")
    store = RunStore(ws)
    store.create_run(RunConfig(dataset="d"), name="held")
    now = time.time()
    # Claimed without a worker just now, so refresh leaves it running.
    assert store.claim_next(2, slots=("1",), started=now, heartbeat=now)
    at = app()
    assert not at.exception
    sidebar = [str(c.value) for c in at.sidebar.caption]
    assert ":material/memory: Local workers · 2 GPU slots" in sidebar
    assert "GPU 0 · free" in sidebar and "GPU 1 · held" in sidebar


def test_sidebar_says_when_the_ray_cluster_cannot_be_reached(app, monkeypatch):
    monkeypatch.setenv("TLCORE_EXECUTOR", "ray")
    monkeypatch.setenv("TLCORE_RAY_ADDRESS", "http://127.0.0.1:9")  # nothing listens there
    at = app()
    assert not at.exception
    (warning,) = _sidebar_warnings(at)
    assert warning.startswith("Cannot reach the Ray cluster at http://127.0.0.1:9")


def test_a_sweep_trial_is_counted_and_listed_and_a_starting_sweep_worker_too(app, ws):
    store = RunStore(ws)
    config = RunConfig.from_dict({"dataset": "pets", "image_size": 32})
    # Two sweep workers (as their command lines name them): one training a trial, one
    # still starting up.
    workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                 local.SWEEP_WORKER, "sweep1"], start_new_session=True)
               for _ in range(2)]
    try:
        sweeps.log_file(ws, "sweep1").parent.mkdir(parents=True, exist_ok=True)
        sweeps.log_file(ws, "sweep1").write_text("")  # a sweep of this workspace
        run_id = new_run_id()
        ws.workers_dir.mkdir(parents=True, exist_ok=True)
        local.trial_file(ws, workers[0].pid).write_text(run_id)
        now = time.time()
        assert store.create_running(config, 2, name="heads-0", run_id=run_id,
                                    pid=workers[0].pid, started=now, heartbeat=now,
                                    extra={"sweep": "sweep1", "trial": 0})
        at = app("app_pages/data.py")
        assert not at.exception
        captions = [c.value for c in at.sidebar.caption]
        assert ":material/computer: Local workers · 1 of 1 busy" in captions
        assert ":material/tune: 1 sweep worker starting its next trial" in captions
        assert "Nothing running. Launch a run on the Train page." not in captions
        links = [link.proto.label for link in at.sidebar.get("page_link")]
        assert links == ["heads\\-0 · running · sweep trial"]
        assert store.get_run(run_id)["status"] == "running"
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
